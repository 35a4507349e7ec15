"""The private broker's OS processes: the user they run as, their environment, their lives.

When we are root the node's processes (epmd, the ``rabbitmq-server`` launcher and the
Erlang VM it starts, every CLI tool) run as the ``rabbitmq`` user. They are spawned in
sessions of their own, so that a node started by the CLI outlives it, and stopped by PID,
each checked against its command line first (``loopback.pid_alive``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path

from gateway.broker_files import NodeFolder
from gateway.broker_state import BrokerPorts, NodePids
from gateway.loopback import LOOPBACK, pid_alive, signal_if_alive, wait_gone
from schemas.errors import ConfigError

__all__ = [
    "as_node_user",
    "beam_pid",
    "epmd_binary",
    "kill_all",
    "node_alive",
    "node_env",
    "node_user",
    "spawn",
]


def node_user() -> pwd.struct_passwd | None:
    """The ``rabbitmq`` user when we are root; None means: run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("rabbitmq")
    except KeyError as exc:
        raise ConfigError(
            "user rabbitmq does not exist: install RabbitMQ with "
            "`apt-get install rabbitmq-server`",
            zh="用户 rabbitmq 不存在：请用 `apt-get install rabbitmq-server` 安装 RabbitMQ",
        ) from exc


def as_node_user(folder: NodeFolder) -> list[str]:
    """The command prefix that runs a command as the node user (none when not root)."""
    user = node_user()
    if user is None:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
            "--",
        ]
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ConfigError("neither setpriv nor runuser found: install util-linux",
                          zh="setpriv 和 runuser 都未找到：请安装 util-linux")
    # runuser resets HOME, which must stay the private one; env restores it.
    return [runuser, "-u", user.pw_name, "--", "env", f"HOME={folder.home}"]


def node_env(folder: NodeFolder, node_name: str, ports: BrokerPorts) -> dict[str, str]:
    """The whole environment of the node's processes: nothing of the system node's."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(folder.home),  # the Erlang cookie is read from $HOME
        "RABBITMQ_NODENAME": node_name,
        "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
        "RABBITMQ_NODE_PORT": str(ports.amqp),
        "RABBITMQ_DIST_PORT": str(ports.dist),
        "RABBITMQ_MNESIA_BASE": str(folder.data),
        "RABBITMQ_LOG_BASE": str(folder.log),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder.plugins),
        "RABBITMQ_CONFIG_FILE": str(folder.config),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder.base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(folder.env_config),
        "RABBITMQ_PID_FILE": str(folder.pid_file),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_PORT": str(ports.epmd),
        "ERL_EPMD_ADDRESS": LOOPBACK,
        "ERL_CRASH_DUMP": str(folder.log / "erl_crash.dump"),
    }


def epmd_binary() -> str:
    found = shutil.which("epmd") or next(
        (str(p) for p in sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None
    )
    if found is None:
        raise ConfigError("epmd not found: install erlang-base (a rabbitmq-server dependency)",
                          zh="未找到 epmd：请安装 erlang-base（rabbitmq-server 的依赖）")
    return found


def spawn(folder: NodeFolder, argv: list[str], env: Mapping[str, str], output: str) -> int:
    """Start a process as the node user, its output appended to ``output`` in the log folder.

    In its own session, not a Popen child: it may outlive us (CLI).
    """
    log = os.open(folder.log / output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        full = [*as_node_user(folder), *argv]
        return os.posix_spawn(
            full[0],
            full,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log)


def beam_pid(folder: NodeFolder) -> int | None:
    """The Erlang VM's PID from the PID file the node writes, None before it has one."""
    try:
        return int(folder.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def node_alive(beam: int | None, folder: NodeFolder) -> bool:
    """Whether ``beam`` is the running VM of the node in ``folder``."""
    return pid_alive(beam, _home_marker(folder))


def kill_all(pids: NodePids, folder: NodeFolder, epmd_port: int, grace: float) -> None:
    """SIGTERM the node (the launcher if the VM is not up), SIGKILL after ``grace``, then epmd."""
    node = (pids.beam, _home_marker(folder))
    launcher = (pids.launcher, "rabbitmq-server")
    epmd = (pids.epmd, f"-port {epmd_port} ")
    first = node if pid_alive(*node) else launcher
    signal_if_alive(*first, signal.SIGTERM)
    if not wait_gone([node, launcher], grace):
        for proc in (node, launcher):
            signal_if_alive(*proc, signal.SIGKILL)
        wait_gone([node, launcher], 10.0)
    signal_if_alive(*epmd, signal.SIGTERM)
    wait_gone([epmd], 10.0)


def _home_marker(folder: NodeFolder) -> str:
    return f"-home {folder.home} "

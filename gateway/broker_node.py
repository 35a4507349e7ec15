"""A private RabbitMQ node on loopback, run with Debian's ``rabbitmq-server``.

``exgate broker start|stop|status``, the demo and the integration tests use it. The node
never touches a system node: it has its own node name, ports, Erlang cookie, HOME,
epmd, data and log folders, all under one base folder (``broker_files``). When we are
root the node runs as the ``rabbitmq`` user (``broker_process``), which owns the base
folder.

The state file in the base folder (``broker_state``) lets a second process, such as the
CLI, stop or inspect a node it did not start. A node that is stopped and started again
on the same base folder keeps its data.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

from gateway.broker_files import DEFAULT_PLUGINS, NodeFolder, write_node_files
from gateway.broker_process import (
    as_node_user,
    beam_pid,
    epmd_binary,
    kill_all,
    node_alive,
    node_env,
    node_user,
    spawn,
)
from gateway.broker_state import (
    STATE_FILE,
    BrokerPorts,
    NodePids,
    check_same_ports,
    load_settings,
    new_settings,
    read_pids,
    read_state,
    write_state,
)
from gateway.loopback import LOOPBACK, pid_alive, port_accepts, port_is_free
from schemas.errors import ConfigError, FatalError, RetriableError

__all__ = [
    "DEFAULT_PLUGINS",
    "BrokerCommandError",
    "BrokerPorts",
    "BrokerStatus",
    "LocalBroker",
]

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
CtlTool = Literal["rabbitmqctl", "rabbitmq-diagnostics", "rabbitmq-plugins", "rabbitmq-queues"]
# rabbitmqctl exits with EX_UNAVAILABLE / EX_TEMPFAIL when the node is not reachable.
_UNREACHABLE_CODES = (69, 75)


class BrokerCommandError(FatalError):
    """A ``rabbitmqctl`` subcommand ran against a live node and failed."""

    def __init__(self, message: str, *, command: str, returncode: int, output: str):
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    node_name: str
    ports: BrokerPorts
    data_dir: Path
    base_dir: Path


def _excerpt(path: Path, lines: int = 15) -> str:
    """The first error lines (the cause) and the last lines (the outcome) of a log."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    first_errors = [line for line in text[:-lines] if "[error]" in line][:10]
    gap = ["..."] if first_errors else []
    return "\n".join([*first_errors, *gap, *text[-lines:]])


class LocalBroker:
    """A private RabbitMQ node on 127.0.0.1 whose files all live in ``base_dir``.

    Ports left as None are picked among free ports on first start and then kept in the
    state file, as the node name (``exgate-<amqp port>@localhost``) and the data follow
    them. ``management_port=0`` picks a free port; None disables the management plugin.
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        amqp_port: int | None = None,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        prometheus_port: int | None = None,
        management_port: int | None = 0,
        admin_user: str = "exgate-admin",
        admin_password: str | None = None,
        startup_timeout: float = 90.0,
        extra_config: Mapping[str, str] | None = None,
        rabbitmq_bin: Path = RABBITMQ_BIN,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.startup_timeout = startup_timeout
        self._extra_config = dict(extra_config or {})
        self._bin = rabbitmq_bin
        self._folder = NodeFolder(self.base_dir)
        saved = load_settings(self.base_dir)
        if saved is not None:
            check_same_ports(self.base_dir, saved, amqp_port, dist_port, epmd_port,
                             prometheus_port)
            self._settings = saved
        else:
            self._settings = new_settings(
                amqp_port=amqp_port,
                dist_port=dist_port,
                epmd_port=epmd_port,
                prometheus_port=prometheus_port,
                management_port=management_port,
                admin_user=admin_user,
                admin_password=admin_password,
            )

    @classmethod
    def existing(cls, base_dir: Path | str) -> LocalBroker:
        """The node that ``exgate broker start`` set up in ``base_dir``.

        For every use but starting one: without the state file, a mistyped folder would
        get made-up ports. ConfigError instead.
        """
        base = Path(base_dir).absolute()
        if not (base / STATE_FILE).is_file():
            raise ConfigError(
                f"no private broker in {base}; start one with "
                f"exgate broker start --base {base}",
                zh=f"{base} 中没有私有消息服务器；请先用 exgate broker start --base {base} "
                   "启动一个",
            )
        return cls(base)

    # ---- public API -------------------------------------------------------------

    @property
    def node_name(self) -> str:
        return self._settings.node_name

    @property
    def ports(self) -> BrokerPorts:
        return self._settings.ports

    @property
    def admin_user(self) -> str:
        return self._settings.admin_user

    @property
    def admin_password(self) -> str:
        return self._settings.admin_password

    @property
    def data_dir(self) -> Path:
        return self._folder.data

    @property
    def log_file(self) -> Path:
        return self._folder.log / f"{self.node_name}.log"

    @property
    def management_url(self) -> str | None:
        port = self.ports.management
        return None if port is None else f"http://{LOOPBACK}:{port}"

    def amqp_url(
        self, user: str | None = None, password: str | None = None, vhost: str = "/"
    ) -> str:
        """``amqp://`` URL of this node; the admin user when ``user`` is None."""
        if user is None:
            user, password = self.admin_user, self.admin_password
        creds = f"{quote(user, safe='')}:{quote(password or '', safe='')}"
        return f"amqp://{creds}@{LOOPBACK}:{self.ports.amqp}/{quote(vhost, safe='')}"

    def start(self) -> None:
        """Start the node and wait until it serves AMQP; a running node is left as is."""
        if self.status().running:
            return
        # Leftovers of a crashed node, e.g. epmd.
        self._kill_all(read_pids(self.base_dir), grace=10.0)
        self._preflight()
        self._write_files()
        env = self._env()
        epmd = spawn(
            self._folder,
            [epmd_binary(), "-port", str(self.ports.epmd), "-address", LOOPBACK],
            env,
            "epmd.out",
        )
        launcher = spawn(self._folder, [str(self._bin / "rabbitmq-server")], env, "console.out")
        self._write_state(NodePids(launcher=launcher, epmd=epmd))
        try:
            beam = self._wait_ready(launcher, time.monotonic() + self.startup_timeout)
        except BaseException:
            leftovers = NodePids(launcher=launcher, beam=beam_pid(self._folder), epmd=epmd)
            self._kill_all(leftovers, grace=10.0)
            raise
        self._write_state(NodePids(launcher=launcher, beam=beam, epmd=epmd))

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (SIGTERM, the node then syncs its queues), then kill by PID."""
        self._kill_all(read_pids(self.base_dir), grace=timeout)
        if read_state(self.base_dir) is not None:
            self._write_state(NodePids())

    def restart(self) -> None:
        """Stop and start again on the same ports and node name, keeping all data."""
        self.stop()
        self.start()

    def status(self) -> BrokerStatus:
        """Whether the node's VM runs, read from the state file: works from any process."""
        pids = read_pids(self.base_dir)
        running = node_alive(pids.beam, self._folder)
        return BrokerStatus(
            running=running,
            pid=pids.beam if running else None,
            node_name=self.node_name,
            ports=self.ports,
            data_dir=self.data_dir,
            base_dir=self.base_dir,
        )

    def ctl(
        self,
        *args: str,
        tool: CtlTool = "rabbitmqctl",
        input: str | None = None,
        timeout: float = 120.0,
    ) -> str:
        """Run a CLI subcommand against this node and return its standard output.

        Pass secrets through ``input`` (e.g. ``ctl("add_user", name, input=password)``
        for RabbitMQ to read it from stdin), never as arguments: those show in ``ps``.
        """
        command = args[0] if args else tool
        argv = [*as_node_user(self._folder), str(self._bin / tool), "-q", "-n", self.node_name,
                *args]
        try:
            done = subprocess.run(
                argv,
                env=self._env(),
                cwd=self.base_dir,
                input=input or "",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RetriableError(
                f"{tool} {command} on {self.node_name} did not answer in {timeout:.0f} s"
            ) from exc
        if done.returncode == 0:
            return done.stdout
        output = (done.stderr or done.stdout).strip()
        message = f"{tool} {command} on {self.node_name} failed ({done.returncode}): {output}"
        if done.returncode in _UNREACHABLE_CODES:
            raise RetriableError(message)
        raise BrokerCommandError(
            message, command=command, returncode=done.returncode, output=output
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- start-up -----------------------------------------------------------------

    def _preflight(self) -> None:
        for tool in ("rabbitmq-server", "rabbitmqctl"):
            if not (self._bin / tool).exists():
                raise ConfigError(
                    f"{self._bin / tool} not found: install RabbitMQ with "
                    "`apt-get install rabbitmq-server` (or `make system-deps`)",
                    zh=f"未找到 {self._bin / tool}：请用 `apt-get install rabbitmq-server`"
                    "（或 `make system-deps`）安装 RabbitMQ",
                )
        node_user()  # fails early when the rabbitmq user is missing
        for name, port in asdict(self.ports).items():
            if port is not None and not port_is_free(port):
                raise ConfigError(
                    f"port {port} ({name}) on {LOOPBACK} is already in use; stop whatever "
                    f"listens there or give {self.base_dir} other ports",
                    zh=f"{LOOPBACK} 上的端口 {port}（{name}）已被占用；请停止在该端口监听的程序，"
                    f"或为 {self.base_dir} 换用其他端口",
                )

    def _write_files(self) -> None:
        write_node_files(self._folder, self._settings, self._extra_config, owner=node_user())
        self._check_reachable()

    def _check_reachable(self) -> None:
        """The node user must reach the base folder: pytest's tmp_path (0700) would not do."""
        probe = subprocess.run(
            [*as_node_user(self._folder), "test", "-w", str(self.data_dir)],
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            who = node_user()
            name = who.pw_name if who else os.getuid()
            raise ConfigError(
                f"user {name} cannot write {self.data_dir}: "
                "a parent folder is not searchable by it; use a base folder under /tmp "
                "or /var/lib/exgate",
                zh=f"用户 {name} 无法写入 {self.data_dir}：它无法进入某个上级目录（缺少 x 权限）；"
                "请使用 /tmp 或 /var/lib/exgate 下的目录",
            )

    def _wait_ready(self, launcher: int, deadline: float) -> int:
        """Wait for the AMQP listener, which opens once the plugins are up, then confirm."""
        while not port_accepts(self.ports.amqp):
            if not pid_alive(launcher, "rabbitmq-server"):
                tails = self._log_tails()
                raise ConfigError(
                    f"RabbitMQ node {self.node_name} exited during start-up.\n{tails}",
                    zh=f"RabbitMQ 节点 {self.node_name} 在启动过程中退出。\n{tails}",
                )
            if time.monotonic() > deadline:
                raise RetriableError(
                    f"RabbitMQ node {self.node_name} did not start in "
                    f"{self.startup_timeout:.0f} s.\n{self._log_tails()}"
                )
            time.sleep(0.1)
        remaining = max(5.0, deadline - time.monotonic())
        self.ctl("await_startup", "--timeout", str(int(remaining)), timeout=remaining + 10)
        beam = beam_pid(self._folder)
        if beam is None:
            raise FatalError(
                f"RabbitMQ node {self.node_name} started but wrote no PID file "
                f"{self._folder.pid_file}"
            )
        return beam

    def _log_tails(self) -> str:
        console = self._folder.log / "console.out"
        return (
            f"--- {self.log_file} ---\n{_excerpt(self.log_file)}\n"
            f"--- {console} ---\n{_excerpt(console)}"
        )

    # ---- processes and state file -----------------------------------------------------

    def _env(self) -> dict[str, str]:
        return node_env(self._folder, self.node_name, self.ports)

    def _kill_all(self, pids: NodePids, grace: float) -> None:
        kill_all(pids, self._folder, self.ports.epmd, grace)

    def _write_state(self, pids: NodePids) -> None:
        write_state(self.base_dir, self._settings, pids)

"""A private RabbitMQ node on loopback, run with Debian's ``rabbitmq-server``.

``exgate broker start|stop|status``, the demo and the integration tests use it. The node
never touches a system node: it has its own node name, ports, Erlang cookie, HOME,
epmd, data and log folders, all under one base folder. When we are root the node runs as
the ``rabbitmq`` user, which owns the base folder.

The state file in the base folder (node name, ports, PIDs, admin credentials) lets a
second process, such as the CLI, stop or inspect a node it did not start. A node that
is stopped and started again on the same base folder keeps its data.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

from gateway.loopback import (
    LOOPBACK,
    free_ports,
    pid_alive,
    port_accepts,
    port_is_free,
    signal_if_alive,
    wait_gone,
)
from schemas.errors import ConfigError, FatalError, RetriableError

__all__ = [
    "DEFAULT_PLUGINS",
    "BrokerCommandError",
    "BrokerPorts",
    "BrokerStatus",
    "LocalBroker",
]

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
DEFAULT_PLUGINS = (
    "rabbitmq_federation",
    "rabbitmq_shovel",
    "rabbitmq_prometheus",
    # The link states over the management API (``federation-links``, ``shovels``);
    # left out, with the management plugin, when a node runs without it.
    "rabbitmq_federation_management",
    "rabbitmq_shovel_management",
)
MANAGEMENT_PLUGIN = "rabbitmq_management"
STATE_FILE = "exgate-broker.json"
STATE_VERSION = 1
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
class BrokerPorts:
    """Loopback ports of one node; ``management`` is None when the plugin is off."""

    amqp: int
    dist: int
    epmd: int
    prometheus: int
    management: int | None


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    node_name: str
    ports: BrokerPorts
    data_dir: Path
    base_dir: Path


@dataclass(frozen=True)
class _Settings:
    """What must stay the same across restarts for the node to find its data."""

    node_name: str
    ports: BrokerPorts
    admin_user: str
    admin_password: str = field(repr=False)


@dataclass(frozen=True)
class _Pids:
    launcher: int | None = None
    beam: int | None = None
    epmd: int | None = None


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
        saved = self._read_state()
        if saved is not None:
            self._settings = _settings_from_state(saved)
            self._check_same(amqp_port, dist_port, epmd_port, prometheus_port)
        else:
            wanted = (amqp_port, dist_port, epmd_port, prometheus_port, management_port)
            picked = iter(free_ports(len(wanted)))
            amqp, dist, epmd, prom, mgmt = (port or next(picked) for port in wanted)
            self._settings = _Settings(
                node_name=f"exgate-{amqp}@localhost",
                ports=BrokerPorts(
                    amqp=amqp,
                    dist=dist,
                    epmd=epmd,
                    prometheus=prom,
                    management=None if management_port is None else mgmt,
                ),
                admin_user=admin_user,
                admin_password=admin_password or secrets.token_urlsafe(18),
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
        return self.base_dir / "mnesia"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "log" / f"{self.node_name}.log"

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
        self._kill_all(self._read_pids(), grace=10.0)  # leftovers of a crashed node, e.g. epmd
        self._preflight()
        self._write_files()
        env = self._env()
        epmd = self._spawn(
            [self._epmd_binary(), "-port", str(self.ports.epmd), "-address", LOOPBACK],
            env,
            "epmd.out",
        )
        launcher = self._spawn([str(self._bin / "rabbitmq-server")], env, "console.out")
        self._write_state(_Pids(launcher=launcher, epmd=epmd))
        try:
            beam = self._wait_ready(launcher, time.monotonic() + self.startup_timeout)
        except BaseException:
            self._kill_all(_Pids(launcher=launcher, beam=self._pid_file(), epmd=epmd), grace=10.0)
            raise
        self._write_state(_Pids(launcher=launcher, beam=beam, epmd=epmd))

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (SIGTERM, the node then syncs its queues), then kill by PID."""
        self._kill_all(self._read_pids(), grace=timeout)
        if self._read_state() is not None:
            self._write_state(_Pids())

    def restart(self) -> None:
        """Stop and start again on the same ports and node name, keeping all data."""
        self.stop()
        self.start()

    def status(self) -> BrokerStatus:
        """Whether the node's VM runs, read from the state file: works from any process."""
        pids = self._read_pids()
        running = pid_alive(pids.beam, self._home_marker())
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
        argv = [*self._as_node_user(), str(self._bin / tool), "-q", "-n", self.node_name, *args]
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
        self._node_user()  # fails early when the rabbitmq user is missing
        for name, port in asdict(self.ports).items():
            if port is not None and not port_is_free(port):
                raise ConfigError(
                    f"port {port} ({name}) on {LOOPBACK} is already in use; stop whatever "
                    f"listens there or give {self.base_dir} other ports",
                    zh=f"{LOOPBACK} 上的端口 {port}（{name}）已被占用；请停止在该端口监听的程序，"
                    f"或为 {self.base_dir} 换用其他端口",
                )

    def _write_files(self) -> None:
        for folder in (self.base_dir, self.base_dir / "home", self.data_dir, self.base_dir / "log"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # rabbitmq.conf holds the admin password: a folder made beforehand (0755) is
        # closed too. Only its owner, the node user after _chown_for_node, and root enter.
        self.base_dir.chmod(0o700)
        cookie = self.base_dir / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        plugins = [*DEFAULT_PLUGINS, MANAGEMENT_PLUGIN]
        if self.ports.management is None:
            # The *_management plugins would pull in rabbitmq_management, on port 15672.
            plugins = [name for name in plugins if not name.endswith("_management")]
        (self.base_dir / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        _write_private(self.base_dir / "rabbitmq.conf", self._config_text())
        (self.base_dir / "rabbitmq-env.conf").write_text("# empty: never read the system one\n")
        self._chown_for_node()
        self._check_reachable()

    def _config_text(self) -> str:
        ports = self.ports
        lines = {
            "listeners.tcp.default": f"{LOOPBACK}:{ports.amqp}",
            "default_user": self.admin_user,
            "default_pass": self.admin_password,
            "default_user_tags.administrator": "true",
            "prometheus.tcp.ip": LOOPBACK,
            "prometheus.tcp.port": str(ports.prometheus),
            "log.console": "false",
            "log.file.level": "info",
        }
        if ports.management is not None:
            lines |= {"management.tcp.ip": LOOPBACK, "management.tcp.port": str(ports.management)}
        lines |= self._extra_config
        return "".join(f"{key} = {value}\n" for key, value in lines.items())

    def _chown_for_node(self) -> None:
        user = self._node_user()
        if user is None:
            return
        for path in [self.base_dir, *self.base_dir.iterdir()]:
            if path.name != STATE_FILE:
                os.chown(path, user.pw_uid, user.pw_gid)
        for root, dirs, files in os.walk(self.base_dir / "home"):
            for name in [*dirs, *files]:
                os.chown(Path(root) / name, user.pw_uid, user.pw_gid)

    def _check_reachable(self) -> None:
        """The node user must reach the base folder: pytest's tmp_path (0700) would not do."""
        probe = subprocess.run(
            [*self._as_node_user(), "test", "-w", str(self.data_dir)],
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            who = self._node_user()
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
        beam = self._pid_file()
        if beam is None:
            raise FatalError(
                f"RabbitMQ node {self.node_name} started but wrote no PID file "
                f"{self.base_dir / 'node.pid'}"
            )
        return beam

    def _pid_file(self) -> int | None:
        try:
            return int((self.base_dir / "node.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _log_tails(self) -> str:
        console = self.base_dir / "log" / "console.out"
        return (
            f"--- {self.log_file} ---\n{_excerpt(self.log_file)}\n"
            f"--- {console} ---\n{_excerpt(console)}"
        )

    # ---- processes ------------------------------------------------------------------

    def _spawn(self, argv: list[str], env: Mapping[str, str], output: str) -> int:
        """Start a process in its own session, not a Popen child: it may outlive us (CLI)."""
        log = os.open(self.base_dir / "log" / output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            full = [*self._as_node_user(), *argv]
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

    def _kill_all(self, pids: _Pids, grace: float) -> None:
        node = (pids.beam, self._home_marker())
        launcher = (pids.launcher, "rabbitmq-server")
        epmd = (pids.epmd, f"-port {self.ports.epmd} ")
        first = node if pid_alive(*node) else launcher
        signal_if_alive(*first, signal.SIGTERM)
        if not wait_gone([node, launcher], grace):
            for proc in (node, launcher):
                signal_if_alive(*proc, signal.SIGKILL)
            wait_gone([node, launcher], 10.0)
        signal_if_alive(*epmd, signal.SIGTERM)
        wait_gone([epmd], 10.0)

    # ---- environment ------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        base, ports = self.base_dir, self.ports
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(base / "home"),  # the Erlang cookie is read from $HOME
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(ports.amqp),
            "RABBITMQ_DIST_PORT": str(ports.dist),
            "RABBITMQ_MNESIA_BASE": str(self.data_dir),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(ports.epmd),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "ERL_CRASH_DUMP": str(base / "log" / "erl_crash.dump"),
        }

    def _node_user(self) -> pwd.struct_passwd | None:
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

    def _as_node_user(self) -> list[str]:
        user = self._node_user()
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
        return [runuser, "-u", user.pw_name, "--", "env", f"HOME={self.base_dir / 'home'}"]

    def _epmd_binary(self) -> str:
        found = shutil.which("epmd") or next(
            (str(p) for p in sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None
        )
        if found is None:
            raise ConfigError("epmd not found: install erlang-base (a rabbitmq-server dependency)",
                              zh="未找到 epmd：请安装 erlang-base（rabbitmq-server 的依赖）")
        return found

    def _home_marker(self) -> str:
        return f"-home {self.base_dir / 'home'} "

    # ---- state file ----------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((self.base_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"{self.base_dir / STATE_FILE} has version "
                f"{state.get('version')!r}; this exgate reads {STATE_VERSION}",
                zh=f"{self.base_dir / STATE_FILE} 的版本为 {state.get('version')!r}；"
                f"此 exgate 只能读取版本 {STATE_VERSION}",
            )
        return state

    def _read_pids(self) -> _Pids:
        state = self._read_state()
        return _Pids(**state["pids"]) if state else _Pids()

    def _write_state(self, pids: _Pids) -> None:
        state = {"version": STATE_VERSION, **asdict(self._settings), "pids": asdict(pids)}
        path = self.base_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
        tmp.replace(path)

    def _check_same(self, *given: int | None) -> None:
        kept = self.ports
        for name, want, have in zip(
            ("amqp", "dist", "epmd", "prometheus"),
            given,
            (kept.amqp, kept.dist, kept.epmd, kept.prometheus),
            strict=True,
        ):
            if want not in (None, 0, have):
                raise ConfigError(
                    f"{self.base_dir} holds node {self.node_name} with {name} "
                    f"port {have}, not {want}; use another base folder",
                    zh=f"{self.base_dir} 中的节点 {self.node_name} 的 {name} 端口是 {have}，"
                    f"不是 {want}；请换用另一个目录",
                )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, also when the file existed more open."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)
        out.write(text)


def _settings_from_state(state: Mapping[str, Any]) -> _Settings:
    return _Settings(
        node_name=state["node_name"],
        ports=BrokerPorts(**state["ports"]),
        admin_user=state["admin_user"],
        admin_password=state["admin_password"],
    )

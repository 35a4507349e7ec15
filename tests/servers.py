"""Throwaway PostgreSQL and MariaDB servers on loopback, for the integration tests.

Each server lives in its own temp folder, listens on a free 127.0.0.1 port, keeps its
Unix socket in that folder and is stopped by PID; the folder is removed on ``stop()``.
``stop()`` is also registered with ``atexit`` and on SIGTERM, so an interrupted run
leaves neither processes nor folders behind. As root, the servers run as the
``postgres`` and ``mysql`` users (initdb refuses root).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import quote

import psycopg
import pymysql

from gateway.broker_node import LocalBroker
from gateway.loopback import LOOPBACK, free_ports

__all__ = [
    "MariaDBServer",
    "PostgresServer",
    "fresh_name",
    "install_sigterm_cleanup",
    "start_broker",
    "stop_broker",
]

USER = "exgate"
READY_TIMEOUT = 60.0


def fresh_name(prefix: str = "t") -> str:
    """A database, vhost or user name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def install_sigterm_cleanup() -> None:
    """Treat SIGTERM (a cancelled CI job) as Ctrl-C, so pytest stops and runs finalizers."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _service_user(name: str) -> pwd.struct_passwd | None:
    """The system account to run a server as when we are root; None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise RuntimeError(f"user {name} does not exist: run `make system-deps`") from exc


def _find_binary(name: str, *globs: str) -> str:
    for pattern in globs:
        # Highest version first: /usr/lib/postgresql/16/bin before 15.
        for found in sorted(Path("/").glob(pattern.lstrip("/")), reverse=True):
            return str(found)
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run `make system-deps`")
    return path


class ThrowawayServer(ABC):
    """A database server process in a temp folder, owned by this test process."""

    account: str
    name: str

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.password = secrets.token_urlsafe(12)
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = _service_user(self.account)

    def start(self) -> None:
        atexit.register(self.stop)
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"exgate-{self.name}-"))
        if self._user is not None:
            os.chown(self.base_dir, self._user.pw_uid, self._user.pw_gid)
        try:
            self._initialise()
            self._proc = self._launch()
            self._wait_ready(time.monotonic() + READY_TIMEOUT)
            self._create_user()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the server by PID, then remove its folder. Safe to call twice."""
        atexit.unregister(self.stop)
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

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

    @property
    def folder(self) -> Path:
        if self.base_dir is None:
            raise RuntimeError(f"{self.name} server is not started")
        return self.base_dir

    @abstractmethod
    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""

    @abstractmethod
    def drop_database(self, name: str) -> None:
        """Drop a database, even if a test left connections open."""

    @abstractmethod
    def _initialise(self) -> None: ...

    @abstractmethod
    def _command(self) -> list[str]: ...

    @abstractmethod
    def _probe(self) -> None:
        """Connect once as the admin; raise if the server is not ready yet."""

    @abstractmethod
    def _create_user(self) -> None: ...

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(
            argv, cwd=self.folder, capture_output=True, text=True, check=False, **self._as_account()
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _launch(self) -> subprocess.Popen[bytes]:
        with open(self.folder / "server.log", "ab") as log:
            # A session of its own: Ctrl-C reaches pytest, whose finalizers stop us.
            return subprocess.Popen(
                self._command(),
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                **self._as_account(),
            )

    def _as_account(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _wait_ready(self, deadline: float) -> None:
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode}:\n{self._log_tail()}"
                )
            try:
                self._probe()
                return
            except (psycopg.OperationalError, pymysql.err.OperationalError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} not ready after {READY_TIMEOUT:.0f} s:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    def _log_tail(self) -> str:
        path = self.folder / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-25:])


class PostgresServer(ThrowawayServer):
    """PostgreSQL from ``initdb`` with a password-protected superuser ``exgate``."""

    account = "postgres"
    name = "postgres"

    def __init__(self) -> None:
        super().__init__()
        self.bin_dir = Path(_find_binary("initdb", "/usr/lib/postgresql/*/bin/initdb")).parent

    def create_database(self, name: str) -> str:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{USER}:{quote(self.password)}@{LOOPBACK}:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _initialise(self) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.folder / "data"),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        pwfile.unlink()

    def _command(self) -> list[str]:
        # Durability is pointless in a throwaway cluster; these make tests faster.
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.folder / "data"),
            "-p",
            str(self.port),
            "-h",
            LOOPBACK,
            "-k",
            str(self.folder),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    def _probe(self) -> None:
        with self._admin():
            pass

    def _create_user(self) -> None:
        """initdb already made ``exgate`` the superuser."""

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=LOOPBACK,
            port=self.port,
            user=USER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)


class MariaDBServer(ThrowawayServer):
    """MariaDB from ``mariadb-install-db`` with a user ``exgate`` granted everything."""

    account = "mysql"
    name = "mariadb"

    def create_database(self, name: str) -> str:
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        return (
            f"mysql+pymysql://{USER}:{quote(self.password)}@{LOOPBACK}:{self.port}/{name}"
            "?charset=utf8mb4"
        )

    def drop_database(self, name: str) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            # A test that leaked a transaction must not hang the whole run.
            cur.execute("SET SESSION lock_wait_timeout = 10")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def _initialise(self) -> None:
        self._run(
            [
                _find_binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.folder / 'data'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]
        )

    def _command(self) -> list[str]:
        folder = self.folder
        return [
            _find_binary("mariadbd", "/usr/sbin/mariadbd"),
            "--no-defaults",
            f"--datadir={folder / 'data'}",
            f"--socket={self._socket}",
            f"--pid-file={folder / 'mariadbd.pid'}",
            f"--tmpdir={folder}",
            f"--bind-address={LOOPBACK}",
            f"--port={self.port}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=64M",
        ]

    def _probe(self) -> None:
        # PyMySQL leaks its socket when a Unix-socket connect fails: try a plain one first.
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(str(self._socket))
            except OSError as exc:
                raise pymysql.err.OperationalError(f"{self._socket}: {exc}") from exc
        with self._admin():
            pass

    def _create_user(self) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{USER}'@'%%' IDENTIFIED BY %s", (self.password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION")

    @property
    def _socket(self) -> Path:
        return self.folder / "mariadbd.sock"

    def _admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=str(self._socket),
            user="root",
            password="",
            autocommit=True,
            connect_timeout=5,
        )


def broker_base_dir() -> Path:
    """A folder the ``rabbitmq`` user can reach (pytest's 0700 tmp_path is not)."""
    return Path(tempfile.mkdtemp(prefix="exgate-rabbitmq-"))


def start_broker(extra_config: Mapping[str, str] | None = None) -> LocalBroker:
    """A started private broker whose folder is removed by ``stop_broker``;
    ``extra_config``: more ``rabbitmq.conf`` lines (a TLS listener, say)."""
    broker = LocalBroker(broker_base_dir(), extra_config=extra_config)
    atexit.register(stop_broker, broker)  # stop_broker is idempotent: no unregister
    try:
        broker.start()
    except BaseException:
        stop_broker(broker)
        raise
    return broker


def stop_broker(broker: LocalBroker) -> None:
    broker.stop()
    shutil.rmtree(broker.base_dir, ignore_errors=True)

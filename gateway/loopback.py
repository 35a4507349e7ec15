"""Ports and processes on 127.0.0.1 for the private broker (``broker_node``).

Free ports are picked below the ephemeral range; a process counts as alive only while
its command line still carries our marker, which guards against PID reuse; signals go
only to such processes; and ``wait_gone`` waits for them to exit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

from schemas.errors import ConfigError

__all__ = [
    "LOOPBACK",
    "free_ports",
    "pid_alive",
    "port_accepts",
    "port_is_free",
    "signal_if_alive",
    "wait_gone",
]

LOOPBACK = "127.0.0.1"
_PORT_FLOOR = 20000
_rng = random.SystemRandom()
# Every port free_ports has returned in this process: nothing binds them until later, so
# two callers (brokers started in parallel threads) would otherwise get the same one.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports that are free on 127.0.0.1 right now.

    They are taken below the ephemeral range: while a node is down (a restart, or the
    "broker away for 30 s" tests), reconnecting clients get their local ports from that
    range and could otherwise take the node's ports. A port is never returned twice in
    one process, even to callers in different threads.
    """
    top = _ephemeral_low() - 1
    with _handed_out_lock:
        chosen: list[int] = []
        for _ in range(1000):
            port = _rng.randint(_PORT_FLOOR, top)
            if port not in chosen and port not in _handed_out and port_is_free(port):
                chosen.append(port)
                if len(chosen) == count:
                    _handed_out.update(chosen)
                    return chosen
    raise ConfigError(f"found no {count} free ports on {LOOPBACK} in {_PORT_FLOOR}-{top}",
                      zh=f"在 {LOOPBACK} 的 {_PORT_FLOOR}-{top} 范围内找不到 {count} 个空闲端口")


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return low if low > _PORT_FLOOR + 1000 else 32768


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the Erlang listeners do, so that TIME_WAIT left by a restart does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def pid_alive(pid: int | None, marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``marker`` (guards PID reuse)."""
    if pid is None:
        return False
    try:
        # Our own child: alive until reaped, even before it has exec'd its program.
        return os.waitpid(pid, os.WNOHANG)[0] == 0
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Orphans whose parent never reaps them (PID 1 in some containers) stay as zombies.
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return marker.encode() in cmdline


def signal_if_alive(pid: int | None, marker: str, signum: signal.Signals) -> None:
    if pid is not None and pid_alive(pid, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def wait_gone(procs: list[tuple[int | None, str]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(*proc) for proc in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True

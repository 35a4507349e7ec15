"""Connects within a deadline: a silent Oracle listener fails a read instead of hanging it.

The first tests drive ``ConnectDeadline`` with stand-in connect functions; the last ones
run python-oracledb's thin mode against a loopback listener that accepts connections
and never answers, which held ``connect`` for good before.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters import connect_deadline, db_connect
from adapters.connect_deadline import MAX_ABANDONED, ConnectDeadline
from adapters.sources.base import SourceContext
from adapters.sources.database import database_source
from schemas.catalog import load_catalog
from schemas.errors import RetriableError


class Refused(Exception):
    pass


class Connection:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Server:
    """A connect function that answers only when the test lets it."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.calls = 0
        self.opened: list[Connection] = []

    def connect(self) -> Connection:
        self.calls += 1
        self.answer.wait()
        connection = Connection()
        self.opened.append(connection)
        return connection


def test_a_connect_that_answers_in_time_is_returned() -> None:
    server = Server()
    server.answer.set()
    assert ConnectDeadline(5, 600).connect(server.connect, Refused) is server.opened[0]


def test_a_connect_error_is_raised_as_it_was() -> None:
    def refuse() -> Any:
        raise ConnectionRefusedError("nobody listens")

    with pytest.raises(ConnectionRefusedError, match="nobody listens"):
        ConnectDeadline(5, 600).connect(refuse, Refused)


def test_a_silent_server_costs_one_waiting_attempt_and_a_late_connection_is_closed() -> None:
    server, deadline = Server(), ConnectDeadline(0.2, 600)
    with pytest.raises(Refused, match=r"did not answer within 0\.2 s"):
        deadline.connect(server.connect, Refused)
    with pytest.raises(Refused, match="has not answered an earlier connection attempt"):
        deadline.connect(server.connect, Refused)
    assert server.calls == 1  # no second thread while the first still waits
    server.answer.set()  # the server answers at last: nobody takes that connection
    _until(lambda: bool(server.opened))
    _until(lambda: server.opened[0].closed)
    assert deadline.connect(server.connect, Refused) is server.opened[1]
    assert server.calls == 2 and not server.opened[1].closed


def test_connects_at_once_to_a_silent_server_cost_one_thread() -> None:
    server, deadline = Server(), ConnectDeadline(0.2, 600)
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            deadline.connect(server.connect, Refused)
        except Refused as exc:
            errors.append(exc)

    callers = [threading.Thread(target=connect) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    assert len(errors) == 8 and server.calls == 1
    server.answer.set()


def test_slow_healthy_connects_at_once_all_get_through() -> None:
    # Each takes under its own deadline; together they take longer than one deadline.
    deadline = ConnectDeadline(2.0, 600)
    opened: list[Connection] = []

    def slow() -> Connection:
        time.sleep(0.6)
        return Connection()

    callers = [threading.Thread(target=lambda: opened.append(deadline.connect(slow, Refused)))
               for _ in range(5)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)
    assert len(opened) == 5


class Clock:
    """``time.monotonic`` of ``adapters.connect_deadline``, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_server_silent_past_forget_after_is_tried_again_up_to_a_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A peer gone without a reset leaves the abandoned attempt waiting for good: after
    # forget_after, one more attempt (one more thread) is made, but never while
    # MAX_ABANDONED attempts still wait: a server silent for days costs that many threads.
    clock = Clock()
    monkeypatch.setattr(connect_deadline, "time", clock)
    server, deadline = Server(), ConnectDeadline(0.2, 300)
    for tried in range(1, MAX_ABANDONED + 1):
        with pytest.raises(Refused, match="did not answer"):
            deadline.connect(server.connect, Refused)
        if tried < MAX_ABANDONED:
            with pytest.raises(Refused, match="has not answered an earlier connection"):
                deadline.connect(server.connect, Refused)
        assert server.calls == tried
        clock.now += 300  # past forget_after
    with pytest.raises(Refused, match=f"has not answered {MAX_ABANDONED} earlier"):
        deadline.connect(server.connect, Refused)
    assert server.calls == MAX_ABANDONED
    server.answer.set()  # they all end; the server answers the next one at once
    for _ in range(100):  # each abandoned attempt closes its late connection, then ends
        if len(server.opened) == MAX_ABANDONED and all(c.closed for c in server.opened):
            break
        threading.Event().wait(0.05)  # a hang guard for the threads to finish
    assert deadline.connect(server.connect, Refused) is server.opened[-1]


# -- python-oracledb thin mode against a silent listener ---------------------------------------

class SilentListener:
    """Accepts TCP connections on loopback and never says a word."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.accepted = 0
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed at the end of the test
                return
            self.accepted += 1
            self._open.append(connection)

    def drop_all(self) -> None:
        """Hang up: read what the client sent (or closing would reset), then close."""
        while self._open:
            connection = self._open.pop()
            connection.setblocking(False)
            with contextlib.suppress(OSError):
                while connection.recv(65536):
                    pass
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def close(self) -> None:
        self.drop_all()
        self._socket.close()


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentListener]:
    monkeypatch.setattr(db_connect, "CONNECT_TIMEOUT_SECONDS", 0.5)
    silent = SilentListener()
    yield silent
    silent.close()


def test_a_silent_oracle_listener_fails_the_read_and_is_tried_again_once_it_drops(
        listener: SilentListener) -> None:
    url = f"oracle+oracledb://exgate:secret@127.0.0.1:{listener.port}/?service_name=FRONT"
    context = SourceContext("node-1", "430102", load_catalog(), "en")
    with database_source("front", {"url": url, "tables": ["SBXX"]}, context) as source:
        first = _read_error(source)
        assert "did not answer within 0.5 s" in first and "secret" not in first
        assert "earlier connection attempt" in _read_error(source)
        assert listener.accepted == 1
        listener.drop_all()  # the attempt given up on ends: the next read connects again
        _until(lambda: "earlier connection attempt" not in _read_error(source))
        assert listener.accepted == 2


def test_an_attempt_given_up_on_has_its_keepalive_timer_armed_from_the_start(
        listener: SilentListener) -> None:
    # A peer gone without a reset would hold the waiting thread for good, and after
    # MAX_ABANDONED of them no connect is tried again: thin mode's expire_time puts the
    # keepalive timer on the socket from the start, before any answer.
    url = f"oracle+oracledb://exgate:secret@127.0.0.1:{listener.port}/?service_name=FRONT"
    context = SourceContext("node-1", "430102", load_catalog(), "en")
    with database_source("front", {"url": url, "tables": ["SBXX"]}, context) as source:
        assert "did not answer within 0.5 s" in _read_error(source)
        assert _client_timers(listener.port) == ["keepalive"]


def _client_timers(port: int) -> list[str]:
    """The timer of each established client socket to ``port``, from /proc/net/tcp."""
    timers = ["none", "retransmit", "keepalive", "time-wait", "zero-window-probe"]
    found = []
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in list(table)[1:]:
            fields = line.split()
            remote_port, state, timer = int(fields[2].split(":")[1], 16), fields[3], fields[5]
            if remote_port == port and state == "01":  # ESTABLISHED
                found.append(timers[int(timer.split(":")[0], 16)])
    return found


def _read_error(source: Any) -> str:
    """The RetriableError message of one read, which must come (a hang fails the test)."""
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            list(source.read({}))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the read hung on a silent server"
    [error] = outcome
    assert isinstance(error, RetriableError)
    return str(error)


def _until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("timed out")

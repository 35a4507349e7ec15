"""A deadline on opening a connection, for a driver that has none: Oracle's thin mode.

python-oracledb's thin mode bounds only the TCP connect (``tcp_connect_timeout``). A
listener that accepts and then stays silent (hung, or a port forward to nothing) holds
``connect`` for good, and with it the whole agent or gateway. Oracle Net's
``CONNECT_TIMEOUT``, which bounds the handshake too, works only in thick mode. So the
connect runs in a thread, and the caller waits for it at most ``seconds``.

Connects take turns. An attempt given up on keeps its thread until the server answers
or drops the socket; a connection it opens then is closed at once. While such an
attempt still waits, the next one fails at once instead of starting another thread: a
silent listener costs one thread, however long it stays silent and however many
threads (a pool, the source's read-ahead and write-back) want a connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["ConnectDeadline", "bound_connects"]


def bound_connects(engine: Engine, seconds: float) -> None:
    """Open ``engine``'s connections within ``seconds``, or fail with the driver's
    ``OperationalError`` (SQLAlchemy's ``OperationalError`` to the caller)."""
    deadline = ConnectDeadline(seconds)

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return deadline.connect(lambda: dialect.connect(*cargs, **cparams),
                                dialect.loaded_dbapi.OperationalError)

    event.listen(engine, "do_connect", connect)


class ConnectDeadline:
    """Connects that wait at most ``seconds``, one at a time, with one abandoned attempt
    at the most: the next connect waits its turn, and fails at once while an attempt
    given up on still waits for the server."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._turn = threading.Lock()  # one attempt at a time: a silent server, one thread
        self._waiting: _Attempt | None = None  # the last attempt given up on

    def connect(self, connect: Callable[[], Any],
                error: Callable[[str], Exception]) -> Any:
        if not self._turn.acquire(timeout=self.seconds):
            raise error(f"another connection attempt has waited {self.seconds:g} s for the "
                        "database server")
        try:
            if self._waiting is not None and not self._waiting.finished.is_set():
                raise error(f"the database server has not answered an earlier connection "
                            f"attempt, given up on after {self.seconds:g} s; not trying "
                            "again until it answers or drops it")
            attempt = _Attempt(connect)
            if attempt.finished.wait(self.seconds):
                return attempt.outcome()
            if attempt.abandon():
                self._waiting = attempt
                raise error(f"the database server accepted the connection but did not "
                            f"answer within {self.seconds:g} s")
            return attempt.outcome()  # it finished in the meantime
        finally:
            self._turn.release()


class _Attempt:
    """One connect in a thread of its own; closes its connection if nobody takes it."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._abandoned = False
        self._connection: Any = None
        self._error: BaseException | None = None
        self.finished = threading.Event()
        threading.Thread(target=self._run, name="exgate-connect", daemon=True).start()

    def _run(self) -> None:
        try:
            connection = self._connect()
        except BaseException as exc:  # the caller raises it, in its own thread
            self._error = exc
        else:
            with self._lock:
                if self._abandoned:
                    connection.close()
                else:
                    self._connection = connection
        finally:
            self.finished.set()

    def abandon(self) -> bool:
        """Give up on the attempt; False if it has finished meanwhile."""
        with self._lock:
            if self.finished.is_set() or self._connection is not None:
                return False
            self._abandoned = True
            return True

    def outcome(self) -> Any:
        """The connection, or the connect's error raised again."""
        self.finished.wait()
        if self._error is not None:
            raise self._error
        return self._connection

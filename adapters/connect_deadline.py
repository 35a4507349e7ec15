"""A deadline on opening a connection, for a driver that has none: Oracle's thin mode.

python-oracledb's thin mode bounds only the TCP connect (``tcp_connect_timeout``). A
listener that accepts and then stays silent (hung, or a port forward to nothing) holds
``connect`` for good, and with it the whole agent or gateway. Oracle Net's
``CONNECT_TIMEOUT``, which bounds the handshake too, works only in thick mode. So the
connect runs in a thread, and the caller waits for it at most ``seconds``.

Connects take turns, and a turn is bounded by ``seconds``, so slow but healthy connects
queue up and all succeed. An attempt given up on keeps its thread until the server
answers or drops the socket; a connection it opens then is closed at once. While such
an attempt still waits, every other connect fails at once instead of starting another
thread: a silent listener costs one thread, however many threads (a pool, the source's
read-ahead and write-back) want a connection. Only after ``forget_after`` is another
attempt made (one more thread), for a peer that vanished without a reset leaves the
abandoned one waiting for good; and never while ``MAX_ABANDONED`` attempts still wait, so
a server silent for days costs at most that many threads.

Thin mode's keepalive probes (``expire_time``, set by ``db_connect.connect_args``) start
with the socket, so a vanished peer ends its waiting attempt within minutes. cx_Oracle
and thick mode take theirs from ``sqlnet.ora`` (``SQLNET.EXPIRE_TIME``, and
``SQLNET.OUTBOUND_CONNECT_TIMEOUT``, which bounds their handshake too); without them, the
refusal at the cap lasts until the agent restarts, and says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["ConnectDeadline", "bound_connects"]

_TURN_CHECK_S = 0.5  # how often a connect waiting for its turn looks for a silent server
MAX_ABANDONED = 3  # attempts given up on that may still wait, each holding a thread


def bound_connects(engine: Engine, seconds: float, forget_after: float) -> None:
    """Open ``engine``'s connections within ``seconds``, or fail with the driver's
    ``OperationalError`` (SQLAlchemy's ``OperationalError`` to the caller)."""
    deadline = ConnectDeadline(seconds, forget_after)

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return deadline.connect(lambda: dialect.connect(*cargs, **cparams),
                                dialect.loaded_dbapi.OperationalError)

    event.listen(engine, "do_connect", connect)


class ConnectDeadline:
    """Connects that wait at most ``seconds`` each, one at a time; while an attempt given
    up on (less than ``forget_after`` ago) still waits, the others fail at once."""

    def __init__(self, seconds: float, forget_after: float) -> None:
        self.seconds = seconds
        self.forget_after = forget_after
        self._turn = threading.Lock()  # one attempt at a time: a silent server, one thread
        self._abandoned: list[_Attempt] = []  # given up on, perhaps still waiting
        self._given_up_at = 0.0  # when the last of them was

    def connect(self, connect: Callable[[], Any],
                error: Callable[[str], Exception]) -> Any:
        # No deadline on the wait for a turn: each turn ends within ``seconds``.
        while not self._turn.acquire(timeout=_TURN_CHECK_S):
            self._refuse_while_silent(error, list(self._abandoned))
        try:
            # Only the turn's holder changes the list: a waiter reads a copy of it.
            self._abandoned = [a for a in self._abandoned if not a.finished.is_set()]
            self._refuse_while_silent(error, self._abandoned)
            attempt = _Attempt(connect)
            if attempt.finished.wait(self.seconds):
                return attempt.outcome()
            if attempt.abandon():
                self._abandoned.append(attempt)
                self._given_up_at = time.monotonic()
                raise error(f"the database server accepted the connection but did not "
                            f"answer within {self.seconds:g} s")
            return attempt.outcome()  # it finished in the meantime
        finally:
            self._turn.release()

    def _refuse_while_silent(self, error: Callable[[str], Exception],
                             abandoned: list[_Attempt]) -> None:
        waiting = [a for a in abandoned if not a.finished.is_set()]
        if not waiting:
            return
        if len(waiting) >= MAX_ABANDONED:
            raise error(f"the database server has not answered {len(waiting)} "
                        f"earlier connection attempts, each given up on after "
                        f"{self.seconds:g} s; not trying again until one of them is "
                        "answered or dropped (with cx_Oracle or thick mode, set "
                        "SQLNET.EXPIRE_TIME and SQLNET.OUTBOUND_CONNECT_TIMEOUT in "
                        "sqlnet.ora, or restart)")
        if time.monotonic() - self._given_up_at < self.forget_after:
            raise error(f"the database server has not answered an earlier connection "
                        f"attempt, given up on after {self.seconds:g} s; not trying again "
                        f"until it answers or drops it, or {self.forget_after:g} s have "
                        "passed")


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

"""How the central store tells a database that is away (retried) from one that is broken."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from schemas.errors import ExgateError, FatalError, RetriableError

__all__ = ["Guard", "first_line", "key_taken"]

_TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
              sa_exc.TimeoutError, sa_exc.IntegrityError)
# SQLSTATE classes of an outage that drivers may report outside OperationalError (psycopg:
# a failover that leaves us on a read-only standby is an InternalError): connection (08),
# read-only transaction (25006), resources (53), operator intervention (57), system (58).
# A FatalError counts toward poison (gateway.poison); an outage never may.
_OUTAGE_SQLSTATES = ("08", "25006", "53", "57", "58")
# SQLite reports a missing table or column as OperationalError, like a lock: it is not one.
_SQLITE_SCHEMA_ERRORS = ("no such table", "no such column", "has no column named")


class Guard:
    """Maps driver errors at the boundary: away → RetriableError, broken → FatalError."""

    def __init__(self, doing: str, where: str) -> None:
        self.doing, self.where = doing, where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None or isinstance(exc, ExgateError) or not isinstance(exc, Exception):
            return
        # The Chinese says where, and the driver's own words; what was being done is in
        # the English, which the log keeps.
        if _transient(exc):
            raise RetriableError(f"cannot {self.doing} at {self.where}: "
                                 f"{first_line(exc)}; will retry",
                                 zh=f"监察库 {self.where} 暂时无法访问：{first_line(exc)}") \
                from exc
        if isinstance(exc, sa_exc.SQLAlchemyError):
            raise FatalError(f"cannot {self.doing} at {self.where}: {first_line(exc)}",
                             zh=f"监察库 {self.where} 出错：{first_line(exc)}") from exc


def _transient(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.OperationalError) and type(orig).__module__ == "sqlite3" \
            and any(text in str(orig) for text in _SQLITE_SCHEMA_ERRORS):
        return False
    state = getattr(orig, "sqlstate", None)
    return isinstance(exc, _TRANSIENT) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated) or (
        isinstance(state, str) and state.startswith(_OUTAGE_SQLSTATES))


def key_taken(exc: RetriableError) -> bool:
    return isinstance(exc.__cause__, sa_exc.IntegrityError)


def first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]

"""Connecting to any database exgate uses: the front-end tables (the database source,
``frontdb init``) and the level stores.

``engine_url`` parses every database URL, ``sqlite_file_under`` takes a relative SQLite
file from the config's folder, ``connect_args`` and ``bound_silent_servers`` bound how
long a silent server can hold a connection, and ``driver_detail`` says a database failure
in its driver's words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from adapters.config_files import redact, resolve_path
from adapters.connect_deadline import bound_connects
from schemas.errors import located

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "MYSQL_BACKENDS",
    "ROUND_TRIP_TIMEOUT_SECONDS",
    "bound_round_trips",
    "bound_silent_servers",
    "connect_args",
    "driver_detail",
    "engine_url",
    "shown_url",
    "sqlite_file_under",
]


# The drivers exgate depends on (pyproject), used when a URL names no driver.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "oracle": "oracle+oracledb",
}
MYSQL_BACKENDS = frozenset({"mysql", "mariadb"})


def engine_url(url: str | URL) -> URL:
    """Parse ``url``; pick exgate's own driver when the URL names none (``mysql://``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        shown = redact(str(url))  # SQLAlchemy's messages do not quote the URL
        raise located("url", f"{shown!r} is not a database URL ({exc})",
                      f"{shown!r} 不是数据库 URL（{exc}）") from exc
    if parsed.host is not None and "@" in parsed.host:
        # SQLAlchemy ends the password at its first '@': the rest of it would be taken
        # for the host, and printed as such in every connection error.
        shown = redact(str(url))
        raise located("url", f"{shown!r}: the password holds '@'; write it as %40 in the "
                      "URL, or keep the password in password_file",
                      f"{shown!r}：口令中含有 '@'；请在 URL 中写作 %40，或将口令放入 "
                      "password_file") from None
    default = _DEFAULT_DRIVERS.get(parsed.drivername)
    if default is not None:
        parsed = parsed.set(drivername=default)
    if parsed.get_backend_name() in MYSQL_BACKENDS and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def shown_url(url: URL) -> str:
    """``url`` for a message or a log: SQLAlchemy hides only the password before the
    host, and a driver takes one in the query too (``?password=``)."""
    return redact(url.render_as_string(hide_password=True))


def sqlite_file_under(url: URL, config: Path) -> URL:
    """``url`` with a relative SQLite database file taken from the folder of the config
    file ``config`` (``resolve_path``), as every path in a config is; other URLs, and
    SQLite's URI form (``?uri=true``, whose ``file:`` name SQLite itself reads), as given.

    Shared by the agent's ``[[sources]] url`` and the gateway's ``[store] url``.
    """
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") \
            or "uri" in url.query:
        return url
    return url.set(database=str(resolve_path(config, url.database or "")))


# A database host that stops answering must fail a connection, never hang it: without
# these, a server that accepts the TCP connection and then stays silent (hung, or behind
# a half-open firewall) holds psycopg and PyMySQL forever, and a peer gone without a
# reset holds a query for the kernel's two-hour keepalive. Failing turns into a
# RetriableError, retried at the next poll, and the other sources go on.
CONNECT_TIMEOUT_SECONDS = 10
# One round trip to a server that has answered the connect (PyMySQL's read timeout,
# Oracle's call timeout): generous enough for a legacy table's slow page, bounded enough
# that a server gone silent mid-query is given up on.
ROUND_TRIP_TIMEOUT_SECONDS = 300
_CONNECT_ARGS: dict[tuple[str, str], dict[str, Any]] = {
    **{("postgresql", driver): {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10,
        "keepalives_count": 6,
    } for driver in ("psycopg", "psycopg2")},
    **{(backend, driver): {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "read_timeout": ROUND_TRIP_TIMEOUT_SECONDS,
        "write_timeout": ROUND_TRIP_TIMEOUT_SECONDS,
    } for backend in MYSQL_BACKENDS for driver in ("pymysql", "mysqldb")},
    # A probe every minute on an idle connection, like PostgreSQL's keepalives: a
    # firewall between the front-end machine and the database keeps the pooled
    # connection, and a peer gone without a reset is noticed (cx_Oracle has no option).
    ("oracle", "oracledb"): {"expire_time": 1},
}


def connect_args(url: URL) -> dict[str, Any]:
    """The driver's timeouts that bound a silent server, minus those the URL sets itself."""
    wanted = _CONNECT_ARGS.get((url.get_backend_name(), url.get_driver_name()), {})
    return {name: value for name, value in wanted.items() if name not in url.query}


def bound_silent_servers(engine: Engine) -> Engine:
    """``engine``, its waits bounded where no connect argument bounds them: Oracle.

    Oracle's drivers bound only the TCP connect in thin mode (``connect_deadline``), so
    each connect waits at most ``CONNECT_TIMEOUT_SECONDS``; and each round trip of an
    open connection at most ``ROUND_TRIP_TIMEOUT_SECONDS`` (``bound_round_trips``).
    """
    if engine.dialect.name == "oracle":
        bound_connects(engine, CONNECT_TIMEOUT_SECONDS, ROUND_TRIP_TIMEOUT_SECONDS)
        event.listen(engine, "connect", bound_round_trips)
    return engine


def bound_round_trips(dbapi_connection: Any, _record: Any = None) -> None:
    """Give an Oracle connection a call timeout, where its driver has one
    (python-oracledb; cx_Oracle with 18c client libraries): a query the server stops
    answering then fails, like PyMySQL's read timeout, instead of holding its thread."""
    if hasattr(dbapi_connection, "call_timeout"):
        dbapi_connection.call_timeout = ROUND_TRIP_TIMEOUT_SECONDS * 1000  # milliseconds


def driver_detail(exc: SQLAlchemyError) -> str:
    """A database failure in the driver's own words, for an operator's message.

    SQLAlchemy's text adds "[SQL: …]", "[parameters: …]" (a page's whole query, row
    values) and "(Background on this error at: …)"; they are left out here, and the
    caller keeps ``exc`` chained as ``__cause__`` for whoever logs the traceback."""
    orig = getattr(exc, "orig", None)  # DBAPIError: the driver's exception
    if isinstance(orig, Exception):
        return f"({type(orig).__module__}.{type(orig).__name__}) {orig}"
    own = str(exc).split("\n(Background on this error at:", 1)[0]
    return f"{type(exc).__name__}: {own}"

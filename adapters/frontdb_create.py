"""``frontdb init`` on a server: create the missing front-end tables and the triggers.

Tables already there are checked before anything is created. One without a column
the catalogue has (made by an older exgate, or another table of that name) is refused
with the columns it lacks: ``CREATE TABLE`` would skip it silently, and the triggers,
which name every field, would then fail each of the legacy system's own INSERTs and
UPDATEs on it. On Oracle a trigger that does not compile is created all the same
(ORA-24344 is only a warning to the driver) and fails every write on its table
(ORA-04098), so the compile errors are read back and reported.
"""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from adapters.config_files import is_secret_option
from adapters.db_connect import (
    bound_silent_servers,
    connect_args,
    driver_detail,
    engine_url,
    shown_url,
)
from adapters.frontdb import FrontTables, front_tables, known_dialect, trigger_statements
from schemas.errors import ConfigError, FatalError, RetriableError, located

__all__ = ["LackingColumns", "TablesMissing", "TriggersInvalid", "create_all",
           "lacking_columns", "missing_tables"]


class LackingColumns(ConfigError):
    """Front-end tables exist without some of the catalogue's columns."""

    def __init__(self, lacking: dict[str, list[str]]) -> None:
        listed = "; ".join(f"{table} ({', '.join(columns)})" for table, columns in lacking.items())
        super().__init__(
            f"tables already there lack columns: {listed}. Nothing was created. They were"
            " made by an older exgate, or are other tables of those names; the triggers"
            " would fail the legacy system's writes to them. Add the columns (`exgate"
            " frontdb init --sql` shows each one's definition) or rename those tables,"
            " then run init again",
            zh=f"以下表已存在，但缺少列：{listed}。本次未创建任何内容。这些表可能由旧版 exgate"
               "创建，或是同名的其他表；若建触发器，遗留系统对它们的写入将会失败。请补齐这些列"
               "（exgate frontdb init --sql 可列出各列定义）或将这些表改名，然后重新执行 init")
        self.lacking = lacking


class TablesMissing(ConfigError):
    """Triggers asked for alone where the tables they go on are not all there."""

    def __init__(self, missing: list[str]) -> None:
        listed = ", ".join(missing)
        super().__init__(
            f"the triggers go on front-end tables that are not there: {listed}. Nothing"
            " was changed. Create the tables first (`exgate frontdb init` without"
            " --triggers-only)",
            zh=f"触发器所在的前置库表不存在：{listed}。本次未做任何更改。请先建表（执行"
               " exgate frontdb init，不带 --triggers-only）")
        self.missing = missing


class TriggersInvalid(FatalError):
    """Oracle created triggers that do not compile."""

    def __init__(self, where: str, errors: list[tuple[str, int, str]]) -> None:
        listed = "; ".join(f"{name} line {line}: {said.strip()}" for name, line, said in errors)
        super().__init__(
            f"triggers at {where} do not compile, and would fail every write to their"
            f" tables: {listed}. Drop them (DROP TRIGGER …) or fix the cause, then run init"
            " again",
            zh=f"{where} 上的触发器编译失败，会使其所在表的每次写入失败：{listed}。"
               "请删除这些触发器（DROP TRIGGER …）或排除原因后重新执行 init")


def create_all(url: str | URL, triggers: bool = False, tables_too: bool = True) -> None:
    """Create the missing front-end tables (and replace the triggers) at ``url``;
    ``tables_too=False``: replace the triggers only, on tables that must all be there
    (``TablesMissing``)."""
    parsed = engine_url(url)
    known_dialect(parsed.get_backend_name())
    try:
        engine = bound_silent_servers(create_engine(parsed, connect_args=connect_args(parsed)))
    except (NoSuchModuleError, ImportError) as exc:
        raise located("url", f"no driver for {parsed.drivername!r}: {exc}",
                      f"没有 {parsed.drivername!r} 的驱动：{exc}") from exc
    where = shown_url(parsed)
    try:
        tables = front_tables(engine.dialect.name)
        with _connected(engine, parsed) as conn, conn.begin():
            lacking = lacking_columns(conn, tables)
            if lacking:
                raise LackingColumns(lacking)
            if tables_too:
                tables.metadata.create_all(conn)
            elif missing := missing_tables(conn, tables):
                raise TablesMissing(missing)
            if triggers:
                for statement in trigger_statements(engine.dialect.name):
                    conn.exec_driver_sql(_escaped(statement, engine))
                errors = _oracle_trigger_errors(conn)
                if errors:
                    raise TriggersInvalid(where, errors)
    except SQLAlchemyError as exc:
        detail = driver_detail(exc)
        raise RetriableError(f"cannot create the front-end tables at {where}: {detail}",
                             zh=f"无法在 {where} 创建前置库表：{detail}") from exc
    finally:
        engine.dispose()


def _escaped(statement: str, engine: Engine) -> str:
    """``statement`` for a driver that reads "%" as a placeholder even with no parameters
    (psycopg: the trigger function's ``format('%I…')``)."""
    return statement.replace("%", "%%") if engine.dialect.paramstyle in ("format", "pyformat") \
        else statement


def missing_tables(conn: Connection, tables: FrontTables) -> list[str]:
    """The front-end tables not at ``conn``."""
    present = {name.lower() for name in inspect(conn).get_table_names()}
    return [table.name for table in (*tables.elements.values(), tables.changelog)
            if table.name.lower() not in present]


def lacking_columns(conn: Connection, tables: FrontTables) -> dict[str, list[str]]:
    """Table → the columns it lacks, for the front-end tables already at ``conn``."""
    inspector = inspect(conn)
    present = {name.lower(): name for name in inspector.get_table_names()}
    lacking: dict[str, list[str]] = {}
    for table in (*tables.elements.values(), tables.changelog):
        name = present.get(table.name.lower())
        if name is None:
            continue
        have = {column["name"].lower() for column in inspector.get_columns(name)}
        missing = [column.name for column in table.columns if column.name.lower() not in have]
        if missing:
            lacking[table.name] = missing
    return lacking


_ORACLE_TRIGGER_ERRORS = text(
    "SELECT name, line, text FROM user_errors WHERE type = 'TRIGGER'"
    " AND name LIKE 'EX\\_%' ESCAPE '\\' ORDER BY name, sequence")


def _oracle_trigger_errors(conn: Connection) -> list[tuple[str, int, str]]:
    if conn.dialect.name != "oracle":
        return []  # the other servers refuse a bad trigger at CREATE
    return [(str(name), int(line), str(said))
            for name, line, said in conn.execute(_ORACLE_TRIGGER_ERRORS)]


def _connected(engine: Engine, parsed: URL) -> Connection:
    """The first connection; an option after '?' the driver refuses with an error of its
    own rather than a database error (PyMySQL: "unexpected keyword argument", an unknown
    charset) is a URL error naming the options. The driver's words may quote a value:
    those of options named like a secret (``ssl_key_password``, ``wallet_password``) are
    masked in them, and so is the URL's password."""
    try:
        return engine.connect()
    except (TypeError, ValueError, LookupError, AttributeError) as exc:
        if not parsed.query:
            raise
        names = ", ".join(parsed.query)
        said = _masked(f"{type(exc).__name__}: {exc}", parsed)
        raise located("url", f"the driver refused an option of the URL ({names}): {said}",
                      f"驱动不接受 URL 中的某个选项（{names}）：{said}") from exc


def _masked(said: str, parsed: URL) -> str:
    if parsed.password:
        said = said.replace(str(parsed.password), "***")
    for name, value in parsed.query.items():
        if is_secret_option(name):
            for one in (value,) if isinstance(value, str) else value:
                if one:
                    said = said.replace(one, "***")
    return said

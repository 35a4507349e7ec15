"""The front-end tables of database mode (design §4), built from the schema catalogue.

One table ``EX_<CODE>`` per element holds the element's field columns plus the control
columns ``ROW_ID``, ``SYNC_FLAG``, ``SYNC_TIME``, ``SYNC_MSG`` and ``CREATED_AT``.
``EX_CHANGELOG`` is filled by optional triggers for the ``changelog`` read strategy.

Names are written so that a legacy system's plain, unquoted SQL (``INSERT INTO
EX_SBXX (SBLSH, …)``) finds them on every database: PostgreSQL and Oracle get
case-insensitive names (folded to lower and upper case by the server), MySQL keeps the
upper-case spelling because its table names are case-sensitive on Linux.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.dialects import mysql, oracle
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeEngine

from adapters.db_connect import (
    MYSQL_BACKENDS,
    engine_url,
)
from schemas.catalog import ElementSpec, SchemaCatalog, load_catalog
from schemas.errors import ConfigError

__all__ = [
    "AMOUNT_PRECISION",
    "AMOUNT_SCALE",
    "CHANGELOG",
    "CONTROL_COLUMNS",
    "DIALECTS",
    "SYNC_MSG_LENGTH",
    "FrontTables",
    "ddl_script",
    "fold_identifier",
    "front_tables",
    "known_dialect",
    "table_name",
    "trigger_statements",
]

CHANGELOG = "EX_CHANGELOG"
CONTROL_COLUMNS = ("ROW_ID", "SYNC_FLAG", "SYNC_TIME", "SYNC_MSG", "CREATED_AT")
SYNC_MSG_LENGTH = 2000
DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle")
# The XSD's Amount allows 16 digits *in all* and 2 of them after the point, so 16 digits
# before it (totalDigits=16 with no fraction): NUMERIC(16, 2) holds only 14.
AMOUNT_PRECISION, AMOUNT_SCALE = 18, 2

_CASE_INSENSITIVE = frozenset({"postgresql", "oracle"})
_MYSQL_OPTIONS: dict[str, Any] = {f"{prefix}_{option}": value for prefix in MYSQL_BACKENDS
                  for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"))}


@dataclass(frozen=True)
class FrontTables:
    """The front-end tables for one dialect; columns are keyed by their upper-case codes."""

    metadata: MetaData
    elements: dict[str, Table]  # element code → EX_<CODE>
    changelog: Table


def table_name(element_code: str) -> str:
    return f"EX_{element_code}"


def fold_identifier(name: str, dialect_name: str) -> str:
    """The spelling SQLAlchemy must use so that ``name`` renders unquoted where possible.

    SQLAlchemy treats lower-case names as case-insensitive; on PostgreSQL and Oracle an
    all-upper or all-lower name is therefore lowered, a mixed-case one kept (and quoted).
    """
    if dialect_name in _CASE_INSENSITIVE and (name.isupper() or name.islower()):
        return name.lower()
    return name


def _column_type(type_name: str) -> TypeEngine[Any]:
    """Column types per catalogue type; enumerations and codes share VARCHAR(50).

    Codes are generous on purpose: a too-long value should reach the validator and come
    back as a readable SYNC_MSG, not fail the legacy system's INSERT.
    """
    if type_name == "Time":
        # MySQL rounds a fraction away: 23:59:59.5 would be stored as the next day.
        return DateTime().with_variant(oracle.TIMESTAMP(), "oracle") \
            .with_variant(mysql.DATETIME(fsp=6), *MYSQL_BACKENDS)
    if type_name == "Amount":
        return Numeric(AMOUNT_PRECISION, AMOUNT_SCALE)
    if type_name in ("PositiveInt", "NonNegativeInt"):
        return Integer()
    if type_name == "Name":
        return _text(200)
    if type_name == "Text":
        return _text(2000)
    if type_name == "Sha256":
        return String(64)
    return String(50)


def _text(length: int) -> TypeEngine[Any]:
    # NVARCHAR2 counts characters in AL16UTF16: 2000 Chinese characters fit in Oracle's
    # 4000-byte limit, which VARCHAR2(2000 CHAR) in AL32UTF8 would not.
    return String(length).with_variant(oracle.NVARCHAR2(length), "oracle")


def _element_table(metadata: MetaData, spec: ElementSpec, dialect_name: str) -> Table:
    def col(code: str, *args: Any, **kwargs: Any) -> Column[Any]:
        return Column(fold_identifier(code, dialect_name), *args, key=code, **kwargs)

    name = table_name(spec.code)
    table = Table(
        fold_identifier(name, dialect_name), metadata,
        col("ROW_ID", _row_id_type(), Identity(), primary_key=True),
        *(col(f.code, _column_type(f.type_name), nullable=not f.required)
          for f in spec.fields.values()),
        col("SYNC_FLAG", SmallInteger(), nullable=False, server_default=text("0")),
        col("SYNC_TIME", _control_time()),
        col("SYNC_MSG", _text(SYNC_MSG_LENGTH)),
        col("CREATED_AT", _control_time(), nullable=False, server_default=func.current_timestamp()),
        sqlite_autoincrement=True,  # never reuse a ROW_ID, even after deletes
        **_MYSQL_OPTIONS,
        comment=f"{spec.label} ({spec.code})",
    )
    Index(fold_identifier(f"IX_{name}_SYNC", dialect_name), table.c.SYNC_FLAG, table.c.ROW_ID)
    return table


def _changelog_table(metadata: MetaData, dialect_name: str) -> Table:
    def col(code: str, *args: Any, **kwargs: Any) -> Column[Any]:
        return Column(fold_identifier(code, dialect_name), *args, key=code, **kwargs)

    return Table(
        fold_identifier(CHANGELOG, dialect_name), metadata,
        # ORDER: on RAC, each instance otherwise hands out SEQs from its own cache, far
        # out of commit order, and the changelog strategy gives up on a gap in time.
        col("SEQ", _row_id_type(), Identity(oracle_order=True), primary_key=True),
        col("TABLE_NAME", String(128), nullable=False),
        col("ROW_ID", BigInteger(), nullable=False),
        col("OP", String(1), nullable=False),
        col("CHANGED_AT", _control_time(), nullable=False,
            server_default=func.current_timestamp()),
        sqlite_autoincrement=True,
        **_MYSQL_OPTIONS,
        comment="changes to EX_ tables, appended by triggers",
    )


def _row_id_type() -> TypeEngine[Any]:
    # SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
    return BigInteger().with_variant(Integer(), "sqlite")


def _control_time() -> TypeEngine[Any]:
    return DateTime().with_variant(oracle.TIMESTAMP(), "oracle")


def front_tables(dialect_name: str, catalog: SchemaCatalog | None = None) -> FrontTables:
    """The EX_ tables and EX_CHANGELOG as SQLAlchemy Core tables for ``dialect_name``."""
    return _front_tables(dialect_name, (catalog or load_catalog()).version)


@cache
def _front_tables(dialect_name: str, version: int) -> FrontTables:
    catalog = load_catalog(version)
    metadata = MetaData()
    elements = {code: _element_table(metadata, spec, dialect_name)
                for code, spec in catalog.elements.items()}
    return FrontTables(metadata, elements, _changelog_table(metadata, dialect_name))


def known_dialect(url_or_dialect_name: str) -> Dialect:
    """The SQLAlchemy dialect of a URL or dialect name; ConfigError for one exgate does
    not support (its DDL and triggers are written for ``DIALECTS`` only)."""
    name = url_or_dialect_name if "://" not in url_or_dialect_name else \
        engine_url(url_or_dialect_name).get_backend_name()
    if name not in DIALECTS:
        choices = ", ".join(DIALECTS)
        raise ConfigError(f"unknown database dialect {name!r}; use one of {choices}",
                          zh=f"未知的数据库方言 {name!r}；请使用以下之一：{choices}")
    # The bare dialect compiles without importing its driver (no connection needed).
    dialect: Dialect = make_url(f"{name}://").get_dialect()()
    return dialect


def ddl_script(url_or_dialect_name: str, triggers: bool = False,
               tables_too: bool = True) -> str:
    """The CREATE statements for a DBA to review, in the SQL of the URL's database;
    ``tables_too=False``: the triggers' alone, to replace them on tables already there."""
    dialect = known_dialect(url_or_dialect_name)
    tables = front_tables(dialect.name)
    statements: list[str] = []
    for table in (*tables.elements.values(), tables.changelog) if tables_too else ():
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        statements.extend(str(CreateIndex(index).compile(dialect=dialect)).strip()
                          for index in sorted(table.indexes, key=lambda i: str(i.name)))
    if triggers:
        statements.extend(trigger_statements(dialect.name))
    if dialect.name == "oracle":  # SQL*Plus ends a PL/SQL block with "/" on its own line
        return "\n\n".join(s + ("\n/" if s.rstrip().endswith("END;") else ";")
                           for s in statements) + "\n"
    return "\n\n".join(s.rstrip(";") + ";" for s in statements) + "\n"


# -- triggers ------------------------------------------------------------------------------

def trigger_statements(dialect_name: str, catalog: SchemaCatalog | None = None) -> list[str]:
    """Statements that (re)create the changelog triggers of every EX_ table.

    An insert is always logged. An update is logged when a field column changed or
    ``SYNC_FLAG`` went back to 0 (a replay request), never for the agent's own
    bookkeeping (``SYNC_FLAG``/``SYNC_TIME``/``SYNC_MSG``), which would loop forever.

    An update that changed a field also sets the row's ``SYNC_FLAG`` back to 0: should
    its log entry never be read (its transaction outlasted the gap wait, and the agent
    gave its SEQ up), the agent's sweep of the rows at 0 still finds the change.
    """
    catalog = catalog or load_catalog()
    writer = _TRIGGER_WRITERS.get(dialect_name)
    if writer is None:
        choices = ", ".join(_TRIGGER_WRITERS)
        raise ConfigError(f"no changelog triggers for dialect {dialect_name!r}; "
                          f"use one of {choices}",
                          zh=f"没有适用于方言 {dialect_name!r} 的变更日志触发器；"
                             f"请使用以下之一：{choices}")
    statements = list(writer.prologue)
    for spec in catalog.elements.values():
        statements.extend(writer.table(table_name(spec.code), tuple(spec.fields)))
    return statements


def _edited(fields: Iterable[str], same: str, old: str, new: str) -> str:
    """Whether an update changed a field column."""
    equal = " AND ".join(same.format(old=f"{old}.{f}", new=f"{new}.{f}") for f in fields)
    return f"NOT ({equal})"


@dataclass(frozen=True)
class _TriggerWriter:
    """A dialect's triggers of one table: ``insert`` logs a new row; ``update`` logs a
    change ({changed}: an edit, or SYNC_FLAG set back to 0) and sets an edited row's
    SYNC_FLAG to 0, unless ``reset`` does the latter (MySQL: a trigger of one statement)."""

    prologue: tuple[str, ...]
    insert: str
    update: str
    same: str          # a NULL-safe equality of {old} and {new}
    old: str = "OLD"
    new: str = "NEW"
    drop: str = ""
    reset: str = ""

    def table(self, name: str, fields: tuple[str, ...]) -> list[str]:
        edited = _edited(fields, self.same, self.old, self.new)
        changed = f"({self.new}.SYNC_FLAG = 0 AND {self.old}.SYNC_FLAG <> 0) OR {edited}"
        args = {"table": name, "changed": changed, "edited": edited}
        made = {"AI": self.insert, "AU": self.update, "BU": self.reset}
        drops = [self.drop.format(trigger=f"{name}_{suffix}", **args)
                 for suffix, create in made.items() if create]
        return [*filter(None, drops), *(s.format(**args) for s in made.values() if s)]


_LOG = "INSERT INTO EX_CHANGELOG (TABLE_NAME, ROW_ID, OP, CHANGED_AT)"

_TRIGGER_WRITERS = {
    "sqlite": _TriggerWriter(
        prologue=(),
        drop="DROP TRIGGER IF EXISTS {trigger}",
        insert=("CREATE TRIGGER {table}_AI AFTER INSERT ON {table} FOR EACH ROW BEGIN "
                + _LOG + " VALUES ('{table}', NEW.ROW_ID, 'I', CURRENT_TIMESTAMP); END"),
        # The inner UPDATE does not fire this trigger again (recursive_triggers is off
        # unless a connection turns it on; then it logs the row once more, and stops).
        update=("CREATE TRIGGER {table}_AU AFTER UPDATE ON {table} FOR EACH ROW "
                "WHEN {changed} BEGIN "
                + _LOG + " VALUES ('{table}', NEW.ROW_ID, 'U', CURRENT_TIMESTAMP); "
                "UPDATE {table} SET SYNC_FLAG = 0 WHERE ROW_ID = NEW.ROW_ID"
                " AND SYNC_FLAG <> 0; END"),
        same="{old} IS {new}",
    ),
    "postgresql": _TriggerWriter(
        # The function runs with its owner's rights, as the triggers of the other servers
        # do: the legacy system's user needs no right on EX_CHANGELOG, nor to have it on
        # its search_path. So its search_path is pinned, and the log named in the
        # schema of the table that fired. EXECUTE PROCEDURE: PostgreSQL 10 and older.
        # The update trigger runs before the row is written, so that it can set its flag
        # (RETURN NEW; an AFTER trigger's result is ignored).
        prologue=(
            "CREATE OR REPLACE FUNCTION EX_CHANGELOG_APPEND() RETURNS trigger "
            "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
            "BEGIN EXECUTE format('" + _LOG.replace("EX_CHANGELOG", "%I.EX_CHANGELOG")
            + " VALUES ($1, $2, $3, LOCALTIMESTAMP)', TG_TABLE_SCHEMA) "
            "USING upper(TG_TABLE_NAME), NEW.ROW_ID, left(TG_OP, 1); "
            "IF TG_OP = 'UPDATE' THEN NEW.SYNC_FLAG := 0; END IF; RETURN NEW; END $$",
        ),
        drop="DROP TRIGGER IF EXISTS {trigger} ON {table}",
        insert=("CREATE TRIGGER {table}_AI AFTER INSERT ON {table} FOR EACH ROW "
                "EXECUTE PROCEDURE EX_CHANGELOG_APPEND()"),
        update=("CREATE TRIGGER {table}_AU BEFORE UPDATE ON {table} FOR EACH ROW "
                "WHEN ({changed}) EXECUTE PROCEDURE EX_CHANGELOG_APPEND()"),
        same="{old} IS NOT DISTINCT FROM {new}",
    ),
    # A single-statement body needs no DELIMITER, so the script runs in the mysql client.
    "mysql": _TriggerWriter(
        prologue=(),
        drop="DROP TRIGGER IF EXISTS {trigger}",
        insert=("CREATE TRIGGER {table}_AI AFTER INSERT ON {table} FOR EACH ROW "
                + _LOG + " VALUES ('{table}', NEW.ROW_ID, 'I', CURRENT_TIMESTAMP)"),
        update=("CREATE TRIGGER {table}_AU AFTER UPDATE ON {table} FOR EACH ROW "
                + _LOG + " SELECT '{table}', NEW.ROW_ID, 'U', CURRENT_TIMESTAMP FROM DUAL "
                "WHERE {changed}"),
        reset=("CREATE TRIGGER {table}_BU BEFORE UPDATE ON {table} FOR EACH ROW "
               "SET NEW.SYNC_FLAG = IF({edited}, 0, NEW.SYNC_FLAG)"),
        # Compared as bytes: the tables' default collation is case- and (for some)
        # width-insensitive, and a correction of the case only (a credit code's letters)
        # would not be logged, its reject never read again.
        same="CAST({old} AS BINARY) <=> CAST({new} AS BINARY)",
    ),
    "oracle": _TriggerWriter(
        prologue=(),
        insert=("CREATE OR REPLACE TRIGGER {table}_AI AFTER INSERT ON {table} FOR EACH ROW "
                "BEGIN " + _LOG + " VALUES ('{table}', :NEW.ROW_ID, 'I', SYSTIMESTAMP); END;"),
        # Before the row is written, to set its flag; replaced in place, keeping its name.
        update=("CREATE OR REPLACE TRIGGER {table}_AU BEFORE UPDATE ON {table} FOR EACH ROW "
                "WHEN ({changed}) "
                "BEGIN " + _LOG + " VALUES ('{table}', :NEW.ROW_ID, 'U', SYSTIMESTAMP); "
                ":NEW.SYNC_FLAG := 0; END;"),
        # Never UNKNOWN: with one side NULL, ``old = new`` is, and NOT(UNKNOWN) would not
        # fire for a field filled or cleared (how a missing-field reject is corrected).
        same="(({old} IS NULL AND {new} IS NULL)"
             " OR ({old} IS NOT NULL AND {new} IS NOT NULL AND {old} = {new}))",
    ),
}
_TRIGGER_WRITERS["mariadb"] = _TRIGGER_WRITERS["mysql"]

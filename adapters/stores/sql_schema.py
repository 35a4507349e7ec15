"""The central store's tables (design §7) as SQLAlchemy Core metadata.

One table ``ST_<CODE>`` per element, built from the schema catalogue (never from a
hand list): the element's field columns, plus ``DIGEST`` (sha256 of the canonical
record), ``BATCH_ID``, ``NODE_ID`` and ``STORED_AT``. The primary key is the business
key plus ``SJBBH``, so every version of a record is kept and a version is stored once.

Control tables: ``ST_BATCH`` (one row per stored batch), ``ST_FAILED_BATCH`` (refused
batches with their sealed payload), ``ST_CONFLICT`` (same key and version, other
content), ``ST_NODE`` (mirror of the registry), ``ST_RECEIPT`` and ``ST_HEARTBEAT``.
``ST_COVERAGE`` (revision 0002) keeps, per node and element, when records last arrived
and how many were stored, written in the batch's transaction so the status dashboard
never groups the element tables. Revision 0003 widens amounts to every value the XSD
accepts; 0004 makes MySQL compare texts as binary, as the other databases do.

Names are folded per dialect as the front-end tables are (``adapters.frontdb``): plain
SQL such as ``SELECT * FROM ST_SBXX`` works on every database. Columns are reached by
their upper-case code (``table.c.SBLSH``) whatever the dialect spells them.

Any change here needs a new migration in ``migrations/versions``; a test compares the
migrated database with this metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, oracle
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from adapters.frontdb import AMOUNT_PRECISION, AMOUNT_SCALE, fold_identifier
from adapters.stores.base import BATCH_ID_LENGTH
from schemas.catalog import ElementSpec, SchemaCatalog, load_catalog

__all__ = [
    "BATCH_ID_LENGTH",
    "CONTROL_TABLES",
    "NODE_ID_LENGTH",
    "RESOLUTION_NOTE_LENGTH",
    "RESOLVER_LENGTH",
    "VERSION_TABLE",
    "ElementTable",
    "ExactAmount",
    "StoreSchema",
    "column_type",
    "element_table_name",
    "store_schema",
]

VERSION_TABLE = "ST_SCHEMA_VERSION"  # Alembic's revision table
NODE_ID_LENGTH = 64
RESOLVER_LENGTH, RESOLUTION_NOTE_LENGTH = 64, 500  # characters: who settled a conflict, why
_CENT = Decimal(1).scaleb(-AMOUNT_SCALE)
CONTROL_TABLES = ("ST_BATCH", "ST_FAILED_BATCH", "ST_CONFLICT", "ST_NODE", "ST_RECEIPT",
                  "ST_HEARTBEAT", "ST_COVERAGE")
# Binary: the default utf8mb4 collations fold case, so keys the look-up tells apart
# collided in the primary key (revision 0004).
_MYSQL_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
                                  "mysql_collate": "utf8mb4_bin"}


@dataclass(frozen=True)
class ElementTable:
    """An element's store table and what the writer needs to know about it."""

    spec: ElementSpec
    table: Table

    @property
    def key_columns(self) -> tuple[Column[Any], ...]:
        return tuple(self.table.c[code] for code in self.spec.key)


@dataclass(frozen=True)
class StoreSchema:
    """Every store table for one dialect; element tables by element code."""

    metadata: MetaData
    elements: dict[str, ElementTable]
    batch: Table
    failed: Table
    conflict: Table
    node: Table
    receipt: Table
    heartbeat: Table
    coverage: Table


def element_table_name(code: str) -> str:
    return f"ST_{code}"


def column_type(type_name: str) -> TypeEngine[Any]:
    """The column type of a catalogue field type (same sizes as the XSD's facets)."""
    if type_name == "Time":
        return DateTime()
    if type_name == "Amount":
        return ExactAmount()
    if type_name in ("PositiveInt", "NonNegativeInt"):
        return Integer()
    if type_name == "Name":
        return _unicode(200)
    if type_name == "Text":
        return _unicode(2000)
    if type_name == "Sha256":
        return String(64)
    return String(50)


class ExactAmount(TypeDecorator[Decimal]):
    """NUMERIC(18, 2); on SQLite the decimal as text, so that it comes back exact.

    SQLite's NUMERIC affinity keeps a number as a 64-bit float, which rounds 16-digit
    amounts (99999999999999.99 came back as …98): a SQLite level disagreed with the others
    and exported amounts nobody sent. Text stays exact; the scale is the other databases'.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(AMOUNT_PRECISION + 1))
        return dialect.type_descriptor(Numeric(AMOUNT_PRECISION, AMOUNT_SCALE))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return format(Decimal(value).quantize(_CENT), "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or dialect.name != "sqlite":
            return value  # type: ignore[no-any-return]
        return Decimal(str(value)).quantize(_CENT)


def _unicode(length: int) -> TypeEngine[Any]:
    # NVARCHAR2 counts characters: 2000 Chinese characters fit Oracle's 4000-byte cap.
    return String(length).with_variant(oracle.NVARCHAR2(length), "oracle")


def _surrogate() -> TypeEngine[Any]:
    # SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
    return BigInteger().with_variant(Integer(), "sqlite")


def _blob() -> TypeEngine[Any]:
    return LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def _long_text() -> TypeEngine[Any]:
    return Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def store_schema(dialect_name: str, catalog: SchemaCatalog | None = None) -> StoreSchema:
    """The store's tables for ``dialect_name`` (``sqlite``, ``postgresql``, …)."""
    return _store_schema(dialect_name, (catalog or load_catalog()).version)


@cache
def _store_schema(dialect_name: str, version: int) -> StoreSchema:
    catalog = load_catalog(version)
    builder = _Builder(MetaData(), dialect_name)
    elements = {code: ElementTable(spec, builder.element(spec))
                for code, spec in catalog.elements.items()}
    return StoreSchema(
        metadata=builder.metadata, elements=elements, batch=builder.batch(),
        failed=builder.failed(), conflict=builder.conflict(), node=builder.node(),
        receipt=builder.receipt(), heartbeat=builder.heartbeat(),
        coverage=builder.coverage(),
    )


@dataclass(frozen=True)
class _Builder:
    metadata: MetaData
    dialect: str

    def name(self, name: str) -> str:
        return fold_identifier(name, self.dialect)

    def col(self, code: str, *args: Any, **kwargs: Any) -> Column[Any]:
        return Column(self.name(code), *args, key=code, **kwargs)

    def table(self, name: str, *items: Any) -> Table:
        return Table(self.name(name), self.metadata, *items, **_MYSQL_OPTIONS)

    def surrogate(self, code: str) -> Column[Any]:
        return self.col(code, _surrogate(), Identity(), primary_key=True)

    def element(self, spec: ElementSpec) -> Table:
        name = element_table_name(spec.code)
        key = (*spec.key, "SJBBH")
        fields = [self.col(f.code, column_type(f.type_name),
                           nullable=not (f.required or f.code in key))
                  for f in spec.fields.values()]
        table = self.table(
            name, *fields,
            self.col("DIGEST", String(64), nullable=False),
            self.col("BATCH_ID", String(BATCH_ID_LENGTH), nullable=False),
            self.col("NODE_ID", String(NODE_ID_LENGTH), nullable=False),
            self.col("STORED_AT", DateTime(), nullable=False),
            PrimaryKeyConstraint(*key, name=self.name(f"PK_{name}")),
        )
        Index(self.name(f"IX_{name}_BATCH"), table.c.BATCH_ID)
        return table

    def batch(self) -> Table:
        return self.table(
            "ST_BATCH",
            self.col("BATCH_ID", String(BATCH_ID_LENGTH), primary_key=True),
            self.col("NODE_ID", String(NODE_ID_LENGTH), nullable=False),
            self.col("NODE_DIVISION", String(6), nullable=False),
            self.col("SCHEMA_VERSION", Integer(), nullable=False),
            self.col("PAYLOAD_SHA256", String(64), nullable=False),
            self.col("RECORDS", Integer(), nullable=False),
            self.col("STORED", Integer(), nullable=False),
            self.col("DUPLICATES", Integer(), nullable=False),
            self.col("CONFLICTS", Integer(), nullable=False),
            self.col("STATE", String(16), nullable=False),
            self.col("RECEIVED_AT", DateTime(), nullable=False),
            self.col("STORED_AT", DateTime(), nullable=False),
            Index(self.name("IX_ST_BATCH_NODE"), "NODE_ID", "STORED_AT"),
            Index(self.name("IX_ST_BATCH_STORED"), "STORED_AT"),  # 0002: throughput
        )

    def failed(self) -> Table:
        return self.table(
            "ST_FAILED_BATCH",
            self.surrogate("FAILED_ID"),
            self.col("BATCH_ID", String(BATCH_ID_LENGTH), nullable=False),
            self.col("NODE_ID", String(NODE_ID_LENGTH)),
            self.col("REASON", String(50), nullable=False),
            self.col("DETAIL", _unicode(2000), nullable=False),
            self.col("ROUTING_KEY", String(255), nullable=False),
            self.col("USER_ID", String(255)),
            self.col("HEADERS", _long_text(), nullable=False),
            self.col("BODY_SHA256", String(64), nullable=False),
            self.col("BODY", _blob(), nullable=False),
            self.col("RECEIVED_AT", DateTime(), nullable=False),
            self.col("REPLAYED_AT", DateTime()),
            UniqueConstraint("BATCH_ID", "BODY_SHA256",
                             name=self.name("UQ_ST_FAILED_BATCH_BODY")),
            Index(self.name("IX_ST_FAILED_BATCH_NODE"), "NODE_ID"),
        )

    def conflict(self) -> Table:
        return self.table(
            "ST_CONFLICT",
            self.surrogate("CONFLICT_ID"),
            self.col("ELEMENT", String(10), nullable=False),
            self.col("KEY_TEXT", String(255), nullable=False),
            self.col("SJBBH", Integer(), nullable=False),
            self.col("STORED_DIGEST", String(64), nullable=False),
            self.col("INCOMING_DIGEST", String(64), nullable=False),
            self.col("BATCH_ID", String(BATCH_ID_LENGTH), nullable=False),
            self.col("NODE_ID", String(NODE_ID_LENGTH), nullable=False),
            self.col("PAYLOAD", _long_text(), nullable=False),
            self.col("DETECTED_AT", DateTime(), nullable=False),
            self.col("RESOLVED_AT", DateTime()),
            self.col("RESOLVED_BY", _unicode(RESOLVER_LENGTH)),  # 0005: who, and why
            self.col("RESOLUTION_NOTE", _unicode(RESOLUTION_NOTE_LENGTH)),
            Index(self.name("IX_ST_CONFLICT_KEY"), "ELEMENT", "KEY_TEXT"),
        )

    def node(self) -> Table:
        return self.table(
            "ST_NODE",
            self.col("NODE_ID", String(NODE_ID_LENGTH), primary_key=True),
            self.col("DIVISION", String(6), nullable=False),
            self.col("BROKER_USER", String(255), nullable=False),
            self.col("STATUS", String(16), nullable=False),
            self.col("KEY_VERSIONS", String(255), nullable=False),
            self.col("LAST_SEEN_AT", DateTime()),
            self.col("UPDATED_AT", DateTime(), nullable=False),
        )

    def receipt(self) -> Table:
        return self.table(
            "ST_RECEIPT",
            self.surrogate("RECEIPT_ID"),
            self.col("BATCH_ID", String(BATCH_ID_LENGTH), nullable=False),
            self.col("NODE_ID", String(NODE_ID_LENGTH), nullable=False),
            self.col("STATUS", String(16), nullable=False),
            self.col("BODY", _long_text(), nullable=False),
            self.col("SENT_AT", DateTime(), nullable=False),
            Index(self.name("IX_ST_RECEIPT_BATCH"), "BATCH_ID"),
        )

    def heartbeat(self) -> Table:
        return self.table(
            "ST_HEARTBEAT",
            self.surrogate("HEARTBEAT_ID"),
            self.col("NODE_ID", String(NODE_ID_LENGTH), nullable=False),
            self.col("DIVISION", String(6)),
            self.col("SENT_AT", DateTime()),
            self.col("RECEIVED_AT", DateTime(), nullable=False),
            self.col("VERSION", String(50)),
            self.col("OUTBOX", _long_text(), nullable=False),
            self.col("SOURCE_LAG_S", Float()),
            self.col("LAST_ERROR", _unicode(2000)),
            Index(self.name("IX_ST_HEARTBEAT_NODE"), "NODE_ID",
                  "RECEIVED_AT"),
            Index(self.name("IX_ST_HEARTBEAT_AT"), "RECEIVED_AT"),  # 0002: recent beats
        )

    # -- revision 0002: the sync-status dashboard ------------------------------------------

    def coverage(self) -> Table:
        return self.table(
            "ST_COVERAGE",
            self.col("NODE_ID", String(NODE_ID_LENGTH), nullable=False),
            self.col("ELEMENT", String(10), nullable=False),
            self.col("FIRST_AT", DateTime(), nullable=False),
            self.col("LAST_AT", DateTime(), nullable=False),
            self.col("RECORDS", BigInteger(), nullable=False),
            PrimaryKeyConstraint("NODE_ID", "ELEMENT", name=self.name("PK_ST_COVERAGE")),
        )

"""The central store, schema version 1 of the exchange XML.

Frozen on purpose: this revision never follows later edits of ``sql_schema.py``.
Element tables come from the catalogue of schema version 1, whose XSD never changes
(a new schema version gets a new namespace, and its new fields a new revision).

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, oracle

from adapters.frontdb import fold_identifier
from schemas.catalog import load_catalog

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_TYPES: dict[str, Any] = {
    "Time": sa.DateTime(), "Amount": sa.Numeric(16, 2), "PositiveInt": sa.Integer(),
    "NonNegativeInt": sa.Integer(), "Sha256": sa.String(64),
}


def _n(name: str) -> str:
    return fold_identifier(name, op.get_bind().dialect.name)


def _unicode(length: int) -> Any:
    return sa.String(length).with_variant(oracle.NVARCHAR2(length), "oracle")


def _long_text() -> Any:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _type(type_name: str) -> Any:
    if type_name == "Name":
        return _unicode(200)
    if type_name == "Text":
        return _unicode(2000)
    return _TYPES.get(type_name, sa.String(50))


def _c(name: str, type_: Any, nullable: bool = True, **kw: Any) -> sa.Column[Any]:
    return sa.Column(_n(name), type_, nullable=nullable, **kw)


def _surrogate(name: str) -> sa.Column[Any]:
    return sa.Column(_n(name), sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                     sa.Identity(), primary_key=True)


def _index(name: str, table: str, *columns: str, unique: bool = False) -> None:
    op.create_index(_n(name), _n(table), [_n(c) for c in columns], unique=unique)


def _element_tables() -> None:
    for code, spec in load_catalog(1).elements.items():
        name = f"ST_{code}"
        key = (*spec.key, "SJBBH")
        op.create_table(
            _n(name),
            *(_c(f.code, _type(f.type_name), nullable=not (f.required or f.code in key))
              for f in spec.fields.values()),
            _c("DIGEST", sa.String(64), False), _c("BATCH_ID", sa.String(100), False),
            _c("NODE_ID", sa.String(64), False), _c("STORED_AT", sa.DateTime(), False),
            sa.PrimaryKeyConstraint(*(_n(k) for k in key), name=_n(f"PK_{name}")),
            **_MYSQL,
        )
        _index(f"IX_{name}_BATCH", name, "BATCH_ID")


def _batch_tables() -> None:
    op.create_table(
        _n("ST_BATCH"),
        _c("BATCH_ID", sa.String(100), False, primary_key=True),
        _c("NODE_ID", sa.String(64), False), _c("NODE_DIVISION", sa.String(6), False),
        _c("SCHEMA_VERSION", sa.Integer(), False), _c("PAYLOAD_SHA256", sa.String(64), False),
        _c("RECORDS", sa.Integer(), False), _c("STORED", sa.Integer(), False),
        _c("DUPLICATES", sa.Integer(), False), _c("CONFLICTS", sa.Integer(), False),
        _c("STATE", sa.String(16), False), _c("RECEIVED_AT", sa.DateTime(), False),
        _c("STORED_AT", sa.DateTime(), False), **_MYSQL,
    )
    _index("IX_ST_BATCH_NODE", "ST_BATCH", "NODE_ID", "STORED_AT")
    op.create_table(
        _n("ST_FAILED_BATCH"), _surrogate("FAILED_ID"),
        _c("BATCH_ID", sa.String(100), False), _c("NODE_ID", sa.String(64)),
        _c("REASON", sa.String(50), False), _c("DETAIL", _unicode(2000), False),
        _c("ROUTING_KEY", sa.String(255), False), _c("USER_ID", sa.String(255)),
        _c("HEADERS", _long_text(), False), _c("BODY_SHA256", sa.String(64), False),
        _c("BODY", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), False),
        _c("RECEIVED_AT", sa.DateTime(), False), _c("REPLAYED_AT", sa.DateTime()),
        sa.UniqueConstraint(_n("BATCH_ID"), _n("BODY_SHA256"),
                            name=_n("UQ_ST_FAILED_BATCH_BODY")),
        **_MYSQL,
    )
    _index("IX_ST_FAILED_BATCH_NODE", "ST_FAILED_BATCH", "NODE_ID")
    op.create_table(
        _n("ST_CONFLICT"), _surrogate("CONFLICT_ID"),
        _c("ELEMENT", sa.String(10), False), _c("KEY_TEXT", sa.String(255), False),
        _c("SJBBH", sa.Integer(), False), _c("STORED_DIGEST", sa.String(64), False),
        _c("INCOMING_DIGEST", sa.String(64), False), _c("BATCH_ID", sa.String(100), False),
        _c("NODE_ID", sa.String(64), False), _c("PAYLOAD", _long_text(), False),
        _c("DETECTED_AT", sa.DateTime(), False), _c("RESOLVED_AT", sa.DateTime()),
        **_MYSQL,
    )
    _index("IX_ST_CONFLICT_KEY", "ST_CONFLICT", "ELEMENT", "KEY_TEXT")


def _node_tables() -> None:
    op.create_table(
        _n("ST_NODE"),
        _c("NODE_ID", sa.String(64), False, primary_key=True),
        _c("DIVISION", sa.String(6), False), _c("BROKER_USER", sa.String(255), False),
        _c("STATUS", sa.String(16), False), _c("KEY_VERSIONS", sa.String(255), False),
        _c("LAST_SEEN_AT", sa.DateTime()), _c("UPDATED_AT", sa.DateTime(), False),
        **_MYSQL,
    )
    op.create_table(
        _n("ST_RECEIPT"), _surrogate("RECEIPT_ID"),
        _c("BATCH_ID", sa.String(100), False), _c("NODE_ID", sa.String(64), False),
        _c("STATUS", sa.String(16), False), _c("BODY", _long_text(), False),
        _c("SENT_AT", sa.DateTime(), False), **_MYSQL,
    )
    _index("IX_ST_RECEIPT_BATCH", "ST_RECEIPT", "BATCH_ID")
    op.create_table(
        _n("ST_HEARTBEAT"), _surrogate("HEARTBEAT_ID"),
        _c("NODE_ID", sa.String(64), False), _c("DIVISION", sa.String(6)),
        _c("SENT_AT", sa.DateTime()), _c("RECEIVED_AT", sa.DateTime(), False),
        _c("VERSION", sa.String(50)), _c("OUTBOX", _long_text(), False),
        _c("SOURCE_LAG_S", sa.Float()), _c("LAST_ERROR", _unicode(2000)), **_MYSQL,
    )
    _index("IX_ST_HEARTBEAT_NODE", "ST_HEARTBEAT", "NODE_ID", "RECEIVED_AT")


def upgrade() -> None:
    _element_tables()
    _batch_tables()
    _node_tables()


def downgrade() -> None:
    tables = [f"ST_{code}" for code in load_catalog(1).elements]
    for name in (*tables, "ST_BATCH", "ST_FAILED_BATCH", "ST_CONFLICT", "ST_NODE",
                 "ST_RECEIPT", "ST_HEARTBEAT"):
        op.drop_table(_n(name))

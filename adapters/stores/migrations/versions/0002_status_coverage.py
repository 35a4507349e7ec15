"""Sync status: per-node element coverage, and indexes for the dashboard's time windows.

``ST_COVERAGE`` holds one row per (node, element): when that node's records of the
element first and last arrived and how many were stored. The store updates it in each
batch's transaction; this revision fills it once from the element tables, so a store
upgraded with data already in it shows its history. Frozen like 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.frontdb import fold_identifier
from schemas.catalog import load_catalog

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _n(name: str) -> str:
    return fold_identifier(name, op.get_bind().dialect.name)


def _backfill() -> None:
    coverage = sa.table(_n("ST_COVERAGE"), *(sa.column(_n(c)) for c in (
        "NODE_ID", "ELEMENT", "FIRST_AT", "LAST_AT", "RECORDS")))
    for code in load_catalog(1).elements:
        t = sa.table(_n(f"ST_{code}"), sa.column(_n("NODE_ID")), sa.column(_n("STORED_AT")))
        node, stored = t.c[_n("NODE_ID")], t.c[_n("STORED_AT")]
        rows = sa.select(node, sa.literal(code, sa.String(10)), sa.func.min(stored),
                         sa.func.max(stored), sa.func.count()).group_by(node)
        op.execute(sa.insert(coverage).from_select(list(coverage.c), rows))


def upgrade() -> None:
    op.create_table(
        _n("ST_COVERAGE"),
        sa.Column(_n("NODE_ID"), sa.String(64), nullable=False),
        sa.Column(_n("ELEMENT"), sa.String(10), nullable=False),
        sa.Column(_n("FIRST_AT"), sa.DateTime(), nullable=False),
        sa.Column(_n("LAST_AT"), sa.DateTime(), nullable=False),
        sa.Column(_n("RECORDS"), sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(_n("NODE_ID"), _n("ELEMENT"), name=_n("PK_ST_COVERAGE")),
        **_MYSQL,
    )
    op.create_index(_n("IX_ST_BATCH_STORED"), _n("ST_BATCH"), [_n("STORED_AT")])
    op.create_index(_n("IX_ST_HEARTBEAT_AT"), _n("ST_HEARTBEAT"), [_n("RECEIVED_AT")])
    _backfill()


def downgrade() -> None:
    op.drop_index(_n("IX_ST_HEARTBEAT_AT"), _n("ST_HEARTBEAT"))
    op.drop_index(_n("IX_ST_BATCH_STORED"), _n("ST_BATCH"))
    op.drop_table(_n("ST_COVERAGE"))

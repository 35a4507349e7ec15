"""MySQL and MariaDB: binary collation (utf8mb4_bin) on every store table.

Their default utf8mb4 collations ignore case (and, for some, accents and trailing
spaces): SBLSH ``SB0001`` and ``sb0001`` collided in a primary key while the store's
look-up, like the other databases, told them apart. The batch then failed on every
attempt. Binary comparison is what the XSD's codes mean. Converting rebuilds each
table. Other databases compare bytes already: nothing to do. Frozen like 0001.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from schemas.catalog import load_catalog

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CONTROL = ("ST_BATCH", "ST_FAILED_BATCH", "ST_CONFLICT", "ST_NODE", "ST_RECEIPT",
            "ST_HEARTBEAT", "ST_COVERAGE")


def _convert(collation: str) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for name in (*(f"ST_{code}" for code in load_catalog(1).elements), *_CONTROL):
        op.execute(f"ALTER TABLE {name} CONVERT TO CHARACTER SET utf8mb4{collation}")


def upgrade() -> None:
    _convert(" COLLATE utf8mb4_bin")


def downgrade() -> None:
    _convert("")  # the character set's default collation, as 0001 created them

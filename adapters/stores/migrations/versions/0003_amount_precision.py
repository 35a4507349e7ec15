"""Amounts: NUMERIC(18, 2), so that every amount the XSD accepts fits.

The XSD's ``Amount`` has totalDigits=16 and fractionDigits=2: 16 digits before the
point are valid (``1234567890123456``), which NUMERIC(16, 2) refuses on PostgreSQL,
MySQL and Oracle. Such a batch failed every delivery and every replay there, while a
SQLite level stored it. Every other column was checked against its XSD type: integers
stop at 2147483647 (INTEGER), texts at their ``maxLength`` in characters (VARCHAR /
NVARCHAR2 of the same length), times are canonical seconds (DATETIME / DATE).

On SQLite an amount becomes decimal text: NUMERIC affinity keeps a 64-bit float, which
rounds 16-digit amounts (99999999999999.99 read back as …98); text stays exact. SQLite
cannot alter a column's type, so the table is rebuilt (Alembic's batch mode); the other
databases widen the column in place. Frozen like 0001.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.frontdb import fold_identifier
from schemas.catalog import load_catalog

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _n(name: str) -> str:
    return fold_identifier(name, op.get_bind().dialect.name)


def _amount(precision: int) -> Any:
    if op.get_bind().dialect.name == "sqlite" and precision == 18:
        return sa.String(precision + 1)
    return sa.Numeric(precision, 2)


def _amounts(old: Any, new: Any) -> None:
    for code, spec in load_catalog(1).elements.items():
        fields = [f for f in spec.fields.values() if f.type_name == "Amount"]
        if not fields:
            continue
        with op.batch_alter_table(_n(f"ST_{code}")) as table:
            for f in fields:
                # MySQL's MODIFY restates the whole column: without it NOT NULL is lost.
                table.alter_column(_n(f.code), existing_type=old, type_=new,
                                   existing_nullable=not (f.required or f.code in spec.key))


def upgrade() -> None:
    _amounts(_amount(16), _amount(18))


def downgrade() -> None:
    _amounts(_amount(18), _amount(16))

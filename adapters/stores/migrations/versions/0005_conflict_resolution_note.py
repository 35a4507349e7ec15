"""Who resolved a conflict, and why: ``ST_CONFLICT.RESOLVED_BY`` and ``RESOLUTION_NOTE``.

``exgate conflicts resolve`` recorded only when a conflict was settled, so an auditor
could not tell who settled it or on what grounds. Conflicts resolved before keep NULL
in both. Frozen like 0001.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import oracle

from adapters.frontdb import fold_identifier

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _n(name: str) -> str:
    return fold_identifier(name, op.get_bind().dialect.name)


def _unicode(length: int) -> sa.types.TypeEngine[str]:
    # NVARCHAR2 counts characters, as the store's other free texts do on Oracle.
    return sa.String(length).with_variant(oracle.NVARCHAR2(length), "oracle")


def upgrade() -> None:
    with op.batch_alter_table(_n("ST_CONFLICT")) as table:
        table.add_column(sa.Column(_n("RESOLVED_BY"), _unicode(64)))
        table.add_column(sa.Column(_n("RESOLUTION_NOTE"), _unicode(500)))


def downgrade() -> None:
    with op.batch_alter_table(_n("ST_CONFLICT")) as table:
        table.drop_column(_n("RESOLUTION_NOTE"))
        table.drop_column(_n("RESOLVED_BY"))

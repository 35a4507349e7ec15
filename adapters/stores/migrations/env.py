"""Alembic environment of the central store: run programmatically, never from a CLI.

``SqlStore.migrate`` (``adapters/stores/sql.py``) passes an open connection in
``config.attributes["connection"]``; there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context

from adapters.frontdb import fold_identifier
from adapters.stores.sql_schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=fold_identifier(VERSION_TABLE, connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()

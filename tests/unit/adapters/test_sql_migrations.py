"""The central store's migrations on SQLite: what an upgrade does to data already stored."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from adapters.stores.sql import MIGRATIONS, SqlStore


def upgrade(store: SqlStore, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def a_row(columns: list[dict[str, Any]], **values: object) -> dict[str, object]:
    """``values`` and a placeholder in every other NOT NULL column (SQLite takes any)."""
    return {c["name"]: values.get(c["name"], "x") for c in columns
            if c["name"] in values or not c["nullable"]}


def test_0003_widens_amounts_and_keeps_those_stored_before(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(store, "0002")
        with store.engine.begin() as conn:
            before = sa.inspect(conn).get_columns("ST_SF")
            assert [str(c["type"]) for c in before if c["name"] == "SFJE"] == ["NUMERIC(16, 2)"]
            row = a_row(before, SFJE=1234.5)
            conn.execute(sa.table("ST_SF", *map(sa.column, row)).insert(), row)
        store.migrate()
        with store.engine.connect() as conn:
            after = {c["name"]: c for c in sa.inspect(conn).get_columns("ST_SF")}
            t = store.schema.elements["SF"].table
            kept = conn.execute(sa.select(t.c.SFJE)).scalar_one()
        # Decimal text: NUMERIC affinity would keep a float and round 16-digit amounts.
        assert str(after["SFJE"]["type"]) == "VARCHAR(19)" and not after["SFJE"]["nullable"]
        assert kept == Decimal("1234.50")
    finally:
        store.close()

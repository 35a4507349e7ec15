"""The central store's migrations on SQLite: what an upgrade does to data already stored."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from adapters.stores.sql import MIGRATIONS, SqlStore
from schemas.errors import ConfigError


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


# What 0002 stored on SQLite (NUMERIC affinity): floats, and integers for whole amounts.
STORED_BEFORE = {"S1": 1234.5, "S2": 100, "S3": 12345678901234.56, "S4": 10000000000000.05}


def at_0002_with_amounts(tmp_path: Path) -> SqlStore:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(store, "0002")
    with store.engine.begin() as conn:
        before = sa.inspect(conn).get_columns("ST_SF")
        assert [str(c["type"]) for c in before if c["name"] == "SFJE"] == ["NUMERIC(16, 2)"]
        for sblsh, amount in STORED_BEFORE.items():
            row = a_row(before, SBLSH=sblsh, SFJE=amount)
            conn.execute(sa.table("ST_SF", *map(sa.column, row)).insert(), row)
    return store


def test_0003_widens_amounts_and_keeps_those_stored_before_exactly(tmp_path: Path) -> None:
    store = at_0002_with_amounts(tmp_path)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT typeof(SFJE) FROM ST_SF ORDER BY SBLSH") \
                .scalars().all() == ["real", "integer", "real", "real"]
        store.migrate()
        with store.engine.connect() as conn:
            after = {c["name"]: c for c in sa.inspect(conn).get_columns("ST_SF")}
            indexes = [i["name"] for i in sa.inspect(conn).get_indexes("ST_SF")]
            text = dict(conn.exec_driver_sql("SELECT SBLSH, SFJE FROM ST_SF").all())
            t = store.schema.elements["SF"].table
            kept = dict(conn.execute(sa.select(t.c.SBLSH, t.c.SFJE)).all())
        # Decimal text: NUMERIC affinity would keep a float and round 16-digit amounts.
        assert str(after["SFJE"]["type"]) == "VARCHAR(19)" and not after["SFJE"]["nullable"]
        assert indexes == ["IX_ST_SF_BATCH"]
        # Every digit, written as new rows are (a CAST kept 15 digits: '12345678901234.6').
        assert text == {"S1": "1234.50", "S2": "100.00", "S3": "12345678901234.56",
                        "S4": "10000000000000.05"}
        assert kept == {"S1": Decimal("1234.50"), "S2": Decimal("100.00"),
                        "S3": Decimal("12345678901234.56"),
                        "S4": Decimal("10000000000000.05")}
    finally:
        store.close()


@pytest.mark.parametrize(("kind", "create"), [
    ("view", "CREATE VIEW V_SF AS SELECT SBLSH, SFJE FROM ST_SF"),
    ("trigger", "CREATE TRIGGER T_SF AFTER INSERT ON ST_SF BEGIN "
                "INSERT INTO AUDIT VALUES (new.SBLSH); END"),
])
def test_0003_refuses_to_rebuild_a_table_a_view_or_trigger_uses(
        tmp_path: Path, kind: str, create: str) -> None:
    store = at_0002_with_amounts(tmp_path)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE AUDIT (SBLSH TEXT)")
            conn.exec_driver_sql(create)
        with pytest.raises(ConfigError, match=rf"ST_SF .* used by {kind} (V|T)_SF.* drop them"):
            store.migrate()
        with store.engine.connect() as conn:  # nothing changed: neither lost nor half-done
            assert conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = ?",
                                        (kind,)).scalars().all() == [create.split()[2]]
            assert str(next(c["type"] for c in sa.inspect(conn).get_columns("ST_SF")
                            if c["name"] == "SFJE")) == "NUMERIC(16, 2)"
    finally:
        store.close()


def test_0005_keeps_who_and_why_and_leaves_earlier_resolutions_without(tmp_path: Path) -> None:
    from gateway.conflicts import list_conflicts, resolve

    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(store, "0004")
        with store.engine.begin() as conn:
            columns = sa.inspect(conn).get_columns("ST_CONFLICT")
            assert {"RESOLVED_BY", "RESOLUTION_NOTE"}.isdisjoint(c["name"] for c in columns)
            for ident, resolved in ((1, "2026-11-20 09:00:00"), (2, None)):
                row = a_row(columns, CONFLICT_ID=ident, SJBBH=1, RESOLVED_AT=resolved,
                            DETECTED_AT="2026-11-19 09:00:00")
                conn.execute(sa.table("ST_CONFLICT", *map(sa.column, row)).insert(), row)
        store.migrate()
        resolve(store, [1, 2], "王五", "resent as SJBBH 2")
        earlier, now = list_conflicts(store, include_resolved=True)
        assert (earlier.resolved_by, earlier.resolution_note) == (None, None)
        assert str(earlier.resolved_at) == "2026-11-20 09:00:00"  # its first resolution
        assert (now.resolved_by, now.resolution_note) == ("王五", "resent as SJBBH 2")
    finally:
        store.close()

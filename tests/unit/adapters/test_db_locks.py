"""Which servers let the write-back leave out rows another transaction holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import mysql, oracle, postgresql

from adapters.frontdb import front_tables
from adapters.sources.db_locks import skips_locked


def _dialect(name: str, version: tuple[int, ...], mariadb: bool = False) -> Any:
    return SimpleNamespace(name=name, server_version_info=version, is_mariadb=mariadb)


@pytest.mark.parametrize(("dialect", "skips"), [
    (_dialect("postgresql", (10, 23)), True),
    (_dialect("oracle", (12, 1, 0, 2, 0)), True),
    (_dialect("mysql", (8, 0, 1)), True),
    (_dialect("mysql", (5, 7, 44)), False),
    (_dialect("mariadb", (10, 6, 4), mariadb=True), True),
    (_dialect("mysql", (10, 5, 22), mariadb=True), False),
    (_dialect("sqlite", (3, 40, 1)), False),
])
def test_skip_locked_where_the_server_has_it(dialect: Any, skips: bool) -> None:
    assert skips_locked(dialect) is skips


@pytest.mark.parametrize("dialect", [postgresql.dialect(), mysql.dialect(), oracle.dialect()])
def test_the_lock_query_asks_to_skip_held_rows(dialect: Any) -> None:
    row_id = front_tables(dialect.name).elements["SL"].c.ROW_ID
    query = select(row_id).where(row_id.in_([1, 2])).with_for_update(skip_locked=True)
    assert "FOR UPDATE SKIP LOCKED" in str(query.compile(dialect=dialect))

"""Which servers let the write-back leave out rows another transaction holds."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, oracle, postgresql
from sqlalchemy.exc import ProgrammingError

from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from adapters.sources import database
from adapters.sources.base import SourceContext
from adapters.sources.database import database_source
from adapters.sources.db_locks import HELD_RETRY_SECONDS, HeldRows, free_rows, skips_locked
from adapters.sources.db_options import parse_options
from adapters.sources.db_strategies import FetchedRow, Page
from adapters.sources.db_tables import element_tables
from schemas.catalog import load_catalog
from schemas.errors import RetriableError
from tests.unit.adapters.front_rows import DIVISION, Clock, row


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


@pytest.mark.parametrize(("dialect", "lock"), [
    (postgresql.dialect(), "FOR NO KEY UPDATE SKIP LOCKED"),
    (mysql.dialect(), "FOR UPDATE SKIP LOCKED"),
    (oracle.dialect(), "FOR UPDATE SKIP LOCKED"),
])
def test_the_lock_query_skips_held_rows(dialect: Any, lock: str) -> None:
    """As ``free_rows`` sends it: compiled for each server."""
    sent: list[str] = []

    class Conn:
        def __init__(self) -> None:
            self.dialect = dialect

        def execute(self, query: Any) -> Any:
            sent.append(str(query.compile(dialect=dialect)))
            return SimpleNamespace(scalars=lambda: [1])

    element = SimpleNamespace(row_id=front_tables(dialect.name).elements["SL"].c.ROW_ID)
    assert free_rows(Conn(), element, [1, 2]) == {1}  # type: ignore[arg-type]
    [query] = sent
    assert query.endswith(lock)


def test_a_server_refusing_skip_locked_has_the_write_back_done_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A compatible database of another make (its version says it can, its parser says
    no): the write-back failed on every poll, and the source never marked a row."""
    url = f"sqlite:///{tmp_path / 'front.db'}"
    create_all(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(front_tables("sqlite").elements["SBXX"].insert(),
                     [row("SBXX", n) for n in range(3)])
    tried: list[int] = []

    def refusing(conn: Any, element: Any, row_ids: Any) -> set[int]:
        tried.append(len(row_ids))
        raise ProgrammingError("SELECT … FOR UPDATE SKIP LOCKED", {},
                               Exception('syntax error at or near "SKIP"'))

    monkeypatch.setattr(database, "skips_locked", lambda dialect: True)
    monkeypatch.setattr(database, "free_rows", refusing)
    context = SourceContext("node-1", DIVISION, load_catalog(), "en")
    with caplog.at_level(logging.WARNING, "exgate.source.db"), \
            database_source("front", {"url": url, "page_size": 2}, context,
                            clock=Clock()) as source:
        for chunk in source.read({}):
            source.commit(chunk)
    with engine.connect() as conn:
        table = front_tables("sqlite").elements["SBXX"]
        assert set(conn.execute(sa.select(table.c.SYNC_FLAG)).scalars()) == {1}
    engine.dispose()
    assert tried == [2]  # asked once, then never again
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith("source front: the database refuses SELECT … FOR UPDATE SKIP "
                           "LOCKED (")
    assert said.endswith('syntax error at or near "SKIP"); the write-back waits for locked '
                         "rows instead")


def test_a_held_row_is_kept_out_until_due_and_forgotten_long_after_its_time() -> None:
    """A held row is tried again, and its time renewed, while it stays at 0; one deleted
    meanwhile was kept for good."""
    rows = element_tables(parse_options({"url": "sqlite://", "tables": ["SBXX"]},
                                        load_catalog()), "sqlite", load_catalog())["SBXX"]
    table = rows.name
    held = HeldRows()
    assert not held and held.note(table, [1, 2], set(), now=1000.0) == [1, 2]
    page = Page(tuple(FetchedRow(rows, str(i), ()) for i in (1, 2, 3)), {})
    assert [r.ident for r in held.kept_out(page, 1000.0 + HELD_RETRY_SECONDS - 1).rows] == ["3"]
    assert held.kept_out(page, 1000.0 + HELD_RETRY_SECONDS) is page  # due again
    later = 1000.0 + 10 * HELD_RETRY_SECONDS
    assert held.note(table, [2], set(), now=later) == []  # still held: said already
    assert [r.ident for r in held.kept_out(page, later).rows] == ["1", "3"]
    held.note(table, [3], {2}, now=later + HELD_RETRY_SECONDS + 1)  # 2 free; 1 forgotten
    assert [r.ident for r in held.kept_out(page, later + HELD_RETRY_SECONDS + 1).rows] == \
        ["1", "2"]


def test_another_refusal_of_the_lock_query_is_said_as_it_is_and_keeps_skip_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A right missing on the table is no sign the server lacks SKIP LOCKED."""
    url = f"sqlite:///{tmp_path / 'front.db'}"
    create_all(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(front_tables("sqlite").elements["SBXX"].insert(), [row("SBXX", 1)])
    engine.dispose()

    def denied(conn: Any, element: Any, row_ids: Any) -> set[int]:
        raise ProgrammingError("SELECT …", {}, Exception("permission denied for table ex_sbxx"))

    monkeypatch.setattr(database, "skips_locked", lambda dialect: True)
    monkeypatch.setattr(database, "free_rows", denied)
    context = SourceContext("node-1", DIVISION, load_catalog(), "en")
    with database_source("front", {"url": url}, context, clock=Clock()) as source, \
            pytest.raises(RetriableError, match="permission denied for table ex_sbxx"):
        for chunk in source.read({}):
            source.commit(chunk)
    assert source._skip_locked

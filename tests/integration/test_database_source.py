"""The database source against real servers: SQLite, PostgreSQL and MariaDB.

A ``Journal`` (tests/unit/adapters/front_rows.py) stands in for the outbox: records by
element, key and version, plus the last progress, fed back as ``state`` like the agent
does after a restart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from adapters.db_connect import engine_url
from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from adapters.sources import database
from adapters.sources.base import SourceContext
from adapters.sources.database import DatabaseSource, database_source
from adapters.sources.db_locks import HELD_RETRY_SECONDS
from frontend_machine.outbox import Outbox
from schemas.catalog import load_catalog
from schemas.errors import ConfigError, RetriableError
from schemas.times import BEIJING
from tests.unit.adapters.front_rows import (
    DIVISION,
    Journal,
    journaled_keys,
    keys_of,
    legacy_table,
    poll,
    row,
)

STRATEGIES = ["flag", "changelog", "cursor"]


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(BEIJING).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def naive(self, seconds_ago: float) -> datetime:
        return self.now.replace(tzinfo=None) - timedelta(seconds=seconds_ago)


@pytest.fixture(params=["sqlite", "pg_url", "mariadb_url"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'front.db'}"
    else:
        url = request.getfixturevalue(request.param)
    create_all(url, triggers=True)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(engine_url(db_url))
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_source(url: str, clock: Clock, **options: Any) -> DatabaseSource:
    context = SourceContext("node-1", DIVISION, load_catalog(), "zh")
    return database_source("front", {"url": url, **options}, context, clock=clock)


def tables(engine: sa.Engine) -> Any:
    return front_tables(engine.dialect.name)


def insert(conn: sa.Connection, element: str, rows: list[dict[str, Any]]) -> None:
    conn.execute(tables(conn.engine).elements[element].insert(), rows)


def drain_with_restarts(journal: Journal, url: str, clock: Clock, **options: Any) -> None:
    journal.drain_with_restarts(lambda: open_source(url, clock, **options))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_delivers_every_row_once(db_url: str, engine: sa.Engine, clock: Clock,
                                              strategy: str) -> None:
    with engine.begin() as conn:
        insert(conn, "SBXX", [row("SBXX", n, clock.naive(600)) for n in range(12)])
        insert(conn, "SF", [row("SF", n, clock.naive(600)) for n in range(4)])
        insert(conn, "SBXX", [row("SBXX", 99, clock.naive(600)) | {"TJFS": "7"}])
    journal = Journal()
    drain_with_restarts(journal, db_url, clock, strategy=strategy, page_size=5)
    assert journal.keys("SBXX") == keys_of("SBXX", range(12))
    assert journal.keys("SF") == keys_of("SF", range(4))
    assert journal.duplicates == 0
    assert [code for _, code in journal.rejects] == ["bad-value"]
    sf = next(f for (e, _, _), f in journal.records.items() if e == "SF")
    assert Decimal(sf["SFJE"]) == Decimal("12.50")
    if engine.dialect.name != "sqlite":  # SQLite keeps no scale: NUMERIC is a float there
        assert sf["SFJE"] == "12.50"
    if strategy != "cursor":
        sbxx = tables(engine).elements["SBXX"]
        with engine.connect() as conn:
            flags = dict(conn.execute(sa.select(sbxx.c.SYNC_FLAG, sa.func.count())
                                      .group_by(sbxx.c.SYNC_FLAG)).all())
            message = conn.execute(sa.select(sbxx.c.SYNC_MSG).where(sbxx.c.SYNC_FLAG == 2)
                                   ).scalar_one()
        assert flags == {1: 12, 2: 1}
        assert "TJFS" in message and "[bad-value]" in message
    with open_source(db_url, clock, strategy=strategy) as source:
        assert journal.drain(source) == 0  # write-backs did not feed the changelog


def test_cursor_pages_a_thousand_rows_with_one_timestamp(db_url: str, engine: sa.Engine,
                                                         clock: Clock) -> None:
    with engine.begin() as conn:
        insert(conn, "SPGC", [row("SPGC", n, clock.naive(600)) for n in range(1000)])
    journal = Journal()
    with open_source(db_url, clock, strategy="cursor", page_size=64) as source:
        reading = source.read(journal.state)
        for _ in range(3):
            journal.journal(next(reading))
        reading.close()  # a restart in the middle of the ties
        journal.drain(source)
    assert journal.keys("SPGC") == keys_of("SPGC", range(1000))
    assert journal.duplicates == 0


@pytest.mark.parametrize(("lag", "all_arrive"), [(30, True), (0, False)])
def test_cursor_late_commit_with_an_earlier_timestamp(db_url: str, engine: sa.Engine,
                                                      clock: Clock, lag: int,
                                                      all_arrive: bool) -> None:
    """Row 2 is stamped before row 3 but commits after row 3 was committed and a pass ran.

    With the safety lag every row arrives. The control run without a lag shows the
    scenario is real: the cursor moves past row 2 while it is uncommitted.
    """
    with engine.begin() as conn:
        insert(conn, "SBXX", [row("SBXX", 1, clock.naive(300))])
        insert(conn, "SBXX", [row("SBXX", 3, clock.naive(5))])
    journal = Journal()
    with open_source(db_url, clock, strategy="cursor", cursor_safety_lag_seconds=lag) as source:
        with engine.connect() as late:
            transaction = late.begin()
            insert(late, "SBXX", [row("SBXX", 2, clock.naive(10))])
            journal.drain(source)  # reads while row 2 is uncommitted
            transaction.commit()
        clock.advance(60)
        journal.drain(source)
    expected = [1, 2, 3] if all_arrive else [1, 3]
    assert journal.keys("SBXX") == keys_of("SBXX", expected)


def test_changelog_gap_that_fills_late(db_url: str, engine: sa.Engine, clock: Clock) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: the unit tests simulate a late SEQ instead")
    journal = Journal()
    options = {"strategy": "changelog", "changelog_gap_wait_seconds": 120}
    with open_source(db_url, clock, **options) as source, engine.connect() as slow:
        transaction = slow.begin()
        insert(slow, "SBXX", [row("SBXX", 1)])    # takes a SEQ, commits later
        with engine.begin() as fast:
            insert(fast, "SBXX", [row("SBXX", 2)])  # takes the next SEQ, commits now
        journal.drain(source)
        assert journal.keys("SBXX") == keys_of("SBXX", [2])
        assert journal.state["seq"] < journal.state["high"]  # not past the open gap
        clock.advance(60)
        transaction.commit()
        journal.drain(source)
    assert journal.keys("SBXX") == keys_of("SBXX", [1, 2])
    assert journal.state["seq"] == journal.state["high"] and journal.state["gaps"] == []


def test_an_edit_whose_transaction_outlasted_the_gap_wait_is_read_by_the_sweep(
        db_url: str, engine: sa.Engine, clock: Clock) -> None:
    """Its SEQ was given up with its gap, and the row was taken already: the trigger set
    its SYNC_FLAG back to 0, so the sweep of the rows at 0 finds the edit."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: its trigger is tested in the unit tests")
    sbxx = tables(engine).elements["SBXX"]
    first = row("SBXX", 1)
    with engine.begin() as conn:
        insert(conn, "SBXX", [first])
        row_id = conn.execute(sa.select(sbxx.c.ROW_ID)).scalar_one()
    journal = Journal()
    options = {"strategy": "changelog", "changelog_gap_wait_seconds": 60}
    with open_source(db_url, clock, **options) as source, engine.connect() as slow:
        journal.drain(source)  # taken: SYNC_FLAG=1
        transaction = slow.begin()
        # By its primary key: by another column, InnoDB would lock the gaps too, and
        # the insert below would wait for this transaction.
        slow.execute(sbxx.update().where(row_id == sbxx.c.ROW_ID)
                     .values(SQRMC="李四", SJBBH=first["SJBBH"] + 1))  # takes a SEQ
        with engine.begin() as fast:
            insert(fast, "SBXX", [row("SBXX", 2)])  # takes the next SEQ, commits now
        journal.drain(source)
        clock.advance(61)
        journal.drain(source)  # the gap is given up
        assert journal.state["gaps"] == [] and journal.state["seq"] == journal.state["high"]
        transaction.commit()
        clock.advance(60)
        journal.drain(source)
    [(key, version)] = [(k, v) for (e, k, v), fields in journal.records.items()
                        if fields["SQRMC"] == "李四"]
    assert "|".join(key) in keys_of("SBXX", [1]) and version == first["SJBBH"] + 1
    assert journal.keys("SBXX") == keys_of("SBXX", [1, 2]) and journal.duplicates == 0
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(sbxx.c.SYNC_FLAG)).scalars()) == {1}


def test_changelog_reads_rows_the_log_never_saw(db_url: str, engine: sa.Engine,
                                                clock: Clock) -> None:
    """Rows written before the triggers were installed: their log entries are gone."""
    with engine.begin() as conn:
        insert(conn, "SBXX", [row("SBXX", n) for n in range(7)])
        conn.execute(tables(engine).changelog.delete())
        insert(conn, "SBXX", [row("SBXX", n) for n in range(7, 10)])
    journal = Journal()
    drain_with_restarts(journal, db_url, clock, strategy="changelog", page_size=4)
    assert journal.keys("SBXX") == keys_of("SBXX", range(10)) and journal.duplicates == 0
    sbxx = tables(engine).elements["SBXX"]
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(sbxx.c.SYNC_FLAG).distinct()).scalars()) == {1}
    with open_source(db_url, clock, strategy="changelog") as source:
        assert journal.drain(source) == 0


# -- with the real outbox: NULL cursor timestamps, the write-back after a crash -----------------

def test_cursor_null_timestamps_are_rejects_once(db_url: str, engine: sa.Engine, clock: Clock,
                                                 tmp_path: Path) -> None:
    legacy = legacy_table(engine.dialect.name, "SBXX", "LEGACY_SBXX")
    legacy.create(engine)
    stamped = {n: clock.naive(600) for n in (0, 2, 4)} | dict.fromkeys((1, 3, 5, 6))
    with engine.begin() as conn:
        conn.execute(legacy.insert(), [row("SBXX", n, clock.naive(600)) | {"UPD_TIME": when}
                                       for n, when in stamped.items()])
    options = {"strategy": "cursor", "tables": ["SBXX"], "page_size": 2,
               "mapping": {"SBXX": {"table": "LEGACY_SBXX", "timestamp": "UPD_TIME"}}}
    with Outbox(tmp_path / "outbox.db") as outbox:
        with open_source(db_url, clock, **options) as source:
            reading = source.read({})
            for _ in range(3):  # the timed rows, then the first NULL page: then killed
                outbox.journal("front", next(reading))
            reading.close()
        with open_source(db_url, clock, **options) as source:
            poll(outbox, source)
            assert poll(outbox, source) == 0
        fixed = row("SBXX", 3)["SBLSH"]
        with engine.begin() as conn:  # filled in at the time of the fix
            conn.execute(legacy.update().where(fixed == legacy.c.SBLSH)
                         .values(UPD_TIME=clock.naive(0)))
        clock.advance(3600)
        with open_source(db_url, clock, **options) as source:
            poll(outbox, source)
        assert journaled_keys(outbox) == keys_of("SBXX", [0, 2, 4, 3])
        origins = [r["origin"] for r in outbox.rejects("front")]
    assert origins == [f"LEGACY_SBXX#{row('SBXX', n)['SBLSH']}|1" for n in (1, 3, 5, 6)]


@pytest.mark.parametrize("strategy", ["flag", "changelog"])
def test_rejects_are_flagged_after_a_crash_before_the_write_back(
        db_url: str, engine: sa.Engine, clock: Clock, tmp_path: Path, strategy: str) -> None:
    with engine.begin() as conn:
        insert(conn, "SL", [row("SL", n) for n in range(4)])
        insert(conn, "SL", [row("SL", 9) | {"SLZT": "bogus"}])
    with Outbox(tmp_path / "outbox.db") as outbox:
        with open_source(db_url, clock, strategy=strategy, page_size=3) as source:
            reading = source.read({})
            first = next(reading)
            outbox.journal("front", first)
            source.commit(first)
            outbox.journal("front", next(reading))  # the bad row's page: then killed
            reading.close()
        with open_source(db_url, clock, strategy=strategy, page_size=3) as source:
            poll(outbox, source)
        records, rejects = outbox.record_count(), outbox.rejects("front")
    sl = tables(engine).elements["SL"]
    with engine.connect() as conn:
        flags = dict(conn.execute(sa.select(sl.c.SYNC_FLAG, sa.func.count())
                                  .group_by(sl.c.SYNC_FLAG)).all())
        message = conn.execute(sa.select(sl.c.SYNC_MSG).where(sl.c.SYNC_FLAG == 2)).scalar_one()
    assert flags == {1: 4, 2: 1}
    assert "SLZT" in message and "[bad-value]" in message
    assert records == 4 and len(rejects) == 1


@pytest.mark.parametrize("server", ["pg_url", "mariadb_url"])
def test_cursor_lag_holds_on_a_zone_aware_column_of_a_utc_server(
        request: pytest.FixtureRequest, tmp_path: Path, server: str) -> None:
    # timestamptz (PostgreSQL) and TIMESTAMP (MariaDB) compare in the session's zone: on
    # a UTC server, the naive Beijing bound read 8 hours late, and a row committed late
    # inside the safety lag was passed over for good.
    url = request.getfixturevalue(server)
    engine = sa.create_engine(engine_url(url))
    dialect = engine.dialect.name
    aware = sa.DateTime(timezone=True) if dialect == "postgresql" else mysql.TIMESTAMP()
    legacy = legacy_table(dialect, "SBXX", "LEGACY_TZ")
    legacy.c.UPD_TIME.type = aware
    legacy.c.UPD_TIME.nullable = True
    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f"ALTER DATABASE {engine.url.database} SET timezone TO 'UTC'")
        legacy.create(conn)
    engine.dispose()  # new sessions take the database's zone
    ago = ("now() - interval '20 seconds'" if dialect == "postgresql"
           else "NOW() - INTERVAL 20 SECOND")
    with engine.begin() as conn:
        conn.execute(legacy.insert().values(**row("SBXX", 1),
                                            UPD_TIME=sa.literal_column(ago)))
    options = {"strategy": "cursor", "tables": ["SBXX"], "cursor_safety_lag_seconds": 60,
               "mapping": {"SBXX": {"table": "LEGACY_TZ", "timestamp": "UPD_TIME"}}}
    real = Clock(datetime.now(BEIJING))
    with Outbox(tmp_path / "outbox.db") as outbox:
        with open_source(url, real, **options) as source:
            poll(outbox, source)
        assert journaled_keys(outbox) == set()  # 20 s old: inside the 60 s lag
        real.advance(120)
        with open_source(url, real, **options) as source:
            poll(outbox, source)
        assert journaled_keys(outbox) == keys_of("SBXX", [1])
    engine.dispose()


@dataclass
class ServerTable:
    """EX_SL on a real server, through an engine of the test's own."""

    url: str
    engine: sa.Engine
    table: sa.Table

    def insert(self, count: int) -> None:
        with self.engine.begin() as conn:
            insert(conn, "SL", [row("SL", n) for n in range(count)])

    def flags(self) -> list[int]:
        t = self.table
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(t.c.SYNC_FLAG).order_by(t.c.ROW_ID)).scalars())

    def lock_row(self, conn: sa.Connection, row_id: int) -> None:
        """Hold ``row_id`` as a legacy transaction would, until ``conn`` rolls back."""
        t = self.table
        conn.execute(sa.select(t).where(t.c["ROW_ID"] == row_id).with_for_update()).all()


@pytest.fixture(params=["pg_url", "mariadb_url"])
def server_sl(request: pytest.FixtureRequest) -> Iterator[ServerTable]:
    url = request.getfixturevalue(request.param)
    create_all(url)
    engine = sa.create_engine(engine_url(url))
    yield ServerTable(url, engine, tables(engine).elements["SL"])
    engine.dispose()


def test_a_row_a_legacy_transaction_keeps_locked_is_left_unmarked_until_it_is_free(
        server_sl: ServerTable, tmp_path: Path, clock: Clock,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The page's write-back waited for the row, failed after the lock wait, and the page
    # was read again on every poll, the rows after it never: a form left open for
    # editing stopped the whole source.
    now = [1000.0]
    monkeypatch.setattr(database, "time", SimpleNamespace(monotonic=lambda: now[0]))
    server_sl.insert(3)
    with Outbox(tmp_path / "outbox.db") as outbox, \
            caplog.at_level(logging.WARNING, "exgate.source.db"), \
            open_source(server_sl.url, clock, strategy="flag") as source:
        with server_sl.engine.connect() as legacy:
            server_sl.lock_row(legacy, 2)
            assert poll(outbox, source) == 1
            assert server_sl.flags() == [1, 0, 1] and outbox.record_count() == 3
            now[0] += HELD_RETRY_SECONDS - 1
            # Not handed out again before its retry time: the agent idles meanwhile.
            assert poll(outbox, source) == 0
            now[0] += 1
            assert poll(outbox, source) == 1  # due: read again, a duplicate, still held
            assert server_sl.flags() == [1, 0, 1]
            legacy.rollback()
        assert poll(outbox, source) == 0
        now[0] += HELD_RETRY_SECONDS
        assert poll(outbox, source) == 1  # due again, and free now
        assert journaled_keys(outbox) == keys_of("SL", range(3))
        assert outbox.record_count() == 3
    assert server_sl.flags() == [1, 1, 1]
    [said] = [r.getMessage() for r in caplog.records if "锁定" in r.getMessage()]
    assert said == ("数据源 front：EX_SL 中 ROW_ID 为 2 的行正被其他事务锁定（例如有人正在"
                    "编辑），本次未回写其标志；解锁后的轮询将再次读取这些行")


def test_without_skip_locked_a_held_row_fails_the_write_back_then_lands(
        server_sl: ServerTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        clock: Clock) -> None:
    # MySQL before 8.0.1, MariaDB before 10.6. Without a lock timeout the write-back
    # UPDATE waited for the legacy transaction however long it lasted, and the whole
    # agent (every source) with it.
    monkeypatch.setattr(database, "LOCK_WAIT_SECONDS", 1)
    monkeypatch.setattr(database, "skips_locked", lambda dialect: False)
    server_sl.insert(3)
    url = server_sl.url
    with Outbox(tmp_path / "outbox.db") as outbox:
        with server_sl.engine.connect() as legacy:
            server_sl.lock_row(legacy, 2)
            with open_source(url, clock, strategy="flag") as source, \
                    pytest.raises(RetriableError, match="cannot commit"):
                poll(outbox, source)
            legacy.rollback()
        with open_source(url, clock, strategy="flag") as source:
            poll(outbox, source)
        assert journaled_keys(outbox) == keys_of("SL", range(3))
        assert outbox.record_count() == 3
    assert server_sl.flags() == [1, 1, 1]


def test_a_page_is_written_back_while_the_next_is_read(
        server_sl: ServerTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        clock: Clock) -> None:
    # On a server, the flag strategy's write-back runs while the agent reads and
    # validates the next page. Were commit to wait for its UPDATE, it would wait here
    # for the legacy transaction's lock, which is released only after the next page.
    # (A server without SKIP LOCKED: the only write-back that waits for a lock.)
    monkeypatch.setattr(database, "LOCK_WAIT_SECONDS", 60)
    monkeypatch.setattr(database, "skips_locked", lambda dialect: False)
    server_sl.insert(4)
    with Outbox(tmp_path / "outbox.db") as outbox, \
            open_source(server_sl.url, clock, strategy="flag", page_size=2) as source:
        reading = source.read({})
        first = next(reading)
        outbox.journal("front", first)
        with server_sl.engine.connect() as legacy:
            server_sl.lock_row(legacy, 1)
            source.commit(first)
            second = next(reading)
            assert server_sl.flags() == [0, 0, 0, 0]  # the first page's UPDATE waits
            legacy.rollback()
        outbox.journal("front", second)
        source.commit(second)
        assert next(reading, None) is None
        assert server_sl.flags() == [1, 1, 1, 1]  # the read ends once its write-backs are done
        assert journaled_keys(outbox) == keys_of("SL", range(4))


def test_a_write_back_failing_while_the_agent_stops_early_is_logged_not_raised(
        server_sl: ServerTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    # The agent closes the read when its own step fails (a broken outbox must stop it)
    # or when it stops: the write-back's error must not replace the agent's own. The
    # rows of that page are read again by the next poll. (A lock fails the write-back on
    # a server without SKIP LOCKED only.)
    monkeypatch.setattr(database, "LOCK_WAIT_SECONDS", 1)
    monkeypatch.setattr(database, "skips_locked", lambda dialect: False)
    server_sl.insert(4)
    with Outbox(tmp_path / "outbox.db") as outbox:
        with open_source(server_sl.url, clock, strategy="flag", page_size=2) as source:
            reading = source.read({})
            first = next(reading)
            outbox.journal("front", first)
            with server_sl.engine.connect() as legacy, \
                    caplog.at_level(logging.WARNING, "exgate.source.db"):
                server_sl.lock_row(legacy, 1)
                source.commit(first)  # fails on the lock, in its thread
                next(reading)
                reading.close()  # the agent gives up on the read here
                legacy.rollback()
            assert "上一页的回写失败" in caplog.text and "无法写回" in caplog.text
            assert "cannot commit" not in caplog.text  # all of it in the agent's language
            assert server_sl.flags() == [0, 0, 0, 0]
            poll(outbox, source)
        assert journaled_keys(outbox) == keys_of("SL", range(4))
        assert outbox.record_count() == 4
    assert server_sl.flags() == [1, 1, 1, 1]


def test_a_narrow_sync_msg_column_gets_a_reason_cut_to_fit_and_the_page_lands(
        server_sl: ServerTable, tmp_path: Path, clock: Clock) -> None:
    # A legacy table's own SYNC_MSG may be narrower than the 2,000 characters of
    # frontdb init's: a reason cut to 2,000 failed the page's write-back on every poll.
    t = server_sl.table
    with server_sl.engine.begin() as conn:
        column = t.c.SYNC_MSG.name
        conn.execute(sa.text(
            f"ALTER TABLE {t.name} ALTER COLUMN {column} TYPE VARCHAR(40)"
            if conn.dialect.name == "postgresql"
            else f"ALTER TABLE {t.name} MODIFY {column} VARCHAR(40)"))
        insert(conn, "SL", [row("SL", 0), row("SL", 1) | {"SLZT": "bogus", "CNSXDW": "bogus"},
                            row("SL", 2)])
    with Outbox(tmp_path / "outbox.db") as outbox:
        with open_source(server_sl.url, clock, strategy="flag") as source:
            poll(outbox, source)
            assert poll(outbox, source) == 0
        assert journaled_keys(outbox) == keys_of("SL", [0, 2])
        [reject] = outbox.rejects("front")
    assert server_sl.flags() == [1, 2, 1]
    with server_sl.engine.connect() as conn:
        message = conn.execute(sa.select(t.c.SYNC_MSG).where(t.c.SYNC_FLAG == 2)).scalar_one()
    assert len(message) == 40 and message.endswith("…")
    first = reject["issues"][0]
    assert message[:-1] == f"[{first['code']}] {first['message']}"[:39]  # its start, kept


def test_cursor_on_sqlite_reports_text_times_in_another_notation_and_reads_the_rest(
        tmp_path: Path, clock: Clock) -> None:
    # SQLite compares text character by character: "20261120100000" lay past every
    # bound, and after "2026-11-20T10:00:00" was read, "2026-11-20 11:00:00" lay behind
    # the cursor. Both were skipped silently.
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    engine = sa.create_engine(engine_url(url))
    legacy = legacy_table("sqlite", "SBXX", "LEGACY_SBXX")
    legacy.c.UPD_TIME.type = sa.Text()
    legacy.create(engine)
    day = clock.naive(86400).strftime("%Y-%m-%d")
    stamps = {0: f"{day}T10:00:00", 1: f"{day} 11:00:00", 2: day.replace("-", "") + "120000",
              3: None, 4: f"{day} 09:00:00.250000"}
    with engine.begin() as conn:
        conn.execute(legacy.insert(), [row("SBXX", n) | {"UPD_TIME": stamp}
                                       for n, stamp in stamps.items()])
    options = {"strategy": "cursor", "tables": ["SBXX"],
               "mapping": {"SBXX": {"table": "LEGACY_SBXX", "timestamp": "UPD_TIME"}}}
    with Outbox(tmp_path / "outbox.db") as outbox:
        with open_source(url, clock, **options) as source:
            poll(outbox, source)
        assert journaled_keys(outbox) == keys_of("SBXX", [1, 4])
        rejects = {r["origin"]: json.dumps(r["issues"], ensure_ascii=False)
                   for r in outbox.rejects("front")}
    assert set(rejects) == {f"LEGACY_SBXX#{row('SBXX', n)['SBLSH']}|1" for n in (0, 2, 3)}
    assert f"{day}T10:00:00" in rejects[f"LEGACY_SBXX#{row('SBXX', 0)['SBLSH']}|1"]
    assert all("yyyy-MM-dd HH:mm:ss" in rejects[f"LEGACY_SBXX#{row('SBXX', n)['SBLSH']}|1"]
               for n in (0, 2))
    assert "NULL" in rejects[f"LEGACY_SBXX#{row('SBXX', 3)['SBLSH']}|1"]
    engine.dispose()


@pytest.mark.parametrize("server", ["pg_url", "mariadb_url"])
def test_a_cursor_on_a_text_column_is_refused_where_the_database_has_time_types(
        request: pytest.FixtureRequest, server: str, clock: Clock) -> None:
    url = request.getfixturevalue(server)
    engine = sa.create_engine(engine_url(url))
    legacy = legacy_table(engine.dialect.name, "SBXX", "LEGACY_TEXT")
    legacy.c.UPD_TIME.type = sa.String(20)
    legacy.create(engine)
    engine.dispose()
    options = {"strategy": "cursor", "tables": ["SBXX"],
               "mapping": {"SBXX": {"table": "LEGACY_TEXT", "timestamp": "UPD_TIME"}}}
    with pytest.raises(ConfigError) as refused:
        open_source(url, clock, **options)
    assert "is text" in str(refused.value) and "DATE/TIMESTAMP" in str(refused.value)
    assert "游标时间列" in refused.value.message("zh")

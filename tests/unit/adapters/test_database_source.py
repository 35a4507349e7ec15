"""The database source on SQLite: every strategy delivers every row once across pages
and restarts, rejects are written back, mappings work, Oracle SQL compiles."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import oracledb
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import oracle

from adapters.db_connect import engine_url
from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from adapters.sources.base import Chunk, Source, SourceContext
from adapters.sources.database import DatabaseSource, database_source, engine_options
from adapters.sources.db_cursor import cursor_query, untimed_query
from adapters.sources.db_options import parse_options
from adapters.sources.db_state import ChangelogPosition, Gap, decode_value, encode_value
from adapters.sources.db_strategies import changelog_query, flag_query, rows_query
from adapters.sources.db_sync_msg import MessageRoom
from adapters.sources.db_tables import (
    check_row,
    element_tables,
    fields_of,
    mark_rejected,
    mark_taken,
    reject_message,
    to_text,
)
from frontend_machine.outbox import Outbox
from frontend_machine.replay import replay_database
from schemas.catalog import load_catalog
from schemas.errors import ConfigError, RetriableError
from schemas.record_check import check_fields
from schemas.times import BEIJING
from tests.unit.adapters.front_rows import BASE_TIME, DIVISION, Clock, Journal, keys_of, row

CATALOG = load_catalog()
TABLES = front_tables("sqlite")


def context(lang: str = "en") -> SourceContext:
    return SourceContext("node-1", DIVISION, CATALOG, lang)


def open_source(url: str, clock: Clock, **options: Any) -> DatabaseSource:
    return database_source("front", {"url": url, **options}, context(), clock=clock)


def insert(engine: sa.Engine, element: str, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(TABLES.elements[element].insert(), rows)


def flags(engine: sa.Engine, element: str) -> dict[int, tuple[int, str | None]]:
    table = TABLES.elements[element]
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            sa.select(table.c.ROW_ID, table.c.SYNC_FLAG, table.c.SYNC_MSG))}


def restart_each_chunk(journal: Journal, url: str, clock: Clock, **options: Any) -> None:
    journal.drain_with_restarts(lambda: open_source(url, clock, **options))


# -- every strategy --------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["flag", "changelog", "cursor"])
def test_every_row_once_across_pages_and_restarts(url: str, engine: sa.Engine, clock: Clock,
                                                  strategy: str) -> None:
    insert(engine, "SBXX", [row("SBXX", n) for n in range(11)])
    insert(engine, "SPGC", [row("SPGC", n) for n in range(5)])
    journal = Journal()
    restart_each_chunk(journal, url, clock, strategy=strategy, page_size=3)
    insert(engine, "SBXX", [row("SBXX", n) for n in range(11, 14)])
    clock.advance(1)
    restart_each_chunk(journal, url, clock, strategy=strategy, page_size=3)
    assert journal.keys("SBXX") == keys_of("SBXX", range(14))
    assert journal.keys("SPGC") == keys_of("SPGC", range(5))
    assert journal.duplicates == 0 and journal.rejects == []
    with open_source(url, clock, strategy=strategy) as source:
        assert journal.drain(source) == 0  # nothing left, and no write-back loops back


@pytest.mark.parametrize("strategy", ["flag", "changelog", "cursor"])
def test_a_crash_between_journal_and_commit_loses_nothing(url: str, engine: sa.Engine,
                                                          clock: Clock, strategy: str) -> None:
    insert(engine, "SL", [row("SL", n) for n in range(6)])
    journal = Journal()
    with open_source(url, clock, strategy=strategy, page_size=4) as source:
        reading = source.read(journal.state)
        journal.journal(next(reading))  # journaled, then killed before commit
        reading.close()
    with open_source(url, clock, strategy=strategy, page_size=4) as source:
        journal.drain(source)
    assert journal.keys("SL") == keys_of("SL", range(6))


# -- flag ---------------------------------------------------------------------------------------

def test_flag_marks_taken_and_rejected_rows(url: str, engine: sa.Engine, clock: Clock) -> None:
    bad = row("SBXX", 2) | {"SQRZJHM": "430102199001010000", "TJFS": "7"}
    insert(engine, "SBXX", [row("SBXX", 1), bad])
    journal = Journal()
    with open_source(url, clock) as source:
        journal.drain(source)
        assert journal.drain(source) == 0  # a rejected row is not read again
    state = flags(engine, "SBXX")
    assert state[1] == (1, None)
    flag, message = state[2]
    assert flag == 2
    assert "SQRZJHM" in message and "[bad-check-digit]" in message
    assert "TJFS" in message and "[bad-value]" in message
    assert journal.rejects == [("EX_SBXX#2", "bad-value bad-check-digit")] or \
        journal.rejects == [("EX_SBXX#2", "bad-check-digit bad-value")]


@pytest.mark.parametrize("strategy", ["flag", "changelog", "cursor"])
def test_a_value_xml_cannot_carry_rejects_its_row_not_the_page(
        url: str, engine: sa.Engine, clock: Clock, strategy: str) -> None:
    """A NUL or a control character (pasted into a legacy form) has no XML form: the row
    is rejected with a reason, the rows around it go through, the source is not stuck."""
    insert(engine, "SBXX", [row("SBXX", 1), row("SBXX", 2) | {"SQRMC": "张\x0b三"},
                            row("SBXX", 3) | {"SXBM": "SX\x00BM"}, row("SBXX", 4)])
    journal = Journal()
    with open_source(url, clock, strategy=strategy) as source:
        journal.drain(source)
    assert journal.keys("SBXX") == keys_of("SBXX", [1, 4])
    assert [code for _, code in journal.rejects] == ["bad-value", "bad-value"]
    if strategy == "flag":
        state = flags(engine, "SBXX")
        assert [state[n][0] for n in (1, 2, 3, 4)] == [1, 2, 2, 1]
        assert "SQRMC" in state[2][1] and "U+000B" in state[2][1]
        assert "SXBM" in state[3][1] and "U+0000" in state[3][1]


def test_replay_checks_a_value_xml_cannot_carry_without_crashing(
        url: str, engine: sa.Engine, clock: Clock, tmp_path: Path) -> None:
    insert(engine, "SBXX", [row("SBXX", 1) | {"SQRMC": "张\x0b三"}])
    with engine.begin() as conn:
        conn.execute(TABLES.elements["SBXX"].update().values(SYNC_FLAG=2))
    with Outbox(tmp_path / "outbox.db") as box:
        [action] = replay_database(box, "front", {"url": url}, CATALOG, DIVISION, lang="en")
    assert not action.done and "U+000B" in action.detail


def test_replay_checks_bytes_that_are_not_utf8_without_crashing(
        url: str, engine: sa.Engine, tmp_path: Path) -> None:
    insert(engine, "SBXX", [row("SBXX", 1)])
    with engine.begin() as conn:
        conn.exec_driver_sql('UPDATE "EX_SBXX" SET SQRMC = CAST(x\'e5bca0c3\' AS TEXT)')
        # Then the reject's flag: the triggers set an edited row's back to 0.
        conn.execute(TABLES.elements["SBXX"].update().values(SYNC_FLAG=2))
    with Outbox(tmp_path / "outbox.db") as box:
        [action] = replay_database(box, "front", {"url": url}, CATALOG, DIVISION, lang="en")
    assert not action.done and "not valid UTF-8" in action.detail


def test_commit_is_idempotent_and_messages_follow_the_language(
        url: str, engine: sa.Engine, clock: Clock) -> None:
    insert(engine, "SBXX", [row("SBXX", 1) | {"SQRZJHM": "430102199001010000"}])
    source = database_source("front", {"url": url}, context("zh"), clock=clock)
    with source:
        chunk = next(iter(source.read({})))
        source.commit(chunk)
        source.commit(chunk)
    assert "校验码错误" in flags(engine, "SBXX")[1][1]


def test_reject_message_is_cut_to_the_column() -> None:
    sbxx = CATALOG.elements["SBXX"]
    fields = {f: None for f in sbxx.fields}
    check = check_fields("SBXX", fields, CATALOG, DIVISION, datetime.now(BEIJING))
    message = reject_message(check, "en", MessageRoom(60))
    assert len(message) == 60 and message.endswith("…")
    assert message.startswith("[missing-field]")


def test_a_row_fixed_and_flagged_0_again_is_read_again(url: str, engine: sa.Engine,
                                                      clock: Clock) -> None:
    insert(engine, "SBXX", [row("SBXX", 1) | {"TJFS": "7"}])
    journal = Journal()
    with open_source(url, clock) as source:
        journal.drain(source)
        sbxx = TABLES.elements["SBXX"]
        with engine.begin() as conn:
            conn.execute(sbxx.update().values(TJFS="1", SYNC_FLAG=0))
        journal.drain(source)
    assert journal.keys("SBXX") == keys_of("SBXX", [1])
    assert flags(engine, "SBXX")[1] == (1, None)


# -- changelog ----------------------------------------------------------------------------------

def write_log(engine: sa.Engine, *entries: tuple[int, int]) -> None:
    """EX_CHANGELOG entries (SEQ, ROW_ID) for EX_SBXX, written by hand: SQLite has one
    writer, so a gap left by an open transaction is simulated by a late explicit SEQ."""
    with engine.begin() as conn:
        conn.execute(TABLES.changelog.insert(), [
            {"SEQ": seq, "TABLE_NAME": "EX_SBXX", "ROW_ID": row_id, "OP": "I"}
            for seq, row_id in entries])


@pytest.fixture
def plain_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    create_all(url)  # no triggers: the test writes EX_CHANGELOG itself
    return url


def test_changelog_gap_that_fills_late_is_not_skipped(plain_url: str, clock: Clock) -> None:
    engine = sa.create_engine(plain_url)
    insert(engine, "SBXX", [row("SBXX", n) for n in range(1, 4)])
    write_log(engine, (1, 1), (3, 3))  # SEQ 2 is taken by a transaction still open
    journal = Journal()
    options = {"strategy": "changelog", "changelog_gap_wait_seconds": 60}
    with open_source(plain_url, clock, **options) as source:
        journal.drain(source)
        assert journal.state["seq"] == 1 and journal.state["high"] == 3
        clock.advance(30)
        write_log(engine, (2, 2))  # ... which commits within the window
        journal.drain(source)
    engine.dispose()
    assert journal.keys("SBXX") == keys_of("SBXX", [1, 2, 3])
    assert (journal.state["seq"], journal.state["gaps"]) == (3, [])


def test_changelog_gap_is_passed_only_after_the_window(plain_url: str, clock: Clock) -> None:
    engine = sa.create_engine(plain_url)
    insert(engine, "SBXX", [row("SBXX", n) for n in range(1, 3)])
    write_log(engine, (1, 1), (3, 2))  # SEQ 2 rolled back: it never appears
    journal = Journal()
    options = {"strategy": "changelog", "changelog_gap_wait_seconds": 60}
    with open_source(plain_url, clock, **options) as source:
        journal.drain(source)
        clock.advance(59)
        assert journal.drain(source) == 0 and journal.state["seq"] == 1
    clock.advance(2)
    with open_source(plain_url, clock, **options) as source:  # the window survives restarts
        assert journal.drain(source) == 1
    engine.dispose()
    assert (journal.state["seq"], journal.state["gaps"]) == (3, [])


def test_changelog_writes_back_a_reject_journaled_just_before_a_crash_whatever_the_flag(
        url: str, engine: sa.Engine, clock: Clock) -> None:
    """A taken row (flag 1) edited into a reject: journaled, then the agent is killed
    before the write-back. After the restart the row must say why, not stay at 1."""
    insert(engine, "SBXX", [row("SBXX", 1)])
    journal = Journal()
    with open_source(url, clock, strategy="changelog") as source:
        journal.drain(source)
    assert flags(engine, "SBXX")[1] == (1, None)
    sbxx = TABLES.elements["SBXX"]
    with engine.begin() as conn:
        conn.execute(sbxx.update().values(TJFS="7"))
    with open_source(url, clock, strategy="changelog") as source:
        reading = source.read(journal.state)
        journal.journal(next(reading))  # journaled, then killed before commit
        reading.close()
    with open_source(url, clock, strategy="changelog") as source:
        journal.drain(source)
    flag, message = flags(engine, "SBXX")[1]
    assert flag == 2 and message is not None and "TJFS" in message
    assert journal.rejects == [("EX_SBXX#1", "bad-value")]


def test_changelog_collapses_changes_of_one_row(url: str, engine: sa.Engine,
                                               clock: Clock) -> None:
    insert(engine, "SBXX", [row("SBXX", 1)])
    sbxx = TABLES.elements["SBXX"]
    with engine.begin() as conn:
        for name in ("李四", "王五", "赵六"):
            conn.execute(sbxx.update().values(SQRMC=name))
    chunks = []
    with open_source(url, clock, strategy="changelog") as source:
        for chunk in source.read({}):  # committed as the agent does, before the next
            chunks.append(chunk)
            source.commit(chunk)
    assert len(chunks) == 1 and len(chunks[0].checks) == 1
    assert chunks[0].checks[0][1].record.fields["SQRMC"] == "赵六"


def test_changelog_recreated_with_seq_from_1_is_read_again(
        url: str, engine: sa.Engine, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """What TRUNCATE does on MySQL/MariaDB: SEQ restarts at 1, below the position."""
    insert(engine, "SBXX", [row("SBXX", n) for n in range(5)])
    journal = Journal()
    with open_source(url, clock, strategy="changelog") as source:
        journal.drain(source)
    assert journal.state["high"] == 5
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE EX_CHANGELOG")
    create_all(url, triggers=True)
    insert(engine, "SBXX", [row("SBXX", n) for n in range(5, 8)])
    with caplog.at_level(logging.WARNING, "exgate.source.db"), \
            open_source(url, clock, strategy="changelog") as source:
        journal.drain(source)
        assert journal.drain(source) == 0  # re-baselined once, not on every pass
    assert journal.keys("SBXX") == keys_of("SBXX", range(8)) and journal.state["high"] == 3
    assert {flag for flag, _ in flags(engine, "SBXX").values()} == {1}
    [warning] = [r.getMessage() for r in caplog.records]
    assert "highest SEQ, 3, is below the position read, 5" in warning and "TRUNCATE" in warning


def test_changelog_purged_with_delete_goes_on_after_the_position(
        url: str, engine: sa.Engine, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    insert(engine, "SBXX", [row("SBXX", n) for n in range(3)])
    journal = Journal()
    with open_source(url, clock, strategy="changelog") as source:
        journal.drain(source)
        with engine.begin() as conn:
            conn.execute(TABLES.changelog.delete().where(
                journal.state["seq"] >= TABLES.changelog.c.SEQ))
        with caplog.at_level(logging.WARNING, "exgate.source.db"):
            assert journal.drain(source) == 0
            insert(engine, "SBXX", [row("SBXX", 3)])
            assert journal.drain(source) == 1
    assert journal.keys("SBXX") == keys_of("SBXX", range(4)) and journal.duplicates == 0
    assert journal.state["high"] == 4 and caplog.records == []


@pytest.mark.parametrize("page_size", [2, 100])
def test_changelog_reads_rows_written_before_the_triggers(
        plain_url: str, clock: Clock, caplog: pytest.LogCaptureFixture, page_size: int) -> None:
    engine = sa.create_engine(plain_url)
    insert(engine, "SBXX", [row("SBXX", n) for n in range(5)])  # before the triggers
    insert(engine, "SL", [row("SL", n) for n in range(3)])
    create_all(plain_url, triggers=True)
    insert(engine, "SBXX", [row("SBXX", n) for n in range(5, 8)])
    journal = Journal()
    options = {"strategy": "changelog", "page_size": page_size}
    with caplog.at_level(logging.WARNING, "exgate.source.db"):
        restart_each_chunk(journal, plain_url, clock, **options)
        with open_source(plain_url, clock, **options) as source:
            assert journal.drain(source) == 0  # every row flagged: nothing read again
    assert journal.keys("SBXX") == keys_of("SBXX", range(8))
    assert journal.keys("SL") == keys_of("SL", range(3)) and journal.duplicates == 0
    assert {flag for flag, _ in flags(engine, "SBXX").values()} == {1}
    assert {flag for flag, _ in flags(engine, "SL").values()} == {1}
    warnings = " ".join(r.getMessage() for r in caplog.records)
    for table in ("EX_SBXX", "EX_SL"):
        assert f"{table}: rows at SYNC_FLAG=0 had no change waiting" in warnings
    engine.dispose()


def test_changelog_position_is_pure_state() -> None:
    position = ChangelogPosition().advance([1, 2, 5, 9], now=100.0)
    assert position.gaps == (Gap(3, 4, 100.0), Gap(6, 8, 100.0))
    assert position.seq == 2 and position.high == 9
    position = position.advance([4, 7], now=130.0)
    assert position.gaps == (Gap(3, 3, 100.0), Gap(6, 6, 100.0), Gap(8, 8, 100.0))
    assert position.expire(before=99.0) == position
    assert position.expire(before=100.0) == ChangelogPosition(9)
    restored = ChangelogPosition.from_state(position.to_progress())
    assert restored == position
    assert ChangelogPosition.from_state({"v": 1, "strategy": "cursor"}) == ChangelogPosition()


# -- cursor -------------------------------------------------------------------------------------

def test_cursor_pages_a_thousand_ties_once(url: str, engine: sa.Engine, clock: Clock) -> None:
    insert(engine, "SBCL", [row("SBCL", n) for n in range(1000)])
    journal = Journal()
    with open_source(url, clock, strategy="cursor", page_size=7) as source:
        journal.drain(source)
    assert journal.keys("SBCL") == keys_of("SBCL", range(1000))
    assert journal.duplicates == 0


def test_cursor_lag_covers_a_late_commit(url: str, engine: sa.Engine, clock: Clock) -> None:
    """A row stamped earlier but committed after later rows is still read.

    SQLite allows one writer, so the late commit is the insert itself: its timestamp
    lies before rows already committed, within the lag the cursor waits out.
    """
    t0 = clock().replace(tzinfo=None)
    insert(engine, "SBXX", [row("SBXX", 1, t0 - timedelta(seconds=300))])
    insert(engine, "SBXX", [row("SBXX", 3, t0 - timedelta(seconds=5))])   # committed first
    journal = Journal()
    with open_source(url, clock, strategy="cursor", cursor_safety_lag_seconds=30) as source:
        journal.drain(source)
        assert journal.keys("SBXX") == keys_of("SBXX", [1])  # row 3 is inside the lag
        insert(engine, "SBXX", [row("SBXX", 2, t0 - timedelta(seconds=10))])  # late commit
        clock.advance(60)
        journal.drain(source)
    assert journal.keys("SBXX") == keys_of("SBXX", [1, 2, 3])


def test_cursor_bound_is_frozen_for_a_pass(url: str, engine: sa.Engine, clock: Clock) -> None:
    t0 = clock().replace(tzinfo=None)
    insert(engine, "SBXX", [row("SBXX", n, t0 - timedelta(seconds=120)) for n in range(4)])
    journal = Journal()
    with open_source(url, clock, strategy="cursor", page_size=2,
                     cursor_safety_lag_seconds=60) as source:
        reading = source.read(journal.state)
        journal.journal(next(reading))
        insert(engine, "SBXX", [row("SBXX", 9, t0 - timedelta(seconds=30))])
        clock.advance(60)  # a moving bound would now take row 9 in this pass
        for chunk in reading:
            journal.journal(chunk)
        assert journal.keys("SBXX") == keys_of("SBXX", range(4))
        journal.drain(source)  # the next pass takes it
    assert journal.keys("SBXX") == keys_of("SBXX", [0, 1, 2, 3, 9])


_LEGACY_COLUMNS = {
    "XZQHDM": "DIV", "TYSHXYDM": "ORG", "SJBBH": "VER", "GXSJ": "UPD_TIME", "SBLSH": "APPLY_NO",
    "SXBM": "ITEM", "SQRLX": "APPLICANT_TYPE", "SQRMC": "WHO", "SQRZJLX": "ID_TYPE",
    "SQRZJHM": "ID_NO", "SBSJ": "SUBMITTED", "TJFS": "CHANNEL"}


def legacy_view(engine: sa.Engine) -> dict[str, Any]:
    """A legacy table LEGACY_APPLY behind a view V_APPLY: the mapping that reads it."""
    org = row("SBXX", 0)["TYSHXYDM"]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE LEGACY_APPLY (APPLY_NO TEXT, ITEM TEXT, WHO TEXT, ID_NO TEXT,"
            " SUBMITTED TEXT, UPD_TIME TEXT, VER INTEGER)")
        conn.exec_driver_sql(  # the constants a legacy table lacks come from the view
            "CREATE VIEW V_APPLY AS SELECT APPLY_NO, ITEM, WHO, ID_NO, SUBMITTED, UPD_TIME,"
            f" VER, '430102' AS DIV, '{org}' AS ORG, '1' AS APPLICANT_TYPE,"
            " '10' AS ID_TYPE, '2' AS CHANNEL FROM LEGACY_APPLY")
    return {"SBXX": {"table": "V_APPLY", "columns": _LEGACY_COLUMNS}}


def add_legacy_rows(engine: sa.Engine, numbers: Iterable[int], updated: str,
                    no_key: Collection[int] = ()) -> None:
    """Rows ``numbers`` updated at ``updated``; those in ``no_key`` without APPLY_NO."""
    with engine.begin() as conn:
        for n in numbers:
            values = row("SBXX", n)
            conn.exec_driver_sql(
                "INSERT INTO LEGACY_APPLY VALUES (?, ?, ?, ?, '20261120090000', ?, 1)",
                (None if n in no_key else values["SBLSH"], values["SXBM"], values["SQRMC"],
                 values["SQRZJHM"], updated))


def test_mapped_legacy_view(url: str, engine: sa.Engine, clock: Clock) -> None:
    mapping = legacy_view(engine)
    add_legacy_rows(engine, range(5), "2026-11-20 09:00:00")  # one time: the key breaks ties
    journal = Journal()
    options = {"strategy": "cursor", "tables": ["SBXX"], "page_size": 2, "mapping": mapping}
    restart_each_chunk(journal, url, clock, **options)
    assert journal.keys("SBXX") == keys_of("SBXX", range(5))
    assert journal.rejects == []
    assert journal.state["cursors"]["SBXX"]["columns"] == ["UPD_TIME", "APPLY_NO", "VER"]


def test_rows_with_a_null_cursor_key_are_told_and_never_stop_the_cursor(
        url: str, engine: sa.Engine, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """A NULL key as the last row of a page would be the saved position, which no later
    query can compare with: the source would fail on every poll from then on."""
    mapping = legacy_view(engine)
    add_legacy_rows(engine, range(5), "2026-11-20 09:00:00", no_key={1, 4})
    journal = Journal()
    with caplog.at_level(logging.WARNING, "exgate.source.db"), \
            open_source(url, clock, strategy="cursor", tables=["SBXX"], page_size=2,
                        mapping=mapping) as source:
        journal.drain(source)
        add_legacy_rows(engine, [5], "2026-11-20 10:00:00")
        journal.drain(source)
    assert journal.keys("SBXX") == keys_of("SBXX", [0, 2, 3, 5])
    [warning] = [r.getMessage() for r in caplog.records]
    assert "V_APPLY: 2 rows have a NULL cursor key (APPLY_NO, VER)" in warning


# -- SQL of every strategy on Oracle ------------------------------------------------------------

def _oracle_sql(statement: Any) -> str:
    return str(statement.compile(dialect=oracle.dialect()))


@pytest.mark.parametrize("strategy", ["flag", "changelog", "cursor"])
def test_oracle_queries_compile(strategy: str) -> None:
    options = parse_options({"url": "oracle://u@h/db", "strategy": strategy}, CATALOG)
    sf = element_tables(options, "oracle", CATALOG)["SF"]
    if strategy == "flag":
        sql = _oracle_sql(flag_query(sf, 41, 500))
        assert "FROM ex_sf" in sql and "sync_flag = " in sql and "FETCH FIRST" in sql
    elif strategy == "changelog":
        position = ChangelogPosition(9, (Gap(3, 4, 0.0),))
        sql = _oracle_sql(changelog_query("oracle", position, 500))
        assert "FROM ex_changelog" in sql and "BETWEEN" in sql and "FETCH FIRST" in sql
        assert "IN (__[POSTCOMPILE" in _oracle_sql(rows_query(sf, [1, 2]))
    else:
        last = [datetime(2026, 11, 20), 7]
        sql = _oracle_sql(cursor_query(sf, datetime(2026, 11, 21), last, 500))
        assert "ORDER BY ex_sf.gxsj, ex_sf.row_id" in sql and "FETCH FIRST" in sql
        assert "(ex_sf.gxsj, " not in sql  # no row-value comparison on Oracle
        sql = _oracle_sql(untimed_query(sf, [7], 500))
        assert "ex_sf.gxsj IS NULL" in sql and "ORDER BY ex_sf.row_id" in sql
    if strategy != "cursor":
        assert "UPDATE ex_sf SET sync_flag" in _oracle_sql(mark_taken(sf, [1], datetime.now()))
        assert "sync_msg=:b_msg" in _oracle_sql(mark_rejected(sf))


def test_oracle_binds_cursor_times_as_timestamps_keeping_the_fraction() -> None:
    """A DATE bind would drop the microseconds: a cursor resting inside one second would
    read the same page for ever."""
    from sqlalchemy.dialects.oracle.oracledb import OracleDialect_oracledb

    options = parse_options({"url": "oracle://u@h/db", "strategy": "cursor"}, CATALOG)
    sf = element_tables(options, "oracle", CATALOG)["SF"]
    dialect = OracleDialect_oracledb(dbapi=oracledb)
    last = [datetime(2026, 11, 20, 9, 30, 1, 250_000), 7]
    compiled = cursor_query(sf, datetime(2026, 11, 21, 8, 0, 0, 500), last, 500).compile(
        dialect=dialect)
    times = [(bind.value, bind.type.dialect_impl(dialect).get_dbapi_type(oracledb))
             for bind in compiled.binds.values() if isinstance(bind.value, datetime)]
    assert {value for value, _ in times} == {last[0], datetime(2026, 11, 21, 8, 0, 0, 500)}
    assert {dbapi_type for _, dbapi_type in times} == {oracledb.DB_TYPE_TIMESTAMP}


def test_oracle_binds_whole_seconds_as_dates_so_a_date_column_keeps_its_index(
        clock: Clock) -> None:
    """A TIMESTAMP bind against a legacy DATE column converts the column on every row:
    every cursor page would scan the table."""
    from sqlalchemy.dialects.oracle.oracledb import OracleDialect_oracledb

    options = parse_options({"url": "oracle://u@h/db", "strategy": "cursor"}, CATALOG)
    sf = element_tables(options, "oracle", CATALOG)["SF"]
    dialect = OracleDialect_oracledb(dbapi=oracledb)
    last = [datetime(2026, 11, 20, 9, 30, 1), 7]
    compiled = cursor_query(sf, datetime(2026, 11, 21, 8, 0, 0), last, 500).compile(
        dialect=dialect)
    kinds = [bind.type.dialect_impl(dialect).get_dbapi_type(oracledb)
             for bind in compiled.binds.values() if isinstance(bind.value, datetime)]
    # DATETIME is the driver's DATE bind (it compares equal to TIMESTAMP too: by identity)
    assert kinds and all(kind is oracledb.DATETIME for kind in kinds)


def test_the_cursor_bound_is_a_whole_second(url: str, clock: Clock) -> None:
    clock.now = clock.now.replace(microsecond=750_000)
    with open_source(url, clock, strategy="cursor", cursor_safety_lag_seconds=30) as source:
        upper = source._strategy._signpost()  # type: ignore[attr-defined]
    expected = clock.now.replace(tzinfo=None, microsecond=0) - timedelta(seconds=30)
    assert upper in (expected, expected.strftime("%Y-%m-%d %H:%M:%S.%f"))


def test_oracle_options() -> None:
    def options(**extra: Any) -> dict[str, Any]:
        url = extra.pop("url", "oracle://u@h/db")
        return engine_options(engine_url(url), parse_options({"url": url, **extra}, CATALOG))

    keepalive = {"connect_args": {"expire_time": 1}}
    assert options() == keepalive
    assert options(oracle_thick=True) == {"thick_mode": True, **keepalive}
    assert options(oracle_client_lib="/opt/ic") == {"thick_mode": {"lib_dir": "/opt/ic"},
                                                     **keepalive}
    # python-oracledb takes the argument in either mode.
    assert oracledb.ConnectParams(**keepalive["connect_args"]).expire_time == 1
    assert options(url="oracle+cx_oracle://u@h/db", oracle_thick=True) == {}
    with pytest.raises(ConfigError, match="oracle_thick"):
        options(url="sqlite://", oracle_thick=True)


# -- options, errors, values --------------------------------------------------------------------

@pytest.mark.parametrize(("options", "key"), [
    ({}, "url"),
    ({"url": "sqlite://", "stratgy": "flag"}, "stratgy"),
    ({"url": "sqlite://", "strategy": "poll"}, "strategy"),
    ({"url": "sqlite://", "tables": ["SBXX", "NOPE"]}, "tables"),
    ({"url": "sqlite://", "page_size": 0}, "page_size"),
    ({"url": "sqlite://", "cursor_safety_lag_seconds": -1}, "cursor_safety_lag_seconds"),
    ({"url": "sqlite://", "cursor_null_scan_seconds": "1h"}, "cursor_null_scan_seconds"),
    ({"url": "sqlite://", "oracle_thick": "yes"}, "oracle_thick"),
    ({"url": "sqlite://", "mapping": {"SBXX": {"columns": {}}}}, "mapping.SBXX.table"),
    ({"url": "sqlite://", "mapping": {"SBXX": {"table": "T", "columns": {"NOPE": "X"}}}},
     "mapping.SBXX.columns"),
    ({"url": "sqlite://", "mapping": {"SBXX": {"table": "T", "timestamp": "X"}}},
     "mapping.SBXX.timestamp"),
    ({"url": "sqlite://", "strategy": "cursor",
      "mapping": {"SBXX": {"table": "T", "columns": {"GXSJ": "T1"}}}}, "mapping.SBXX.key"),
    ({"url": "sqlite://", "tables": ["SL"], "mapping": {"SBXX": {"table": "T"}}},
     "mapping.SBXX"),
])
def test_bad_options_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        database_source("front", options, context())


@pytest.mark.parametrize("strategy", ["flag", "changelog"])
@pytest.mark.parametrize(("sbxx", "sl"), [
    ("APPA.T_EXPORT", "APPB.t_export"), ("T_EXPORT", "T_EXPORT"), ("APPA.EX_SL", None)])
def test_two_tables_of_one_bare_name_are_refused(strategy: str, sbxx: str,
                                                 sl: str | None) -> None:
    """The write-back tells tables apart by their name without the schema: the second
    table's rows would be marked taken unread."""
    mapping = {"SBXX": {"table": sbxx}} | ({"SL": {"table": sl}} if sl else {})
    options = {"url": "sqlite://", "strategy": strategy, "tables": ["SBXX", "SL"],
               "mapping": mapping}
    with pytest.raises(ConfigError, match=r"named 'T_EXPORT'|named 'EX_SL'") as refused:
        parse_options(options, CATALOG)
    assert sbxx in str(refused.value) and (sl or "EX_SL") in str(refused.value)


def test_one_view_may_feed_two_elements_of_a_cursor_source() -> None:
    mapping = {code: {"table": "APP.V_EXPORT", "key": ["K"], "timestamp": "T"}
               for code in ("SBXX", "SL")}
    options = parse_options({"url": "sqlite://", "strategy": "cursor", "tables": ["SBXX", "SL"],
                             "mapping": mapping}, CATALOG)
    assert options.mapping is not None
    assert {m.table for m in options.mapping.values()} == {"APP.V_EXPORT"}


def test_a_missing_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="driver"):
        database_source("front", {"url": "oracle+cx_oracle://u@h/db"}, context())


def test_driver_errors_are_retriable(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "x.db").touch()  # a database without the tables
    source = open_source(f"sqlite:///{tmp_path / 'x.db'}", clock)
    with source, pytest.raises(RetriableError, match="front") as caught:
        list(source.read({}))
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
    assert isinstance(source, Source)


def test_a_mistyped_sqlite_path_is_a_config_error_not_a_new_empty_database(
        tmp_path: Path, clock: Clock) -> None:
    missing = tmp_path / "frnt.db"
    with pytest.raises(ConfigError) as refused:
        open_source(f"sqlite:///{missing}", clock)
    assert f"no SQLite database {missing}" in str(refused.value)
    assert "exgate frontdb init --url" in str(refused.value)
    assert not missing.exists()


@pytest.mark.parametrize(("options", "words"), [
    ({"url": "sqlite:///{db}", "password_file": "pw"}, "a SQLite database has no password"),
    ({"url": "sqlite:///{db}?timeout=abc"}, "'url' or its options: could not convert"),
    ({"url": "sqlite:///{db}", "oracle_thick": True}, "^'oracle_thick' and 'oracle_client_lib'"
                                                      " apply to Oracle URLs only$"),
])
def test_what_the_engine_refuses_is_a_config_error(
        tmp_path: Path, clock: Clock, options: dict[str, Any], words: str) -> None:
    (tmp_path / "front.db").touch()
    (tmp_path / "pw").write_text("secret\n")
    given = {key: value.format(db=tmp_path / "front.db") if key == "url" else
             str(tmp_path / value) if isinstance(value, str) else value
             for key, value in options.items()}
    with pytest.raises(ConfigError, match=words) as refused:
        open_source(given.pop("url"), clock, **given)
    assert refused.value.message("zh") != str(refused.value)  # its Chinese kept


def test_database_values_become_exchange_text() -> None:
    assert to_text(None) is None
    assert to_text(Decimal("12.50")) == "12.50"
    assert to_text(Decimal("1E+2")) == "100"
    assert to_text(12.5) == "12.5"
    assert to_text(7) == "7"
    assert to_text(datetime(2026, 11, 20, 9, 58, 1, 500)) == "2026-11-20 09:58:01"
    utc = datetime(2026, 11, 20, 1, 58, 1, tzinfo=BEIJING).astimezone(UTC)
    assert to_text(utc) == "2026-11-20 01:58:01"
    assert to_text("原样") == "原样"
    assert to_text(True) == "1"
    assert to_text(date(2026, 11, 20)) == "2026-11-20 00:00:00"


@pytest.mark.parametrize("year", [1, 999, 1000, 2026, 9999])
def test_naive_times_keep_the_strftime_spelling_in_every_year(year: int) -> None:
    value = datetime(year, 11, 20, 9, 58, 1, 999_999)
    assert to_text(value) == value.strftime("%Y-%m-%d %H:%M:%S")


def sbxx_table() -> Any:
    options = parse_options({"url": "sqlite://", "tables": ["SBXX"]}, CATALOG)
    return element_tables(options, "sqlite", CATALOG)["SBXX"]


def test_row_fields_are_exchange_text_in_catalogue_order() -> None:
    table = sbxx_table()
    values = row("SBXX", 1)
    fields = fields_of(table, [values[code] for code, _ in table.fields])
    assert list(fields) == [code for code, _ in table.fields]
    assert fields == {code: to_text(value) for code, value in values.items()}
    with pytest.raises(ValueError):
        fields_of(table, [values[code] for code, _ in table.fields][:-1])


@pytest.mark.parametrize("value", [
    datetime(2026, 11, 20, 9, 58, 1, 500), datetime(999, 11, 20, 9, 58, 1),
    datetime(2026, 11, 20, 1, 58, 1, tzinfo=UTC), 7, -12, True, False,
    Decimal("12.50"), 12.5, date(2026, 11, 20), b"text"])
def test_row_values_are_converted_as_to_text_does(value: Any) -> None:
    """``fields_of`` sends the usual types straight to their converter: the same text."""
    table = sbxx_table()
    values = [row("SBXX", 1)[code] for code, _ in table.fields]
    values[table.codes.index("SQRMC")] = value
    assert fields_of(table, values)["SQRMC"] == to_text(value)


def test_sqlite_time_text_loses_its_fraction() -> None:
    table = sbxx_table()
    values = row("SBXX", 1) | {"GXSJ": "2026-11-20 09:00:00.123456"}
    fields = fields_of(table, [values[code] for code, _ in table.fields])
    assert fields["GXSJ"] == "2026-11-20 09:00:00"


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x1f", "\ud800", "\ufffe", "\uffff"])
def test_a_character_outside_xml_is_a_bad_value(char: str) -> None:
    table = sbxx_table()
    values = row("SBXX", 1) | {"SQRMC": f"张{char}三"}
    check = check_row(table, [values[code] for code, _ in table.fields], CATALOG, DIVISION,
                      BASE_TIME + timedelta(days=1))
    assert [(i.code, i.field) for i in check.issues] == [("bad-value", "SQRMC")]


@pytest.mark.parametrize("char", ["\t", "\n", "\x7f", "\x85", "\u3000", "\u2028", "\U00020000"])
def test_an_unprintable_character_xml_carries_goes_to_the_validator(char: str) -> None:
    """The cheap printable test only pre-screens: these are valid XML characters."""
    table = sbxx_table()
    values = [(row("SBXX", 1) | {"SQRMC": f"张{char}三"})[code] for code, _ in table.fields]
    latest = BASE_TIME + timedelta(days=1)
    expected = check_fields("SBXX", fields_of(table, values), CATALOG, DIVISION, latest)
    assert check_row(table, values, CATALOG, DIVISION, latest) == expected


def test_cursor_values_survive_json() -> None:
    undecoded = b"\xe5\xbc\xa0\xc3|\xff".decode("utf-8", "surrogateescape")  # as SQLite's
    for value in (datetime(2026, 11, 20, 9, 0, 0, 123), Decimal("1.20"), "A-1", 7, None,
                  BASE_TIME.date(), "张三", undecoded):
        saved = json.loads(json.dumps(encode_value(value), ensure_ascii=False))
        assert decode_value(saved) == value


def test_empty_chunks_carry_no_checks(url: str, clock: Clock) -> None:
    with open_source(url, clock) as source:
        source.commit(Chunk(checks=()))
        assert list(source.read({})) == []


def test_a_row_whose_transaction_outlasted_the_gap_wait_is_found_by_a_later_sweep(
        plain_url: str, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    # Its gap was given up and the position passed its SEQ: the log never hands it out,
    # and the sweep of rows still at SYNC_FLAG=0 ran only once per agent start.
    engine = sa.create_engine(plain_url)
    insert(engine, "SBXX", [row("SBXX", 1), row("SBXX", 3)])
    write_log(engine, (1, 1), (3, 2))  # SEQ 2 is taken by a transaction still open
    journal = Journal()
    options = {"strategy": "changelog", "changelog_gap_wait_seconds": 60}
    with open_source(plain_url, clock, **options) as source, \
            caplog.at_level(logging.WARNING, "exgate.source.db"):
        journal.drain(source)
        clock.advance(61)
        journal.drain(source)  # the gap is given up
        assert journal.state["gaps"] == []
        clock.advance(1)
        insert(engine, "SBXX", [row("SBXX", 2)])  # ... and then it commits
        write_log(engine, (2, 3))
        assert journal.drain(source) == 0  # not a wait later yet
        assert journal.keys("SBXX") == keys_of("SBXX", [1, 3])
        clock.advance(60)
        assert journal.drain(source) == 1
    engine.dispose()
    assert journal.keys("SBXX") == keys_of("SBXX", [1, 2, 3]) and journal.duplicates == 0
    assert "longer than changelog_gap_wait_seconds" in caplog.text

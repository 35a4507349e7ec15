"""The database source on SQLite, with the real outbox: rows that cannot be read as
records become rejects instead of vanishing or stopping their page, and a crash between
the journal and the write-back loses no SYNC_FLAG.

- cursor rows with a NULL timestamp: reported once, re-sought only every
  ``cursor_null_scan_seconds``, read normally once the timestamp is filled;
- a TEXT value with bytes that are not UTF-8: a reject of that field;
- the write-back of the page journaled just before a crash is finished at start-up,
  and one that failed (a lock) is retried by the next read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.frontdb import front_tables
from adapters.sources.base import SourceContext
from adapters.sources.database import DatabaseSource, database_source
from adapters.sources.db_options import parse_options
from adapters.sources.db_tables import check_row, element_tables, fields_of, reject_message
from frontend_machine.outbox import Outbox
from schemas.catalog import load_catalog
from schemas.errors import RetriableError
from schemas.record_check import check_fields
from tests.unit.adapters.front_rows import (
    BASE_TIME,
    DIVISION,
    Clock,
    journaled_keys,
    keys_of,
    legacy_table,
    poll,
    row,
)

CATALOG = load_catalog()
TABLES = front_tables("sqlite")
HOUR = 3600.0


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def open_source(url: str, clock: Clock, lang: str = "en", **options: Any) -> DatabaseSource:
    context = SourceContext("node-1", DIVISION, CATALOG, lang)
    return database_source("front", {"url": url, **options}, context, clock=clock)


def flags(engine: sa.Engine, element: str) -> dict[int, tuple[int, str | None]]:
    table = TABLES.elements[element]
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            sa.select(table.c.ROW_ID, table.c.SYNC_FLAG, table.c.SYNC_MSG))}


# -- cursor: NULL timestamps -------------------------------------------------------------------

def legacy(engine: sa.Engine, rows: dict[int, datetime | None]) -> sa.Table:
    """LEGACY_SBXX with one row per number, stamped as given (None: NULL)."""
    table = legacy_table("sqlite", "SBXX", "LEGACY_SBXX")
    table.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(table.insert(), [row("SBXX", n) | {"UPD_TIME": when}
                                      for n, when in rows.items()])
    return table


def stamp(engine: sa.Engine, table: sa.Table, n: int, column: str, when: datetime) -> None:
    key = row("SBXX", n)["SBLSH"]
    with engine.begin() as conn:
        conn.execute(table.update().where(key == table.c.SBLSH).values({column: when}))


def origin(n: int) -> str:
    return f"LEGACY_SBXX#{row('SBXX', n)['SBLSH']}|1"


def cursor_options(timestamp: str = "UPD_TIME", **extra: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {"table": "LEGACY_SBXX"}
    if timestamp != "GXSJ":  # GXSJ is the mapping's default timestamp
        mapping["timestamp"] = timestamp
    return {"strategy": "cursor", "tables": ["SBXX"], "mapping": {"SBXX": mapping}, **extra}


@pytest.mark.parametrize("timestamp", ["UPD_TIME", "GXSJ"])
def test_cursor_reports_a_null_timestamp_once_and_reads_the_row_once_filled(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox, timestamp: str) -> None:
    old = BASE_TIME
    table = legacy(engine, {0: old, 1: None, 2: old, 3: None, 4: old})
    if timestamp == "GXSJ":  # the update-time field is the cursor column
        with engine.begin() as conn:
            conn.execute(table.update().values(GXSJ=table.c.UPD_TIME))
    options = cursor_options(timestamp, page_size=2)
    with open_source(url, clock, **options) as source:
        poll(outbox, source)
        assert journaled_keys(outbox) == keys_of("SBXX", [0, 2, 4])
        rejects = outbox.rejects("front")
        assert [r["origin"] for r in rejects] == [origin(1), origin(3)]
        [issue] = rejects[0]["issues"]
        assert issue["code"] == "bad-value" and issue["field"] == timestamp
        assert "更新时间为空" in issue["message"] and "请在源系统中填写该列" in issue["message"]
        assert poll(outbox, source) == 0  # not reported again on every poll
    clock.advance(HOUR - 1)
    with open_source(url, clock, **options) as source:  # nor after a restart
        assert poll(outbox, source) == 0
    with engine.begin() as conn:
        conn.execute(table.insert(), [row("SBXX", 5) | {"UPD_TIME": None, "GXSJ": None}])
    stamp(engine, table, 1, timestamp, clock().replace(tzinfo=None))  # filled at the fix
    clock.advance(61)  # past the scan interval and the safety lag
    with open_source(url, clock, **options) as source:
        assert poll(outbox, source) > 0
    assert journaled_keys(outbox) == keys_of("SBXX", [0, 1, 2, 4])
    origins = [r["origin"] for r in outbox.rejects("front")]
    assert origins == [origin(1), origin(3), origin(5)]  # 3 again: journaled once


def test_a_null_timestamp_reject_reads_in_english_too(url: str, engine: sa.Engine,
                                                      clock: Clock) -> None:
    legacy(engine, {1: None})
    with open_source(url, clock, **cursor_options()) as source:
        [chunk] = source.read({})
    [(_, check)] = chunk.checks
    assert reject_message(check, "en") == (
        "[bad-value] UPD_TIME (update time) value 'NULL' is invalid: the update time is "
        "empty, so the row cannot be ordered; fill the column in the source system (with "
        "the time of the fix)")


def test_the_null_scan_pages_by_key_and_resumes_after_a_restart(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox) -> None:
    legacy(engine, dict.fromkeys(range(7)))
    options = cursor_options(page_size=3)
    with open_source(url, clock, **options) as source:
        reading = source.read({})
        outbox.journal("front", next(reading))  # killed after the first page
        reading.close()
    state = outbox.source_state("front")["untimed"]["SBXX"]
    assert state["columns"] == ["SBLSH", "SJBBH"] and state["after"] is not None
    with open_source(url, clock, **options) as source:
        assert poll(outbox, source) == 2  # 3 + 1 rows: the scan ends on a short page
    assert [r["origin"] for r in outbox.rejects("front")] == [origin(n) for n in range(7)]
    assert outbox.source_state("front")["untimed"]["SBXX"] == {
        "columns": ["SBLSH", "SJBBH"], "after": None, "due": clock().timestamp() + HOUR}


def test_a_scan_that_ends_on_an_empty_page_is_journaled_done(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox) -> None:
    legacy(engine, {0: BASE_TIME, 1: None, 2: None})
    with open_source(url, clock, **cursor_options(page_size=2)) as source:
        assert poll(outbox, source) == 3  # the timed row, the NULL rows, then "done"
        assert poll(outbox, source) == 0
    assert outbox.source_state("front")["untimed"]["SBXX"]["after"] is None


def test_the_scan_interval_is_an_option(url: str, engine: sa.Engine, clock: Clock,
                                        outbox: Outbox) -> None:
    legacy(engine, {1: None})
    with open_source(url, clock, **cursor_options(cursor_null_scan_seconds=60)) as source:
        assert poll(outbox, source) == 1
        clock.advance(59)
        assert poll(outbox, source) == 0
        clock.advance(1)
        assert poll(outbox, source) == 1  # handed out again; the outbox keeps one
    assert len(outbox.rejects("front")) == 1


# -- SQLite: bytes that are not UTF-8 ------------------------------------------------------------

def spoil(engine: sa.Engine, row_id: int) -> None:
    """SQRMC of the row becomes 张 then a lone byte 0xC3: what a legacy writer left."""
    with engine.begin() as conn:
        conn.exec_driver_sql('UPDATE "EX_SBXX" SET SQRMC = CAST(x\'e5bca0c3\' AS TEXT)'
                             " WHERE ROW_ID = ?", (row_id,))


@pytest.mark.parametrize("strategy", ["flag", "changelog", "cursor"])
def test_bytes_that_are_not_utf8_reject_their_row_not_the_page(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox, strategy: str) -> None:
    with engine.begin() as conn:
        conn.execute(TABLES.elements["SBXX"].insert(), [row("SBXX", n) for n in range(1, 5)])
    spoil(engine, 2)
    with open_source(url, clock, "zh", strategy=strategy, page_size=10) as source:
        poll(outbox, source)
        assert poll(outbox, source) == 0
    assert journaled_keys(outbox) == keys_of("SBXX", [1, 3, 4])
    [reject] = outbox.rejects("front")
    assert reject["origin"] == "EX_SBXX#2"
    [issue] = reject["issues"]
    assert (issue["code"], issue["field"]) == ("bad-value", "SQRMC")
    assert "张\\xc3" in issue["message"] and "不是有效 UTF-8 的字节" in issue["message"]
    if strategy != "cursor":
        flag, message = flags(engine, "SBXX")[2]
        assert flag == 2 and message is not None and "UTF-8" in message


@pytest.mark.parametrize("column", ["SBLSH", "UPD_TIME"])
def test_the_cursor_moves_past_a_key_or_timestamp_that_is_not_utf8(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox, column: str) -> None:
    """The position after such a row keeps its exact bytes, across restarts, so the
    next page starts right after it: nothing is read twice, nothing is skipped."""
    legacy(engine, {n: BASE_TIME + timedelta(seconds=n) for n in range(4)})
    with engine.begin() as conn:  # row 1 gets a trailing 0xC3: it still sorts second
        conn.exec_driver_sql(f"UPDATE LEGACY_SBXX SET {column} = CAST({column} AS BLOB)"
                             " || x'c3' WHERE SBLSH = ?", (row("SBXX", 1)["SBLSH"],))
    pages = 0
    while True:  # one row a page, and a restart before each: every position is reloaded
        with open_source(url, clock, "zh", **cursor_options(page_size=1)) as source:
            if not (polled := poll(outbox, source)):
                break
            pages += polled
    assert pages == 5  # four rows, then the null scan's empty end
    journaled = journaled_keys(outbox)
    if column == "SBLSH":  # a field: the row is rejected, shown with the byte escaped
        assert journaled == keys_of("SBXX", [0, 2, 3])
        [reject] = outbox.rejects("front")
        assert reject["origin"] == f"LEGACY_SBXX#{row('SBXX', 1)['SBLSH']}\\xc3|1"
    else:  # only the cursor's: the record is valid
        assert journaled == keys_of("SBXX", range(4)) and outbox.rejects("front") == []
    saved = outbox.source_state("front")["cursors"]["SBXX"]["values"]
    assert saved[1] == row("SBXX", 3)["SBLSH"]


def test_undecodable_bytes_are_named_in_english() -> None:
    options = parse_options({"url": "sqlite://", "tables": ["SBXX"]}, CATALOG)
    table = element_tables(options, "sqlite", CATALOG)["SBXX"]
    values = row("SBXX", 1) | {"SQRMC": "张\udcc3三"}  # how sqlite_text hands over 0xC3
    check = check_row(table, [values[code] for code, _ in table.fields], CATALOG, DIVISION,
                      BASE_TIME + timedelta(days=1))
    [issue] = check.issues
    assert issue.field == "SQRMC"
    assert issue.message("en") == ("SQRMC (申请人名称) value '张\\xc3三' is invalid: contains "
                                   "bytes that are not valid UTF-8 (such as \\xc3); correct it "
                                   "in the source system")


@pytest.mark.parametrize("name", ["张三", "张\t三", "张\x85三", "张&lt;三", "张\x01三"])
def test_check_row_judges_a_row_as_check_fields_does(name: str) -> None:
    """``check_row`` tells ``check_fields`` the values are XML text, so the fast path does
    not scan them again: unprintable XML text (a tab, a C1 control) is judged the same,
    and a character XML cannot carry is a reject before that."""
    options = parse_options({"url": "sqlite://", "tables": ["SBXX"]}, CATALOG)
    table = element_tables(options, "sqlite", CATALOG)["SBXX"]
    values = row("SBXX", 1) | {"SQRMC": name}
    ordered = [values[code] for code, _ in table.fields]
    latest = BASE_TIME + timedelta(days=1)
    check = check_row(table, ordered, CATALOG, DIVISION, latest)
    if name == "张\x01三":
        assert [i.field for i in check.issues] == ["SQRMC"]
        return
    assert check == check_fields("SBXX", fields_of(table, ordered), CATALOG, DIVISION, latest)


@pytest.mark.parametrize("also", [{}, {"SQRMC": ""}])  # proven fast, or through lxml
def test_a_row_outside_the_node_names_the_node_s_division_never_a_head(
        also: dict[str, str]) -> None:
    """A database row has no HEAD (报文头): its division is checked against the node's."""
    options = parse_options({"url": "sqlite://", "tables": ["SBXX"]}, CATALOG)
    table = element_tables(options, "sqlite", CATALOG)["SBXX"]
    values = row("SBXX", 1) | {"XZQHDM": "440103"} | also
    check = check_row(table, [values[code] for code, _ in table.fields], CATALOG, DIVISION,
                      BASE_TIME + timedelta(days=1))
    [issue] = [i for i in check.issues if i.field == "XZQHDM"]
    assert issue.code == "division-mismatch"
    assert issue.message("zh") == ("记录的行政区划 440103 不在本前置机节点的行政区划 430102 之内，"
                                   "各级网关会拒收")
    assert issue.message("en").startswith(
        "the record's division 440103 lies outside this node's division 430102")
    assert "报文头" not in reject_message(check, "zh") and "HEAD" not in reject_message(check, "en")


# -- the write-back of the page journaled before a crash -------------------------------------------

@pytest.mark.parametrize("strategy", ["flag", "changelog"])
def test_a_crash_before_the_write_back_still_flags_every_row(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox, strategy: str) -> None:
    bad = row("SBXX", 2) | {"TJFS": "7"}
    with engine.begin() as conn:
        conn.execute(TABLES.elements["SBXX"].insert(),
                     [row("SBXX", 1), bad, row("SBXX", 3)])
    with open_source(url, clock, "zh", strategy=strategy) as source:
        reading = source.read(outbox.source_state("front"))
        outbox.journal("front", next(reading))  # journaled, killed before the commit
        reading.close()
    assert {flag for flag, _ in flags(engine, "SBXX").values()} == {0}
    with open_source(url, clock, "zh", strategy=strategy) as source:  # the next agent
        poll(outbox, source)
    state = flags(engine, "SBXX")
    assert state[1] == (1, None) and state[3] == (1, None)
    flag, message = state[2]
    assert flag == 2 and message is not None and "TJFS" in message and "[bad-value]" in message
    assert outbox.record_count() == 2 and len(outbox.rejects("front")) == 1


@pytest.mark.parametrize("crash", [False, True])
def test_a_row_is_marked_again_only_for_the_verdict_it_was_journaled_with(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox, crash: bool) -> None:
    """A reject journaled for a time then in the future validates hours later: marked by
    that new verdict at the next start, it went to 1 (taken) with no record journaled."""
    ahead = clock.now.replace(tzinfo=None) + timedelta(days=1, hours=1)
    with engine.begin() as conn:
        conn.execute(TABLES.elements["SBXX"].insert(), [row("SBXX", 1, ahead), row("SBXX", 2)])
    with open_source(url, clock, strategy="changelog") as source:
        reading = source.read(outbox.source_state("front"))
        chunk = next(reading)
        outbox.journal("front", chunk)
        if not crash:
            source.commit(chunk)
        reading.close()  # killed, or a quiet system: this page stays the last journaled
    [reject] = outbox.rejects("front")
    assert [i["code"] for i in reject["issues"]] == ["bad-date", "bad-date"]
    assert outbox.record_count() == 1
    clock.advance(2 * HOUR)  # the time is no longer ahead: row 1 validates now
    with open_source(url, clock, strategy="changelog") as source:  # the next agent
        poll(outbox, source)
    flag, message = flags(engine, "SBXX")[1]
    if crash:  # left at 0, then read by the sweep as what it is now: a record
        assert (flag, message) == (1, None) and outbox.record_count() == 2
    else:  # the reject stands, as journaled
        assert flag == 2 and message is not None and message.startswith("[bad-date]")
        assert outbox.record_count() == 1
    assert flags(engine, "SBXX")[2] == (1, None)


def test_a_clean_restart_rewrites_no_flag(url: str, engine: sa.Engine, clock: Clock,
                                          outbox: Outbox) -> None:
    with engine.begin() as conn:
        conn.execute(TABLES.elements["SBXX"].insert(), [row("SBXX", 1)])
    ex_sbxx = TABLES.elements["SBXX"]

    def sync_times() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(ex_sbxx.c.SYNC_TIME)).scalars())

    with open_source(url, clock, strategy="changelog") as source:
        poll(outbox, source)
    before = sync_times()
    clock.advance(60)
    with open_source(url, clock, strategy="changelog") as source:
        assert poll(outbox, source) == 0
    assert sync_times() == before and before != [None]


@pytest.mark.parametrize("strategy", ["flag", "changelog"])
def test_a_failed_write_back_is_retried_by_the_next_read(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox, strategy: str) -> None:
    """A lock held by the legacy system fails the UPDATE of a journaled page; the pages
    journaled after it must not make the source forget that page's flags."""
    with engine.begin() as conn:
        conn.execute(TABLES.elements["SBXX"].insert(),
                     [row("SBXX", 1), row("SBXX", 2) | {"TJFS": "7"}])
    with open_source(f"{url}?timeout=0.05", clock, strategy=strategy, page_size=2) as source:
        reading = source.read(outbox.source_state("front"))
        chunk = next(reading)
        outbox.journal("front", chunk)
        with engine.connect() as locker:
            locker.exec_driver_sql("BEGIN IMMEDIATE")
            with pytest.raises(RetriableError, match="cannot commit"):
                source.commit(chunk)
            locker.exec_driver_sql("ROLLBACK")
        reading.close()
        with engine.begin() as conn:  # the legacy system goes on writing
            conn.execute(TABLES.elements["SBXX"].insert(),
                         [row("SBXX", 3), row("SBXX", 4) | {"TJFS": "7"}])
        poll(outbox, source)
        assert poll(outbox, source) == 0
    state = flags(engine, "SBXX")
    assert [state[n][0] for n in (1, 2, 3, 4)] == [1, 2, 1, 2]
    assert all("TJFS" in str(state[n][1]) for n in (2, 4))
    assert journaled_keys(outbox) == keys_of("SBXX", [1, 3])
    assert len(outbox.rejects("front")) == 2


def test_a_rejected_row_corrected_and_given_back_settles_its_reject(
        url: str, engine: sa.Engine, clock: Clock, outbox: Outbox) -> None:
    """Through the real source: its records carry no line, so its row settles its reject."""
    sbxx = TABLES.elements["SBXX"]
    with engine.begin() as conn:
        conn.execute(sbxx.insert(), [row("SBXX", 1) | {"TJFS": "7"}, row("SBXX", 2)])
    with open_source(url, clock) as source:
        poll(outbox, source)
        assert outbox.open_rejects() == 1
        with engine.begin() as conn:  # corrected in place, handed back by its flag
            conn.execute(sbxx.update().where(sbxx.c.ROW_ID == 1)
                         .values(TJFS=row("SBXX", 1)["TJFS"], SYNC_FLAG=0))
        poll(outbox, source)
    assert outbox.open_rejects() == 0 and outbox.record_count() == 2

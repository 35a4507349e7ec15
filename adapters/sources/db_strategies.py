"""The ways of reading front-end tables: ``flag`` and ``changelog`` here, ``cursor`` in
``adapters.sources.db_cursor``, and what they share.

Each strategy yields pages of at most ``page_size`` rows together with its whole state
after the page. A page is fetched on its own short-lived connection, which is back
in the pool before the page is handed out: the agent journals it and marks the rows
in between, and SQLite or a long REPEATABLE READ snapshot would otherwise get in the way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import BigInteger, Engine, Select, String, column, func, or_, select, table
from sqlalchemy.sql.elements import ColumnClause

from adapters.frontdb import CHANGELOG, fold_identifier
from adapters.sources.db_state import STATE_VERSION, ChangelogPosition, strategy_state
from adapters.sources.db_tables import REJECTED, TAKEN, ElementTable, by_name, in_batches
from schemas.messages import Localized
from schemas.records import slot_setters

__all__ = [
    "AnySelect",
    "ChangelogStrategy",
    "FetchedRow",
    "FlagStrategy",
    "Page",
    "ReadContext",
    "Strategy",
    "Unconfirmed",
    "changelog_query",
    "changelog_top",
    "field_columns",
    "flag_query",
    "labelled",
    "rows_query",
    "with_verdicts",
]

log = logging.getLogger("exgate.source.db")

AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True, slots=True, init=False)
class FetchedRow:
    table: ElementTable
    ident: str                 # ROW_ID, or the cursor key of a mapped view
    values: Sequence[Any]      # field values in ``table.fields`` order, as the driver gave them

    def __init__(self, table: ElementTable, ident: str, values: Sequence[Any]) -> None:
        # One per row fetched: slot setters rather than frozen dataclass's own __init__.
        _set_table(self, table)
        _set_ident(self, ident)
        _set_values(self, values)


_set_table, _set_ident, _set_values = slot_setters(FetchedRow)


class Unconfirmed(NamedTuple):
    """A row of the last journaled page whose write-back a crash may have lost."""

    row: FetchedRow
    flag: Any               # its SYNC_FLAG as the database holds it now
    journaled: int | None   # the flag its journaled verdict asks for (None: not kept)


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[FetchedRow, ...]
    progress: dict[str, Any]
    # Cursor rows whose timestamp has no place in the order: rejects, not records; each
    # row's values are that timestamp alone.
    untimed: bool = False


@dataclass(frozen=True)
class ReadContext:
    engine: Engine
    tables: Mapping[str, ElementTable]   # element code → table, in catalogue order
    page_size: int
    clock: Callable[[], datetime]        # aware; injectable so tests can move time
    lang: str = "zh"                     # of the warnings an operator reads

    def fetch(self, query: AnySelect) -> Sequence[Sequence[Any]]:
        with self.engine.connect() as conn:
            return conn.execute(query).all()


class Strategy(Protocol):
    @property
    def writes_back(self) -> bool:
        """Whether ``commit`` marks rows (SYNC_FLAG) at the source."""
        ...

    @property
    def pipelined(self) -> bool:
        """Whether a page may be fetched, and a page written back, while the agent
        validates and journals another: true when no query depends on a write-back
        and a write-back that never happens only means the row is read again."""
        ...

    @property
    def rereads_unmarked(self) -> bool:
        """Whether every pass hands out each row still unmarked (``flag``): a row whose
        write-back is held off (``db_locks``) would come back on every poll."""
        ...

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        ...

    def unconfirmed(self, state: Mapping[str, Any]) -> tuple[Unconfirmed, ...]:
        """Rows of the last journaled page whose write-back a crash may have lost, each
        with its ``SYNC_FLAG`` now and the flag it was journaled for.

        ``state`` is the journaled progress at start-up; ``commit`` of these rows is
        re-applied once before the first page, since ``pages`` will not hand them out,
        to each row whose flag is not the one it was journaled for, as long as its
        content still validates to that.
        """
        ...


def labelled(columns: Sequence[ColumnClause[Any]]) -> list[Any]:
    # Labels keep a column that plays two roles (GXSJ as field and cursor) twice in a row.
    return [c.label(f"c{i}") for i, c in enumerate(columns)]


def field_columns(element: ElementTable) -> list[ColumnClause[Any]]:
    return [c for _, c in element.fields]


# -- flag ----------------------------------------------------------------------------------------

def flag_query(element: ElementTable, after_row_id: int | None, limit: int) -> AnySelect:
    """New rows (``SYNC_FLAG=0``) after ``after_row_id``, in ROW_ID order."""
    row_id = element.row_id
    assert row_id is not None
    query = (select(*labelled([row_id, *field_columns(element)]))
             .where(element.controls["SYNC_FLAG"] == 0).order_by(row_id).limit(limit))
    return query if after_row_id is None else query.where(row_id > after_row_id)


@dataclass(frozen=True)
class FlagStrategy:
    """Read ``SYNC_FLAG=0`` rows; ``commit`` sets 1 (taken) or 2 (rejected).

    The flags are the state, so a pass always starts from the first new row. A row
    committed late with a lower ROW_ID still has ``SYNC_FLAG=0`` and is read by the next
    pass. Within a pass pages move on by ROW_ID, so a page is never read twice even
    before its commit. Writers insert a new row per version (SJBBH); a row updated in
    place while unread may be marked taken with its older content read: use
    ``changelog`` for writers that update in place.
    """

    context: ReadContext
    writes_back: bool = True
    # Pages move on by ROW_ID, not by the flags; a row whose flag a crash lost is still
    # at SYNC_FLAG=0, so the next pass reads it again and the outbox drops it.
    pipelined: bool = True
    rereads_unmarked: bool = True

    def unconfirmed(self, state: Mapping[str, Any]) -> tuple[Unconfirmed, ...]:
        return ()  # an unmarked row still has SYNC_FLAG=0: the next pass reads it again

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        progress = {"v": STATE_VERSION, "strategy": "flag"}
        for rows in unflagged_pages(self.context):
            yield Page(rows, progress)


def unflagged_pages(context: ReadContext) -> Iterator[tuple[FetchedRow, ...]]:
    """Every row at ``SYNC_FLAG=0``, table by table, a page at a time in ROW_ID order."""
    for element in context.tables.values():
        after: int | None = None
        while True:
            rows = context.fetch(flag_query(element, after, context.page_size))
            if not rows:
                break
            yield tuple(FetchedRow(element, str(r[0]), r[1:]) for r in rows)
            if len(rows) < context.page_size:
                break
            after = rows[-1][0]


# -- changelog -----------------------------------------------------------------------------------

def _changelog(dialect_name: str) -> tuple[ColumnClause[int], ColumnClause[str], ColumnClause[int]]:
    def col(name: str, type_: Any) -> ColumnClause[Any]:
        return column(fold_identifier(name, dialect_name), type_)

    seq, name, row_id = col("SEQ", BigInteger()), col("TABLE_NAME", String()), \
        col("ROW_ID", BigInteger())
    table(fold_identifier(CHANGELOG, dialect_name), seq, name, row_id)
    return seq, name, row_id


def changelog_query(dialect_name: str, position: ChangelogPosition, limit: int) -> AnySelect:
    """Changes in an open gap or after ``position.high``, in SEQ order."""
    seq, name, row_id = _changelog(dialect_name)
    wanted = or_(*(seq.between(g.start, g.end) for g in position.gaps), seq > position.high)
    return select(seq, name, row_id).where(wanted).order_by(seq).limit(limit)


def _page_of(rows: tuple[FetchedRow, ...], position: ChangelogPosition) -> Page:
    """A page at ``position``, listing its ROW_IDs for ``unconfirmed``."""
    return Page(rows, {**position.to_progress(), "page": _row_ids(rows)})


def with_verdicts(progress: dict[str, Any], rejected: Iterable[FetchedRow]) -> dict[str, Any]:
    """A changelog page's ``progress`` (one listing its ROW_IDs) with those journaled as
    rejects, so that ``unconfirmed`` re-applies the verdict journaled, not a new one;
    any other unchanged."""
    if "page" not in progress:
        return progress
    return {**progress, "rejected": _row_ids(rejected)}


def _row_ids(rows: Iterable[FetchedRow]) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for row in rows:
        ids.setdefault(row.table.element, []).append(int(row.ident))
    return ids


def changelog_top(dialect_name: str) -> AnySelect:
    """The highest SEQ in EX_CHANGELOG (NULL when it is empty)."""
    seq, _, _ = _changelog(dialect_name)
    return select(func.max(seq))


def rows_query(element: ElementTable, row_ids: Sequence[int],
               *after: ColumnClause[Any]) -> AnySelect:
    """The current content of the rows with these ROW_IDs (then the columns ``after``)."""
    row_id = element.row_id
    assert row_id is not None
    return (select(*labelled([row_id, *field_columns(element), *after]))
            .where(row_id.in_(row_ids)).order_by(row_id))


@dataclass
class ChangelogStrategy:
    """Follow ``EX_CHANGELOG.SEQ`` and re-read each changed row from its table.

    SEQs are taken when a writer's transaction inserts, not when it commits, so a
    higher SEQ can be visible before a lower one. Such a *gap* is remembered with the
    time it was first seen and queried again on every page, while the rows after it
    are delivered at once. The low-water mark (``progress["seq"]``) never passes an
    open gap. A gap still unfilled ``gap_wait_seconds`` after it was first seen, by a
    query that started after that deadline, belonged to a rolled-back transaction and
    is dropped. Several changes of one row in a page are read once.

    *Write-back after a crash*: the position is journaled before ``commit`` marks the
    rows (1 taken, 2 rejected), so a crash in between would leave them unmarked with no
    pass ever reading them again. Each page's progress therefore also lists its ROW_IDs
    (``progress["page"]``, element → ids, at most a page) and those journaled as rejects
    (``progress["rejected"]``, added by the source once it has validated the page:
    ``with_verdicts``); at start-up ``unconfirmed`` re-reads them with their flag and the
    source marks each whose flag is not the one it was journaled for, leaving the others
    and their SYNC_TIME alone; so does the next read after a ``commit`` that failed (a
    lock, a dropped connection). Nothing is journaled again: the records and rejects are
    in the outbox already. A row that validates otherwise now (edited since; a time no
    longer in the future; another config) is not marked by its new verdict, which would
    mark a row taken whose record was never journaled: an edit has a later SEQ that a
    pass reads, and a row left at 0 is read by the closing sweep.

    *SEQ restarts*: purge EX_CHANGELOG with ``DELETE … WHERE SEQ <= seq``, never with
    TRUNCATE, which restarts MySQL/MariaDB's AUTO_INCREMENT at 1 (so does re-creating
    the table, and a restart of MySQL before 8.0 with the table empty). New changes
    would then get SEQs the position has passed and never be read. Each pass therefore
    starts by comparing the highest SEQ with ``high``: below it, the log restarted, and
    the pass reads it again from the start with a warning (rows already journaled are
    dropped by the outbox as duplicates). A restart is seen only while the new SEQs stay
    below ``high``, that is if the agent polls before as many changes are logged again.

    *Rows the log never saw*: a row written before the triggers were installed, or
    while they were dropped, has no SEQ and would wait at ``SYNC_FLAG=0`` for good. So
    does one whose transaction outlasted ``gap_wait_seconds``: its gap was given up, and
    the position passed its SEQ (an edit of a row already taken is at 0 again too: the
    triggers set an edited row's flag back to 0). After its first complete pass each
    instance (each agent start), and again after a complete pass once
    ``gap_wait_seconds`` have gone by since, therefore reads the rows still at 0, as
    ``flag`` does, and says that it found some. A row whose SEQ is logged meanwhile is
    read again by the next pass and dropped by the outbox.
    """

    context: ReadContext
    gap_wait_seconds: float
    writes_back: bool = True
    # The closing sweep reads the rows still at SYNC_FLAG=0: run ahead of the last
    # page's write-back, it would take that page's rows for ones the log never saw.
    # And only the last page's write-back is re-applied after a crash (``unconfirmed``).
    pipelined: bool = False
    rereads_unmarked: bool = False  # the sweep does, once per gap wait
    swept_at: float | None = field(default=None, init=False)  # the clock's timestamp

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        last = ChangelogPosition.from_state(state)
        position = self._restarted_or(last)
        dialect_name = self.context.engine.dialect.name
        while True:
            now = self.context.clock().timestamp()
            entries = self.context.fetch(changelog_query(dialect_name, position,
                                                         self.context.page_size))
            position = position.advance((int(e[0]) for e in entries), now)
            complete = len(entries) < self.context.page_size
            if complete:  # this query saw every open gap: old ones are rollbacks
                position = position.expire(now - self.gap_wait_seconds)
            if position != last:  # journal even a page of unrelated tables: it moved on
                yield _page_of(self._changed_rows(entries), position)
                last = position
            if complete:
                break
        if self.swept_at is None or now - self.swept_at >= self.gap_wait_seconds:
            yield from self._unlogged(last)
            self.swept_at = now

    def _unlogged(self, position: ChangelogPosition) -> Iterator[Page]:
        """The rows still at ``SYNC_FLAG=0`` once the log is read: ones it never saw.

        Said before each table's first such page, since a restart may come before the
        table's last one."""
        told: set[str] = set()
        for rows in unflagged_pages(self.context):
            name = rows[0].table.name
            if name not in told:
                told.add(name)
                warning = Localized(
                    f"{name}：有 SYNC_FLAG=0 的行在 EX_CHANGELOG 中没有待读的变更（写于"
                    "触发器安装之前或停用期间，或其事务长于 changelog_gap_wait_seconds，"
                    "或其标志回写曾失败），现按标志读取；若反复出现，请确认触发器已安装"
                    "（exgate frontdb init --triggers），并将该等待时长设为长于最长的事务",
                    f"{name}: rows at SYNC_FLAG=0 had no change waiting in EX_CHANGELOG "
                    "(written before the triggers were installed or while they were "
                    "dropped, or in a transaction longer than changelog_gap_wait_seconds, "
                    "or their flag's write-back failed): reading them by their flag; if "
                    "this recurs, check that the triggers are installed (exgate frontdb "
                    "init --triggers) and that the wait outlasts the longest transaction")
                log.warning(warning.en if self.context.lang == "en" else warning.zh)
            yield _page_of(rows, position)

    def _restarted_or(self, position: ChangelogPosition) -> ChangelogPosition:
        """A fresh start when EX_CHANGELOG's SEQ restarted below ``position``, else it."""
        top = self.context.fetch(changelog_top(self.context.engine.dialect.name))[0][0]
        if top is None or int(top) >= position.high:
            return position  # empty (purged), or still counting on from the position
        warning = Localized(
            f"EX_CHANGELOG 的 SEQ 已从头重新编号（最大 SEQ 为 {top}，小于已读到的 "
            f"{position.high}），多半是该表被 TRUNCATE 或重建；现从头重新读取变更日志，"
            "已入库的记录会按重复丢弃。清理 EX_CHANGELOG 请用 DELETE，不要用 TRUNCATE",
            f"EX_CHANGELOG's SEQ restarted (its highest SEQ, {top}, is below the position "
            f"read, {position.high}): the table was most likely truncated or re-created; "
            "reading the change log again from its start, records journaled already are "
            "dropped as duplicates. Purge EX_CHANGELOG with DELETE, not TRUNCATE")
        log.warning(warning.en if self.context.lang == "en" else warning.zh)
        return ChangelogPosition()

    def unconfirmed(self, state: Mapping[str, Any]) -> tuple[Unconfirmed, ...]:
        saved = strategy_state(state, "changelog")
        pending: Mapping[str, Sequence[int]] = saved.get("page", {})
        # None: saved by an exgate that did not keep the verdicts
        rejected: Mapping[str, Sequence[int]] | None = saved.get("rejected")
        rows: list[Unconfirmed] = []
        for code, row_ids in pending.items():
            element = self.context.tables.get(code)
            if element is None:
                continue  # the table is no longer read by this source
            refused = None if rejected is None else set(rejected.get(code, ()))
            rows.extend(
                Unconfirmed(FetchedRow(element, str(r[0]), r[1:-1]), r[-1],
                            None if refused is None else
                            REJECTED if int(r[0]) in refused else TAKEN)
                for r in self._current(element, row_ids, element.controls["SYNC_FLAG"]))
        return tuple(rows)

    def _changed_rows(self, entries: Sequence[Sequence[Any]]) -> tuple[FetchedRow, ...]:
        tables = by_name(self.context.tables)
        wanted: dict[str, dict[int, None]] = {}
        for _, name, row_id in entries:
            element = tables.get(str(name).upper())
            if element is not None:  # dict keys: each row once, however often it changed
                wanted.setdefault(element.element, {})[int(row_id)] = None
        rows: list[FetchedRow] = []
        for code, row_ids in wanted.items():
            rows.extend(self._rows(self.context.tables[code], list(row_ids)))
        return tuple(rows)

    def _rows(self, element: ElementTable, row_ids: Sequence[int]) -> Iterator[FetchedRow]:
        return (FetchedRow(element, str(r[0]), r[1:]) for r in self._current(element, row_ids))

    def _current(self, element: ElementTable, row_ids: Sequence[int],
                 *after: ColumnClause[Any]) -> Iterator[Sequence[Any]]:
        """``rows_query``'s rows, IN lists of at most 1000 IDs at a time."""
        for batch in in_batches(row_ids):
            yield from self.context.fetch(rows_query(element, batch, *after))

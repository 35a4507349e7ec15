"""The three ways of reading front-end tables: ``flag``, ``changelog`` and ``cursor``.

Each strategy yields pages of at most ``page_size`` rows together with its whole state
after the page. A page is fetched on its own short-lived connection, which is back
in the pool before the page is handed out: the agent journals it and marks the rows
in between, and SQLite or a long REPEATABLE READ snapshot would otherwise get in the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import BigInteger, Engine, Select, String, column, or_, select, table
from sqlalchemy.sql.elements import ColumnClause

from adapters.frontdb import CHANGELOG, fold_identifier
from adapters.sources.db_state import (
    STATE_VERSION,
    ChangelogPosition,
    after_key,
    decode_value,
    encode_value,
    strategy_state,
)
from adapters.sources.db_tables import ElementTable, by_name, in_batches, to_text
from schemas.times import BEIJING

__all__ = [
    "ChangelogStrategy",
    "CursorStrategy",
    "FetchedRow",
    "FlagStrategy",
    "Page",
    "ReadContext",
    "Strategy",
    "changelog_query",
    "cursor_query",
    "flag_query",
    "rows_query",
]


AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class FetchedRow:
    table: ElementTable
    ident: str                 # ROW_ID, or the cursor key of a mapped view
    values: Sequence[Any]      # field values in ``table.fields`` order, as the driver gave them


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[FetchedRow, ...]
    progress: dict[str, Any]


@dataclass(frozen=True)
class ReadContext:
    engine: Engine
    tables: Mapping[str, ElementTable]   # element code → table, in catalogue order
    page_size: int
    clock: Callable[[], datetime]        # aware; injectable so tests can move time

    def fetch(self, query: AnySelect) -> Sequence[Sequence[Any]]:
        with self.engine.connect() as conn:
            return conn.execute(query).all()


class Strategy(Protocol):
    @property
    def writes_back(self) -> bool:
        """Whether ``commit`` marks rows (SYNC_FLAG) at the source."""
        ...

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        ...


def _labelled(columns: Sequence[ColumnClause[Any]]) -> list[Any]:
    # Labels keep a column that plays two roles (GXSJ as field and cursor) twice in a row.
    return [c.label(f"c{i}") for i, c in enumerate(columns)]


def _fields(element: ElementTable) -> list[ColumnClause[Any]]:
    return [c for _, c in element.fields]


# -- flag ----------------------------------------------------------------------------------------

def flag_query(element: ElementTable, after_row_id: int | None, limit: int) -> AnySelect:
    """New rows (``SYNC_FLAG=0``) after ``after_row_id``, in ROW_ID order."""
    row_id = element.row_id
    assert row_id is not None
    query = (select(*_labelled([row_id, *_fields(element)]))
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

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        progress = {"v": STATE_VERSION, "strategy": "flag"}
        for element in self.context.tables.values():
            after: int | None = None
            while True:
                rows = self.context.fetch(flag_query(element, after, self.context.page_size))
                if not rows:
                    break
                yield Page(tuple(FetchedRow(element, str(r[0]), r[1:]) for r in rows), progress)
                if len(rows) < self.context.page_size:
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


def rows_query(element: ElementTable, row_ids: Sequence[int]) -> AnySelect:
    """The current content of the rows with these ROW_IDs."""
    row_id = element.row_id
    assert row_id is not None
    return (select(*_labelled([row_id, *_fields(element)])).where(row_id.in_(row_ids))
            .order_by(row_id))


@dataclass(frozen=True)
class ChangelogStrategy:
    """Follow ``EX_CHANGELOG.SEQ`` and re-read each changed row from its table.

    SEQs are taken when a writer's transaction inserts, not when it commits, so a
    higher SEQ can be visible before a lower one. Such a *gap* is remembered with the
    time it was first seen and queried again on every page, while the rows after it
    are delivered at once. The low-water mark (``progress["seq"]``) never passes an
    open gap. A gap still unfilled ``gap_wait_seconds`` after it was first seen, by a
    query that started after that deadline, belonged to a rolled-back transaction and
    is dropped. Several changes of one row in a page are read once.
    """

    context: ReadContext
    gap_wait_seconds: float
    writes_back: bool = True

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        position = last = ChangelogPosition.from_state(state)
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
                yield Page(self._changed_rows(entries), position.to_progress())
                last = position
            if complete:
                return

    def _changed_rows(self, entries: Sequence[Sequence[Any]]) -> tuple[FetchedRow, ...]:
        tables = by_name(self.context.tables)
        wanted: dict[str, dict[int, None]] = {}
        for _, name, row_id in entries:
            element = tables.get(str(name).upper())
            if element is not None:  # dict keys: each row once, however often it changed
                wanted.setdefault(element.element, {})[int(row_id)] = None
        rows: list[FetchedRow] = []
        for code, row_ids in wanted.items():
            element = self.context.tables[code]
            for batch in in_batches(list(row_ids)):
                rows.extend(FetchedRow(element, str(r[0]), r[1:])
                            for r in self.context.fetch(rows_query(element, batch)))
        return tuple(rows)


# -- cursor --------------------------------------------------------------------------------------

def cursor_query(element: ElementTable, upper: Any, last: Sequence[Any] | None,
                 limit: int) -> AnySelect:
    """Rows up to the frozen ``upper`` timestamp after ``last`` = (ts, key…), in that order."""
    assert element.timestamp is not None
    order = [element.timestamp, *element.key]
    query = (select(*_labelled([*order, *_fields(element)]))
             .where(element.timestamp <= upper).order_by(*order).limit(limit))
    return query if last is None else query.where(after_key(order, last))


@dataclass(frozen=True)
class CursorStrategy:
    """Incremental reads of a read-only table or view on (timestamp, key).

    *Ties*: rows are ordered by (timestamp, key) and pages continue strictly after the
    last (timestamp, key) read, so any number of rows sharing one timestamp page
    correctly, as long as the key is unique and NOT NULL.

    *Late commits*: a writer stamps a row at time t but commits it at c > t. The pass
    reads only rows with timestamp <= now - lag, fixed when the pass starts (Singer's
    "signpost", so rows arriving mid-pass wait for the next pass instead of moving the
    bound). The cursor passes t only once now - lag >= t, that is at now >= t + lag;
    if c - t < lag the row has committed by then and is read. So nothing is lost while
    every transaction (plus the clock skew between writer and agent) is shorter than
    ``lag_seconds``; a longer one can be missed, so set the lag above the longest.

    Nothing is written back (views are read-only); rejects live in the outbox.
    """

    context: ReadContext
    lag_seconds: float
    writes_back: bool = False

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        cursors = dict(strategy_state(state, "cursor").get("cursors", {}))
        upper = self._signpost()
        for element in self.context.tables.values():
            names = [c.name for c in (element.timestamp, *element.key) if c is not None]
            saved = cursors.get(element.element)
            last = [decode_value(v) for v in saved["values"]] \
                if saved and saved.get("columns") == names else None
            width = len(names)
            while True:
                rows = self.context.fetch(cursor_query(element, upper, last,
                                                       self.context.page_size))
                if not rows:
                    break
                last = list(rows[-1][:width])
                cursors[element.element] = {"columns": names,
                                            "values": [encode_value(v) for v in last]}
                yield Page(tuple(FetchedRow(element, "|".join(str(to_text(v)) for v in r[1:width]),
                                            r[width:]) for r in rows),
                           {"v": STATE_VERSION, "strategy": "cursor", "cursors": dict(cursors)})
                if len(rows) < self.context.page_size:
                    break

    def _signpost(self) -> Any:
        moment = self.context.clock().astimezone(BEIJING).replace(tzinfo=None)
        bound = moment - timedelta(seconds=self.lag_seconds)
        if self.context.engine.dialect.name == "sqlite":
            # SQLite compares text: SQLAlchemy's own storage form, which sorts correctly
            # against "yyyy-MM-dd HH:mm:ss" values written by other programs too.
            return bound.strftime("%Y-%m-%d %H:%M:%S.%f")
        return bound

"""The ``cursor`` strategy: incremental reads of a read-only table or view on (timestamp, key).

See ``CursorStrategy``; the shared page types are in ``adapters.sources.db_strategies``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnClause, ColumnElement, String, and_, func, inspect, or_, select
from sqlalchemy.engine import Inspector
from sqlalchemy.exc import SQLAlchemyError

from adapters.sources.db_state import (
    STATE_VERSION,
    after_key,
    bound_value,
    decode_value,
    encode_value,
    strategy_state,
)
from adapters.sources.db_strategies import (
    AnySelect,
    FetchedRow,
    Page,
    ReadContext,
    Unconfirmed,
    field_columns,
    labelled,
)
from adapters.sources.db_tables import ElementTable, to_text
from adapters.sources.sqlite_bytes import printable
from schemas.errors import ConfigError
from schemas.messages import Localized
from schemas.times import BEIJING

__all__ = ["CursorStrategy", "check_timestamp_types", "cursor_query", "unkeyed_query",
           "untimed_query"]

log = logging.getLogger("exgate.source.db")


# SQLite has no time type: a time is text, and text compares character by character,
# which orders times only in one notation (SQLAlchemy's, and the domain's own). A row in
# another one ("20261120100000", "2026-11-20T10:00:00") would sort out of place: past
# the bound for ever, or behind the cursor. Such rows are left out of the order and
# reported like NULL ones.
_ORDERED_TEXT = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"


def check_timestamp_types(context: ReadContext) -> None:
    """Refuse a cursor on a text column where the database has time types.

    Compared with the time bound, text orders by its characters, or (PostgreSQL) not at
    all: rows in another notation would be skipped silently. A column that cannot be
    looked up now (the database is away) is not checked; reading will report it.
    """
    engine = context.engine
    if engine.dialect.name == "sqlite":
        return  # no time type there: text in another notation is reported row by row
    try:
        inspector = inspect(engine)
        for element in context.tables.values():
            _refuse_text_timestamp(inspector, element)
    except SQLAlchemyError as exc:
        log.warning("cursor timestamp columns not checked: %s", type(exc).__name__)


def _refuse_text_timestamp(inspector: Inspector, element: ElementTable) -> None:
    timestamp = element.timestamp
    assert timestamp is not None
    columns = inspector.get_columns(element.table.name, schema=element.table.schema)
    found = next((c for c in columns if c["name"].lower() == timestamp.name.lower()), None)
    if found is not None and isinstance(found["type"], String):
        where = f"{element.name}.{timestamp.name}"
        raise ConfigError(
            f"cursor timestamp {where} is text ({found['type']}): its values would be "
            "compared as characters and rows in another notation skipped; give the cursor "
            "a DATE/TIMESTAMP column (a view can convert it), or use flag or changelog",
            zh=f"游标时间列 {where} 是文本类型（{found['type']}）：其值将按字符比较，"
               "其他写法的行会被跳过；请为游标指定 DATE/TIMESTAMP 类型的列（可用视图转换），"
               "或改用 flag 或 changelog 方式")


def _ordered(timestamp: ColumnClause[Any], dialect_name: str) -> ColumnElement[bool] | None:
    """The condition for a timestamp to have its place in the order; None: any non-NULL."""
    return timestamp.op("GLOB")(_ORDERED_TEXT) if dialect_name == "sqlite" else None


def cursor_query(element: ElementTable, upper: Any, last: Sequence[Any] | None,
                 limit: int, dialect_name: str = "") -> AnySelect:
    """Rows up to the frozen ``upper`` timestamp after ``last`` = (ts, key…), in that order."""
    assert element.timestamp is not None
    order = [element.timestamp, *element.key]
    query = (select(*labelled([*order, *field_columns(element)]))
             .where(element.timestamp <= bound_value(upper), _keyed(element))
             .order_by(*order).limit(limit))
    ordered = _ordered(element.timestamp, dialect_name)
    if ordered is not None:
        query = query.where(ordered)
    return query if last is None else query.where(after_key(order, last))


def untimed_query(element: ElementTable, last: Sequence[Any] | None, limit: int,
                  dialect_name: str = "") -> AnySelect:
    """Rows whose timestamp has no place in the order (NULL, or on SQLite text in another
    notation) after the key ``last``, in key order: the key, then the timestamp."""
    timestamp = element.timestamp
    assert timestamp is not None
    key = list(element.key)
    ordered = _ordered(timestamp, dialect_name)
    unordered = timestamp.is_(None) if ordered is None else or_(timestamp.is_(None), ~ordered)
    query = (select(*labelled([*key, timestamp])).where(unordered, _keyed(element))
             .order_by(*key).limit(limit))
    return query if last is None else query.where(after_key(key, last))


def unkeyed_query(element: ElementTable) -> AnySelect:
    """The number of rows with a NULL key column: no place in either order."""
    return (select(func.count()).select_from(element.table)
            .where(or_(*(column.is_(None) for column in element.key))))


def _keyed(element: ElementTable) -> ColumnElement[bool]:
    """A row's key has no NULL: a cursor position holding one could not be compared
    with, and would stop the source for good."""
    return and_(*(column.isnot(None) for column in element.key))


@dataclass
class _CursorState:
    """The cursor's whole state while a pass changes it; every page carries a copy."""

    cursors: dict[str, Any]    # element → {"columns": [ts, key…], "values": [...]}
    untimed: dict[str, Any]    # element → {"columns": [key…], "after": [...] | None, "due": t}
    unsaved: bool = False      # changed since the last page handed out

    def page(self, rows: tuple[FetchedRow, ...], untimed: bool = False) -> Page:
        self.unsaved = False
        return Page(rows, {"v": STATE_VERSION, "strategy": "cursor",
                           "cursors": dict(self.cursors), "untimed": dict(self.untimed)},
                    untimed)


@dataclass(frozen=True)
class CursorStrategy:
    """Incremental reads of a read-only table or view on (timestamp, key).

    *Ties*: rows are ordered by (timestamp, key) and pages continue strictly after the
    last (timestamp, key) read, so any number of rows sharing one timestamp page
    correctly, as long as the key is unique. A row with a NULL key column has no place
    in the order: it is left out, and counted in a warning at every NULL scan.

    *Late commits*: a writer stamps a row at time t but commits it at c > t. The pass
    reads only rows with timestamp <= now - lag, fixed when the pass starts (Singer's
    "signpost", so rows arriving mid-pass wait for the next pass instead of moving the
    bound). The cursor passes t only once now - lag >= t, that is at now >= t + lag;
    if c - t < lag the row has committed by then and is read. So nothing is lost while
    every transaction (plus the clock skew between writer and agent) is shorter than
    ``lag_seconds``; a longer one can be missed, so set the lag above the longest.

    *NULL timestamps*: such a row has no place in the order, so the cursor never reads
    it. A separate scan finds them by key alone (``untimed_query``), in pages after its
    own key cursor, and hands them out as rejects asking for the column to be filled.
    The scan runs when its last complete run is ``null_scan_seconds`` old (and at the
    first pass), and resumes where it stopped after a restart, so its state is one key
    and one time per element however large the table. Without an index on the
    timestamp (or on Oracle, which does not index NULLs) a scan reads the whole table,
    hence the slow default of an hour. A row still NULL at the next scan
    is handed out again: the outbox keeps one reject per origin and reason, so each
    row version (the key holds SJBBH) is journaled once. Once its timestamp is filled
    the cursor reads the row like any other, provided the time lies ahead of the
    cursor: the time of the fix does, an old one may not (the reject says so).

    Nothing is written back (views are read-only); rejects live in the outbox.
    """

    context: ReadContext
    lag_seconds: float
    null_scan_seconds: float
    writes_back: bool = False
    pipelined: bool = True  # read-only: no write-back to wait for
    rereads_unmarked: bool = False

    def unconfirmed(self, state: Mapping[str, Any]) -> tuple[Unconfirmed, ...]:
        return ()  # nothing is written back

    def pages(self, state: Mapping[str, Any]) -> Iterator[Page]:
        saved = strategy_state(state, "cursor")
        progress = _CursorState(dict(saved.get("cursors", {})), dict(saved.get("untimed", {})))
        upper = self._signpost()
        now = self.context.clock().timestamp()
        for element in self.context.tables.values():
            yield from self._timed(element, upper, progress)
            yield from self._untimed(element, now, progress)
        if progress.unsaved:  # a scan ended on an empty page: journal that it is done
            yield progress.page(())

    def _timed(self, element: ElementTable, upper: Any,
               progress: _CursorState) -> Iterator[Page]:
        names = [c.name for c in (element.timestamp, *element.key) if c is not None]
        saved = progress.cursors.get(element.element)
        last = [decode_value(v) for v in saved["values"]] \
            if saved and saved.get("columns") == names else None
        width = len(names)
        while True:
            rows = self.context.fetch(cursor_query(element, upper, last, self.context.page_size,
                                                   self._dialect))
            if not rows:
                return
            last = list(rows[-1][:width])
            progress.cursors[element.element] = {"columns": names,
                                                 "values": [encode_value(v) for v in last]}
            yield progress.page(tuple(FetchedRow(element, _ident(r[1:width]), r[width:])
                                      for r in rows))
            if len(rows) < self.context.page_size:
                return

    def _untimed(self, element: ElementTable, now: float,
                 progress: _CursorState) -> Iterator[Page]:
        names = [c.name for c in element.key]
        saved = progress.untimed.get(element.element)
        last: list[Any] | None = None
        if saved and saved.get("columns") == names:
            if saved["after"] is None and now < saved["due"]:
                return
            last = None if saved["after"] is None else [decode_value(v) for v in saved["after"]]
        if last is None:  # a scan starts
            self._tell_unkeyed(element)
        width = len(names)
        while True:
            rows = self.context.fetch(untimed_query(element, last, self.context.page_size,
                                                    self._dialect))
            done = len(rows) < self.context.page_size
            if rows:
                last = list(rows[-1][:width])
            progress.untimed[element.element] = {
                "columns": names, "due": now + self.null_scan_seconds,
                "after": None if done or last is None else [encode_value(v) for v in last]}
            if rows:
                yield progress.page(tuple(FetchedRow(element, _ident(r[:width]), r[width:])
                                          for r in rows), untimed=True)
            else:
                progress.unsaved = True
            if done:
                return

    def _tell_unkeyed(self, element: ElementTable) -> None:
        """Rows with a NULL key are never read: say so at every scan, for lack of a key
        to journal a reject under."""
        if element.row_id is not None and element.key == (element.row_id,):
            return  # the standard table's ROW_ID: an identity, never NULL
        unkeyed = int(self.context.fetch(unkeyed_query(element))[0][0])
        if unkeyed:
            key = ", ".join(column.name for column in element.key)
            warning = Localized(
                f"{element.name}：有 {unkeyed} 行的游标键（{key}）为空，无法按游标读取；"
                "请补全这些行的键值",
                f"{element.name}: {unkeyed} rows have a NULL cursor key ({key}) and cannot "
                "be read by the cursor; fill in their key")
            log.warning(warning.pick(self.context.lang))

    @property
    def _dialect(self) -> str:
        return str(self.context.engine.dialect.name)

    def _signpost(self) -> Any:
        moment = self.context.clock().astimezone(BEIJING).replace(tzinfo=None)
        # A whole second, bound as a DATE on Oracle (``bound_value``): a legacy DATE
        # column keeps its index. The lag grows by under a second.
        bound = (moment - timedelta(seconds=self.lag_seconds)).replace(microsecond=0)
        if self.context.engine.dialect.name == "sqlite":
            # SQLite compares text: SQLAlchemy's own storage form, which sorts correctly
            # against "yyyy-MM-dd HH:mm:ss" values written by other programs too.
            return bound.strftime("%Y-%m-%d %H:%M:%S.%f")
        return bound


def _ident(key: Sequence[Any]) -> str:
    """A cursor row's locator part: its key values as printable text, ``|``-joined."""
    return printable("|".join(str(to_text(v)) for v in key))

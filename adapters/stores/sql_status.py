"""The sync-status queries: a handful of cheap reads of the control tables.

Nothing here touches the element tables (``ST_<CODE>``), which hold millions of rows:
coverage comes from ``ST_COVERAGE`` (kept in each batch's transaction), counts and
throughput from ``ST_BATCH`` (one row per batch, indexed by node and by time) and the
node's state from its recent heartbeats (indexed by time), ordered by when the agent
sent them (``HeartbeatRow.contact_at``): beats held through a store outage are stored
together, in any order. A silent node's last heartbeat is looked up on its own, through
the (node, time) index. The list of failed
batches is capped; their counts, per sender and for no sender, are not.

Beijing "today" starts at midnight and "this week" on Monday at midnight.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    case,
    distinct,
    func,
    or_,
    select,
)

from adapters.stores.base import NO_BATCH_ID
from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from adapters.stores.status_rows import (
    CoverageRow,
    FailedCount,
    FailedRow,
    HeartbeatRow,
    NodeRow,
    NodeTotalsRow,
    RecentBatch,
    StatusRows,
)

__all__ = ["MAX_FAILED_LISTED", "check_store", "day_start", "read_status_rows", "week_start"]

MAX_FAILED_LISTED = 500   # the list only; counts are always complete


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime) -> datetime:
    return day_start(now) - timedelta(days=now.weekday())


def read_status_rows(store: SqlStore, *, heartbeat_window_s: float, throughput_hours: int,
                     now: datetime | None = None) -> StatusRows:
    """Everything the status model needs, read in one connection."""
    now = now or now_beijing()
    since_hour = now.replace(minute=0, second=0, microsecond=0) \
        - timedelta(hours=throughput_hours - 1)
    with store.reading("read the sync status") as conn:
        reader = _Reader(store, conn)
        nodes = reader.nodes()
        beats = reader.heartbeats(now - timedelta(seconds=heartbeat_window_s))
        beats = reader.last_beats({n.node_id for n in nodes} - {b.node_id for b in beats}) \
            + beats
        return StatusRows(
            now=now, nodes=nodes, heartbeats=beats, coverage=reader.coverage(),
            totals=reader.totals(day_start(now), week_start(now)), failed=reader.failed(),
            failed_counts=reader.failed_counts(),
            recent_batches=reader.recent_batches(since_hour),
            recent_failures=reader.recent_failures(since_hour))


def check_store(store: SqlStore) -> None:
    """One indexed row of ``ST_NODE``: the store answers and holds exgate's tables.

    What ``/healthz`` asks on every probe, so nothing heavier. ``ExgateError`` when not.
    """
    n = store.schema.node
    with store.reading("reach the store") as conn:
        conn.execute(select(n.c.NODE_ID).limit(1)).first()


class _Reader:
    def __init__(self, store: SqlStore, conn: Connection) -> None:
        self.schema, self.conn = store.schema, conn

    def nodes(self) -> list[NodeRow]:
        n = self.schema.node
        query = select(n.c.NODE_ID, n.c.DIVISION, n.c.STATUS, n.c.LAST_SEEN_AT)
        return [NodeRow(*row) for row in self.conn.execute(query.order_by(n.c.NODE_ID))]

    def heartbeats(self, since: datetime) -> list[HeartbeatRow]:
        h = self.schema.heartbeat
        query = _beat_columns(h).where(h.c["RECEIVED_AT"] >= since) \
            .order_by(_contact_at(h), h.c.RECEIVED_AT, h.c.HEARTBEAT_ID)
        return [_beat(*row) for row in self.conn.execute(query)]

    def last_beats(self, node_ids: set[str]) -> list[HeartbeatRow]:
        """Each silent node's latest beat by contact time, and its latest stored one.

        Both, when they differ: the first says when the node spoke, the second when the
        gateway last heard it (what its ``LAST_SEEN_AT`` then holds, too).
        """
        found: list[HeartbeatRow] = []
        for node_id in sorted(node_ids):
            found.extend(self._last_beats_of(node_id))
        return sorted(found, key=lambda b: (b.contact_at, b.received_at))

    def _last_beats_of(self, node_id: str) -> list[HeartbeatRow]:
        h = self.schema.heartbeat
        mine = _beat_columns(h).where(h.c["NODE_ID"] == node_id)
        stored = self.conn.execute(
            mine.order_by(h.c.RECEIVED_AT.desc(), h.c.HEARTBEAT_ID.desc()).limit(1)).first()
        if stored is None:
            return []
        last_stored = _beat(*stored)
        # A beat's contact time is at most its RECEIVED_AT: one spoken later than the
        # last stored beat's was stored since, so the (node, time) index bounds the sort.
        spoke = self.conn.execute(
            mine.where(h.c["RECEIVED_AT"] >= last_stored.contact_at)
            .order_by(_contact_at(h).desc(), h.c.HEARTBEAT_ID.desc()).limit(1)).first()
        last_spoken = last_stored if spoke is None else _beat(*spoke)
        return [last_stored] if last_spoken == last_stored else [last_spoken, last_stored]

    def coverage(self) -> list[CoverageRow]:
        c = self.schema.coverage
        query = select(c.c.NODE_ID, c.c.ELEMENT, c.c.FIRST_AT, c.c.LAST_AT, c.c.RECORDS)
        return [CoverageRow(r[0], r[1], r[2], r[3], int(r[4])) for r in self.conn.execute(query)]

    def totals(self, today: datetime, week: datetime) -> list[NodeTotalsRow]:
        b, f = self.schema.batch, self.schema.failed
        merged: dict[str, dict[str, Any]] = {}
        everything = select(b.c.NODE_ID, func.count(), func.max(b.c.STORED_AT)) \
            .group_by(b.c.NODE_ID)
        for node_id, batches, last in self.conn.execute(everything):
            merged.setdefault(node_id, {}).update(batches=int(batches), last_stored_at=last)
        today_only = case((b.c["STORED_AT"] >= today, b.c.STORED), else_=0)
        recent = (select(b.c.NODE_ID, func.sum(today_only), func.sum(b.c.STORED))
                  .where(b.c["STORED_AT"] >= week).group_by(b.c.NODE_ID))
        for node_id, day, whole_week in self.conn.execute(recent):
            merged.setdefault(node_id, {}).update(records_today=int(day or 0),
                                                  records_week=int(whole_week or 0))
        failed = (select(f.c.NODE_ID, _failed_batches(f), func.max(f.c.RECEIVED_AT))
                  .where(f.c.REPLAYED_AT.is_(None), f.c.NODE_ID.is_not(None))
                  .group_by(f.c.NODE_ID))
        for node_id, count, last in self.conn.execute(failed):
            merged.setdefault(node_id, {}).update(failed=int(count), last_failed_at=last)
        c = self.schema.conflict
        conflicts = (select(c.c.NODE_ID, func.count()).where(c.c.RESOLVED_AT.is_(None))
                     .group_by(c.c.NODE_ID))
        for node_id, count in self.conn.execute(conflicts):
            merged.setdefault(node_id, {}).update(conflicts=int(count))
        return [NodeTotalsRow(node_id, **values) for node_id, values in sorted(merged.items())]

    def failed(self) -> list[FailedRow]:
        f = self.schema.failed
        query = (select(f.c.BATCH_ID, f.c.NODE_ID, f.c.REASON, f.c.DETAIL, f.c.RECEIVED_AT)
                 .where(f.c.REPLAYED_AT.is_(None))
                 .order_by(f.c.RECEIVED_AT.desc(), f.c.FAILED_ID.desc())
                 .limit(MAX_FAILED_LISTED))
        return [FailedRow(*row) for row in self.conn.execute(query)]

    def failed_counts(self) -> list[FailedCount]:
        f = self.schema.failed
        query = (select(f.c.NODE_ID, func.count(), _failed_batches(f))
                 .where(f.c.REPLAYED_AT.is_(None)).group_by(f.c.NODE_ID))
        return [FailedCount(node_id, int(refusals), int(batches))
                for node_id, refusals, batches in self.conn.execute(query)]

    def recent_batches(self, since: datetime) -> list[RecentBatch]:
        b = self.schema.batch
        query = select(b.c.NODE_ID, b.c.STORED_AT, b.c.STORED).where(b.c["STORED_AT"] >= since)
        return [RecentBatch(*row) for row in self.conn.execute(query)]

    def recent_failures(self, since: datetime) -> list[datetime]:
        f = self.schema.failed
        query = select(f.c.RECEIVED_AT).where(f.c["RECEIVED_AT"] >= since)
        return [row[0] for row in self.conn.execute(query)]


def _failed_batches(f: Table) -> ColumnElement[Any]:
    """Failed batches among a group of refusals.

    A batch refused on every resend is one failing batch, not one per refusal. Without a
    batch ID ("-") each row is its own message (rows differ in body): one each.
    """
    real_id = case((f.c["BATCH_ID"] != NO_BATCH_ID, f.c.BATCH_ID))
    no_id = case((f.c["BATCH_ID"] == NO_BATCH_ID, 1), else_=0)
    return func.count(distinct(real_id)) + func.sum(no_id)


def _beat_columns(h: Table) -> Select[Any]:
    return select(h.c.NODE_ID, h.c.RECEIVED_AT, h.c.SOURCE_LAG_S, h.c.OUTBOX, h.c.LAST_ERROR,
                  h.c.VERSION, h.c.SENT_AT)


def _contact_at(h: Table) -> ColumnElement[Any]:
    """``HeartbeatRow.contact_at`` in SQL: ``SENT_AT``, at most ``RECEIVED_AT``."""
    return case((or_(h.c["SENT_AT"].is_(None), h.c["SENT_AT"] > h.c["RECEIVED_AT"]),
                 h.c.RECEIVED_AT), else_=h.c.SENT_AT)


def _beat(node_id: str, received_at: datetime, lag: float | None, outbox: str | None,
          last_error: str | None, version: str | None, sent_at: datetime | None
          ) -> HeartbeatRow:
    return HeartbeatRow(node_id, received_at, lag, _outbox(outbox), last_error, version,
                        sent_at)


def _outbox(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

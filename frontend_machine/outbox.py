"""The outbox: a durable SQLite journal between the sources and the publisher.

Flow of one record: a source chunk is journaled (records, rejects and the source's
progress in ONE transaction, with the batches its records fill when the agent asks:
``seal_full``) → ``seal_batches`` groups the records still unbatched into batches in
journal order once they have lingered → the publisher takes ``next_pending_batches``,
publishes, and calls ``mark_sent`` on the broker confirm → each level's receipt calls
``mark_stored`` or ``mark_failed``. A batch is ``stored`` once every level above the
node has stored it, ``failed`` while a level's latest receipt refuses it (a level that
stored it never goes back to refusing it); ``make_room`` drops a stored batch's
payloads and, after its retention, forgets it.

Nothing is ever dropped: a full disk raises ``RetriableError`` with the transaction
rolled back, so the source is not committed and hands the same records out again.

The agent creates its outbox; the operators' commands open it with ``create=False``, so
a mistyped path is ``OutboxNotFound`` instead of a new, empty journal.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.sources.base import Chunk
from frontend_machine.outbox_backlog import OldestPending, depth
from frontend_machine.outbox_batches import (
    BatchInfo,
    BatchLimits,
    BatchState,
    Depth,
    plan_batches,
    seat_full_batches,
)
from frontend_machine.outbox_budget import (
    disk_bytes,
    drop_stored_payloads,
    forget_oldest_stored,
    forget_replayed_rejects,
    forget_stored,
)
from frontend_machine.outbox_connection import (
    OutboxBroken,
    OutboxNotFound,
    connect,
    mapped,
    transaction,
)
from frontend_machine.outbox_journal import (
    SIZE,
    in_batch,
    insert_file_issues,
    insert_records,
    insert_reject,
    record_row,
    settle_rejects,
)
from frontend_machine.outbox_receipts import receipts_of, record_receipt
from schemas.errors import FatalError
from schemas.times import BEIJING

__all__ = [
    "ALL_LEVELS", "BatchInfo", "BatchLimits", "BatchState", "Depth", "JournalResult", "Outbox",
    "OutboxBroken", "OutboxNotFound", "RoomMade",
]

ALL_LEVELS = ("province", "city", "county")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class JournalResult:
    """What one ``journal`` call did with a chunk."""

    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0  # also counted in ``added``: kept for a person to resolve
    # element → {"added": n, "duplicates": n, "conflicts": n}, for per-element reports
    by_element: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    sealed: tuple[str, ...] = ()  # batches the chunk filled, sealed with it (``seal_full``)


@dataclass(frozen=True, slots=True)
class RoomMade:
    """Stored batches ``make_room`` forgot: after their retention, and before it; and
    replayed rejects, after their retention or (``rejects_early``) before it."""

    forgotten: int = 0
    forgotten_early: int = 0
    rejects_forgotten: int = 0
    rejects_early: int = 0


class Outbox:
    """One SQLite journal file (plus its WAL); open it once per process.

    ``levels`` are the levels that must receipt a batch before it counts as stored:
    all three for a county node, province and city for a city node.
    ``budget_bytes`` (None: unlimited) is what ``over_budget`` compares against.
    ``clock`` is the wall time stamped on rows; ``monotonic`` only measures waits.
    ``create=False`` opens an existing file only (``OutboxNotFound`` otherwise).
    """

    def __init__(self, path: Path, *, levels: Sequence[str] = ALL_LEVELS,
                 budget_bytes: int | None = None, clock: Clock = time.time,
                 monotonic: Clock = time.monotonic, create: bool = True) -> None:
        self.path = Path(path)
        self.levels = tuple(levels)
        self.budget_bytes = budget_bytes
        self._clock = clock
        self._oldest = OldestPending(clock, monotonic)
        self._db = connect(self.path, create)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- journaling ----------------------------------------------------------------------

    def journal(self, source: str, chunk: Chunk, *,
                seal_full: BatchLimits | None = None) -> JournalResult:
        """Journal a chunk's valid records, its rejects and its progress atomically.

        With ``seal_full``, the batches the records fill are sealed in the same
        transaction, exactly as ``seal_batches`` with an infinite linger would seal them
        right after: each record goes straight into its batch rather than being written
        a second time to join it.
        """
        now = self._clock()
        rejected = 0
        rows: list[tuple[Any, ...]] = []
        sealed: list[str] = []
        with self._transaction("journaling a chunk: none of it was journaled, and the source"
                               " hands it out again"):
            for origin, check in chunk.checks:
                if check.record is None:
                    insert_reject(self._db, source, origin, check.element, check.issues, now)
                    rejected += 1
                    continue
                rows.append(record_row(source, origin, check.record, now))
            if rows and seal_full is not None:
                sealed = self._seat_full_batches(rows, seal_full, now)
            counts = insert_records(self._db, rows) if rows else {}
            if rows:
                settle_rejects(self._db, source, rows, now)
                added = sum(c["added"] for c in counts.values())
                if sealed and seal_full is not None and added < len(rows):
                    sealed = self._reseat(sealed, seal_full, now)
            if chunk.file_issues:
                insert_file_issues(self._db, source, chunk.file_issues, now)
            if chunk.progress:
                self._save_state(source, dict(chunk.progress), now)
        def total(kind: str) -> int:
            return sum(c[kind] for c in counts.values())

        return JournalResult(total("added"), total("duplicates"), rejected, total("conflicts"),
                             counts, tuple(sealed))

    def _seat_full_batches(self, rows: list[tuple[Any, ...]], limits: BatchLimits,
                           now: float) -> list[str]:
        """Seal the full batches that the unbatched records and ``rows`` (not yet
        inserted) make: the batches' rows, the unbatched records joining one, and
        ``rows`` rewritten in place to go into theirs."""
        tail = self._unbatched()
        sealed = []
        for seats in seat_full_batches(tail, [row[SIZE] for row in rows], limits):
            batch_id = self._new_batch(now, seats.count, seats.bytes)
            if seats.tail is not None:
                first, last = seats.tail
                self._join_batch(batch_id, tail[first][0], tail[last][0])
            if seats.new is not None:
                first, last = seats.new
                rows[first:last + 1] = [in_batch(row, batch_id) for row in rows[first:last + 1]]
            sealed.append(batch_id)
        return sealed

    def _reseat(self, batch_ids: Sequence[str], limits: BatchLimits, now: float) -> list[str]:
        """The unique identity refused some rows as duplicates, so the batches seated
        for them are short: cut them again from the records that are there, as
        ``seal_batches`` would. Rare (a source handing out records again), so plain."""
        marks = ", ".join("?" * len(batch_ids))
        self._db.execute(f"UPDATE records SET batch_id = NULL WHERE batch_id IN ({marks})",
                         batch_ids)
        self._db.execute(f"DELETE FROM batches WHERE batch_id IN ({marks})", batch_ids)
        return self._seal_unbatched(limits.max_records, limits.max_bytes, now, math.inf)

    def _save_state(self, source: str, progress: dict[str, Any], now: float) -> None:
        self._db.execute(
            "INSERT INTO source_state (source, progress, version, updated_at)"
            " VALUES (?, ?, 1, ?) ON CONFLICT (source) DO UPDATE SET"
            " progress = excluded.progress, version = version + 1,"
            " updated_at = excluded.updated_at",
            (source, json.dumps(progress, ensure_ascii=False, sort_keys=True), now))

    def source_state(self, source: str) -> dict[str, Any]:
        """The last journaled progress of ``source``; empty before its first chunk."""
        row = self._db.execute(
            "SELECT progress FROM source_state WHERE source = ?", (source,)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    # -- batching ------------------------------------------------------------------------

    def seal_batches(self, max_records: int, max_bytes: int,
                     linger_seconds: float) -> list[str]:
        """Group unbatched records into pending batches, in journal order.

        Full batches (``max_records`` or ``max_bytes``) are sealed at once; the trailing
        partial batch only once its oldest record has waited ``linger_seconds`` (0: at
        once, whatever the clock says; ``math.inf``: never), see ``plan_batches``.
        """
        with self._transaction("sealing batches: the records stay journaled and are sealed"
                               " on a later try"):
            return self._seal_unbatched(max_records, max_bytes, self._clock(), linger_seconds)

    def _seal_unbatched(self, max_records: int, max_bytes: int, now: float,
                        linger_seconds: float) -> list[str]:
        sealed = []
        for group in plan_batches(self._unbatched(), max_records, max_bytes, now=now,
                                  linger=linger_seconds):
            batch_id = self._new_batch(now, group.count, group.bytes)
            self._join_batch(batch_id, group.first_seq, group.last_seq)
            sealed.append(batch_id)
        return sealed

    def linger_left(self, linger_seconds: float) -> float | None:
        """Seconds until the oldest unbatched record has waited ``linger_seconds`` (0 or
        less: the trailing batch is due now); None when every record is in a batch."""
        row = self._db.execute("SELECT journaled_at FROM records WHERE batch_id IS NULL"
                               " ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else row[0] + linger_seconds - self._clock()

    def _unbatched(self) -> list[tuple[int, int, float]]:
        """``(seq, size, journaled_at)`` of the records in no batch yet, in order."""
        return self._db.execute("SELECT seq, size, journaled_at FROM records"
                                " WHERE batch_id IS NULL ORDER BY seq").fetchall()

    def _new_batch(self, now: float, count: int, size: int) -> str:
        batch_id = _new_batch_id(now)
        self._db.execute(
            "INSERT INTO batches (batch_id, state, created_at, record_count, bytes)"
            " VALUES (?, 'pending', ?, ?, ?)", (batch_id, now, count, size))
        return batch_id

    def _join_batch(self, batch_id: str, first_seq: int, last_seq: int) -> None:
        self._db.execute("UPDATE records SET batch_id = ? WHERE seq BETWEEN ? AND ?"
                         " AND batch_id IS NULL", (batch_id, first_seq, last_seq))

    def next_pending_batches(self, limit: int) -> list[BatchInfo]:
        rows = self._db.execute(
            f"SELECT {BatchInfo.COLUMNS} FROM batches WHERE state = 'pending'"
            " ORDER BY created_at, rowid LIMIT ?", (limit,)).fetchall()
        return [BatchInfo.from_row(row) for row in rows]

    def batch(self, batch_id: str) -> BatchInfo | None:
        row = self._db.execute(f"SELECT {BatchInfo.COLUMNS} FROM batches WHERE batch_id = ?",
                               (batch_id,)).fetchone()
        return BatchInfo.from_row(row) if row else None

    def batch_payloads(self, batch_id: str) -> list[str]:
        """The batch's records in journal order, each as ``record_xml`` wrote it."""
        rows = self._db.execute(
            "SELECT payload FROM records WHERE batch_id = ? ORDER BY seq", (batch_id,)).fetchall()
        if any(payload is None for payload, in rows):
            raise FatalError(f"batch {batch_id} cannot be rebuilt: its records gave up their "
                             "XML once every level had stored it",
                             zh=f"批次 {batch_id} 无法重建：各级均已入库后，其记录的 XML 已清除")
        return [payload for payload, in rows]

    # -- publisher state transitions -------------------------------------------------------

    def mark_sent(self, batch_id: str) -> None:
        """The broker confirmed the batch: pending → sent."""
        with self._transaction("noting a broker confirm: the batch stays pending and is sent"
                               " again"):
            self._db.execute(
                "UPDATE batches SET state = 'sent', sent_at = ?, attempts = attempts + 1"
                " WHERE batch_id = ? AND state = 'pending'", (self._clock(), batch_id))

    def mark_unsent(self, batch_id: str, error: str) -> None:
        """A publish attempt failed (nack, connection lost): stay pending, note why."""
        with self._transaction("noting a failed publish: the batch stays pending"):
            self._db.execute(
                "UPDATE batches SET state = 'pending', attempts = attempts + 1,"
                " last_error = ? WHERE batch_id = ? AND state IN ('pending', 'sent')",
                (error, batch_id))

    def mark_stored(self, batch_id: str, level: str, stored_count: int = 0) -> None:
        """A level's receipt said ``stored``; the batch is stored once all levels did."""
        self.record_receipt(batch_id, level, "stored", stored_count=stored_count)

    def mark_failed(self, batch_id: str, reason: str, level: str | None = None,
                    failed_count: int = 0) -> None:
        """A level refused the batch (or, with no level, the publisher gave up on it)."""
        if level is not None:
            self.record_receipt(batch_id, level, "failed", failed_count=failed_count,
                                reasons=[reason])
            return
        with self._transaction("marking a batch failed: it stays as it was"):
            self._db.execute(
                "UPDATE batches SET state = 'failed', finished_at = ?, last_error = ?"
                " WHERE batch_id = ?", (self._clock(), reason, batch_id))

    def record_receipt(self, batch_id: str, level: str, status: str, *, stored_count: int = 0,
                       failed_count: int = 0, reasons: Sequence[str] = ()) -> BatchState:
        """Store one level's receipt and derive the batch's state (``record_receipt``)."""
        now = self._clock()
        with self._transaction("recording a receipt: it stays on the broker"):
            return record_receipt(self._db, self.levels, batch_id, level, status, now,
                                  stored_count=stored_count, failed_count=failed_count,
                                  reasons=reasons)

    def payloads_gone(self, batch_id: str) -> bool:
        """Whether records of the batch lost their payload: it can never be sent again."""
        return self._db.execute(
            "SELECT 1 FROM records WHERE batch_id = ? AND payload IS NULL LIMIT 1",
            (batch_id,)).fetchone() is not None

    def requeue(self, batch_ids: Sequence[str]) -> int:
        """Operator replay: failed or sent → pending, forgetting the failed receipts. A
        batch whose payloads are gone is skipped: it would only fail to build again."""
        with self._transaction("requeuing failed batches: none was requeued"):
            count = 0
            for batch_id in batch_ids:
                if self.payloads_gone(batch_id):
                    continue
                cursor = self._db.execute(
                    "UPDATE batches SET state = 'pending', finished_at = NULL"
                    " WHERE batch_id = ? AND state IN ('failed', 'sent')", (batch_id,))
                self._db.execute("DELETE FROM receipts WHERE batch_id = ? AND status = 'failed'",
                                 (batch_id,))
                count += cursor.rowcount
        return count

    # -- monitoring and disk budget ----------------------------------------------------------

    def depth(self) -> Depth:
        """Backlog for heartbeats: pending/sent/failed batches and unbatched records."""
        return depth(self._db)

    def oldest_pending_age(self) -> float | None:
        """Seconds the oldest record not yet stored at every level has waited; None when
        nothing waits (``OldestPending``: a clock stepped back hides no wait)."""
        return self._oldest.age(self._db)

    def disk_bytes(self) -> int:
        """Bytes the journal holds: its pages in use plus the WAL file (``disk_bytes``)."""
        return disk_bytes(self._db, self.path)

    def over_budget(self) -> bool:
        return self.budget_bytes is not None and self.disk_bytes() > self.budget_bytes

    def make_room(self, keep_stored_seconds: float) -> RoomMade:
        """Drop the payloads of stored batches, forget batches every level stored over
        ``keep_stored_seconds`` ago with their records and receipts, then fold the WAL
        back into the file. Still over budget with nothing on its way to the levels (no
        unbatched record, no pending or sent batch, so no receipt can free room), forget
        stored batches early, oldest first, then the replayed rejects.

        A stored batch keeps only the identity of its records, to drop a late re-read as
        a duplicate; the levels' stores drop it too, so forgetting it early loses nothing,
        where keeping it would pause the agent for good once the identities alone fill
        the budget. Pending, sent and failed batches and unbatched records are never
        touched. Short transactions of a few batches each, so the WAL stays small on a
        disk that is nearly full: done as a receipt arrives, the rewrite of a whole batch
        would make exactly the receipt that frees room fail there.
        """
        cutoff = self._clock() - keep_stored_seconds
        drop_stored_payloads(self._db, self._transaction)
        pruned = forget_stored(self._db, self._transaction, cutoff)
        rejects = forget_replayed_rejects(self._db, self._transaction, cutoff)
        self._fold_wal()
        early = 0
        while self.over_budget() and self.nothing_in_flight():
            forgotten = forget_oldest_stored(self._db, self._transaction)
            if not forgotten:
                break
            early += forgotten
            self._fold_wal()
        rejects_early = 0
        if self.over_budget() and self.nothing_in_flight():
            rejects_early = forget_replayed_rejects(self._db, self._transaction, math.inf)
            self._fold_wal()
        return RoomMade(pruned, early, rejects, rejects_early)

    def nothing_in_flight(self) -> bool:
        """No unbatched record and no pending or sent batch: no receipt to come can free
        room."""
        depth = self.depth()
        return not (depth.pending_batches or depth.sent_batches or depth.unbatched_records)

    def _fold_wal(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise mapped(exc, self.path, "folding the WAL into the outbox") from exc

    def rejects(self, source: str | None = None) -> list[dict[str, Any]]:
        """Journaled rejects, oldest first, for reports and replay."""
        rows = self._db.execute(
            "SELECT id, source, origin, line, element, issues, rejected_at FROM rejects"
            " WHERE ? IS NULL OR source = ? ORDER BY id", (source, source)).fetchall()
        keys = ("id", "source", "origin", "line", "element", "issues", "rejected_at")
        return [dict(zip(keys, (*row[:5], json.loads(row[5]), row[6]), strict=True))
                for row in rows]

    def record_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    # -- operator replay (frontend_machine/replay.py) -----------------------------------------

    def batches(self, states: Sequence[str] = (), limit: int = 0) -> list[BatchInfo]:
        """Batches in ``states`` (all when empty), the newest ``limit`` (0: all), oldest first."""
        marks = ",".join("?" * len(states))
        where = f" WHERE state IN ({marks})" if states else ""
        rows = self._db.execute(
            f"SELECT {BatchInfo.COLUMNS} FROM batches{where} ORDER BY created_at DESC, rowid"
            f" DESC LIMIT ?", (*states, limit if limit > 0 else -1)).fetchall()
        return [BatchInfo.from_row(row) for row in reversed(rows)]

    def receipts_of(self, batch_id: str) -> list[dict[str, Any]]:
        """Each level's latest receipt of a batch (``receipts_of``)."""
        return receipts_of(self._db, batch_id)

    def mark_rejects_replayed(self, source: str, origins: Sequence[str]) -> int:
        """Note that the rejects of these origins were corrected and sent back in."""
        with self._transaction("noting replayed rejects: none was noted"):
            count = 0
            for origin in origins:
                count += self._db.execute(
                    "UPDATE rejects SET replayed_at = ? WHERE source = ? AND origin = ?"
                    " AND replayed_at IS NULL", (self._clock(), source, origin)).rowcount
        return count

    def open_rejects(self) -> int:
        """Rejects not yet corrected and replayed."""
        return int(self._db.execute(
            "SELECT count(*) FROM rejects WHERE replayed_at IS NULL").fetchone()[0])

    # -- plumbing --------------------------------------------------------------------------

    def _transaction(self, doing: str) -> AbstractContextManager[None]:
        """One transaction (``transaction``); ``doing`` names the operation and what a
        failure leaves behind, for the message."""
        return transaction(self._db, self.path, doing)


def _new_batch_id(now: float) -> str:
    """Sortable and unique: creation time then 12 random hex digits (fits BatchId)."""
    stamp = datetime.fromtimestamp(now, BEIJING).strftime("%Y%m%d%H%M%S")
    return f"B{stamp}-{uuid.uuid4().hex[:12]}"

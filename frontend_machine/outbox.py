"""The outbox: a durable SQLite journal between the sources and the publisher.

Flow of one record: a source chunk is journaled (records, rejects and the source's
progress in ONE transaction) → ``seal_batches`` groups unbatched records into batches in
journal order → the publisher takes ``next_pending_batches``, publishes, and calls
``mark_sent`` on the broker confirm → each level's receipt calls ``mark_stored`` or
``mark_failed``. A batch is ``stored`` once every level above the node has stored it;
``make_room`` then drops its payloads and, after its retention, forgets it.

Nothing is ever dropped: a full disk raises ``RetriableError`` with the transaction
rolled back, so the source is not committed and hands the same records out again.

The agent creates its outbox; the operators' commands open it with ``create=False``, so
a mistyped path is ``OutboxNotFound`` instead of a new, empty journal.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adapters.sources.base import Chunk, Origin
from frontend_machine.outbox_batches import BatchInfo, BatchState, Depth, plan_batches
from frontend_machine.outbox_schema import configure, migrate
from schemas.errors import FatalError, FileNotThere, RetriableError
from schemas.issues import Issue
from schemas.records import Record
from schemas.times import BEIJING
from schemas.writer import record_xml

__all__ = [
    "ALL_LEVELS", "BatchInfo", "BatchState", "Depth", "JournalResult", "Outbox", "OutboxBroken",
    "OutboxNotFound",
]

ALL_LEVELS = ("province", "city", "county")
_PRUNE_BATCHES = 20  # per transaction: each batch holds up to batch_max_records rows
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
        self._monotonic = monotonic
        self._future_oldest: tuple[float, float] | None = None  # (stamp, first seen)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        elif not self.path.is_file():
            raise OutboxNotFound(self.path)
        else:
            # mode=rw: a file removed after the check above is an error, not a new journal.
            self._db = sqlite3.connect(f"file:{quote(str(self.path.absolute()))}?mode=rw",
                                       uri=True, isolation_level=None, timeout=30.0)
        try:
            configure(self._db)
            migrate(self._db)
        except (sqlite3.Error, RuntimeError) as exc:
            self._db.close()
            raise OutboxBroken(f"cannot open outbox {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- journaling ----------------------------------------------------------------------

    def journal(self, source: str, chunk: Chunk) -> JournalResult:
        """Journal a chunk's valid records, its rejects and its progress atomically."""
        now = self._clock()
        rejected = 0
        rows: list[tuple[Any, ...]] = []
        with self._transaction("journaling a chunk: none of it was journaled, and the source"
                               " hands it out again"):
            for origin, check in chunk.checks:
                if check.record is None:
                    self._insert_reject(source, origin, check.element, check.issues, now)
                    rejected += 1
                    continue
                rows.append(_record_row(source, origin, check.record, now))
            counts = self._insert_records(rows) if rows else {}
            if chunk.file_issues:
                self._insert_file_issues(source, chunk.file_issues, now)
            if chunk.progress:
                self._save_state(source, dict(chunk.progress), now)
        def total(kind: str) -> int:
            return sum(c[kind] for c in counts.values())

        return JournalResult(total("added"), total("duplicates"), rejected, total("conflicts"),
                             counts)

    def _insert_records(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
        """Insert the rows in order with one ``executemany``; tally them by element.

        A row the unique identity refuses is a duplicate. Every row inserted gets a
        ``seq`` above the highest one before (AUTOINCREMENT, one writer inside BEGIN
        IMMEDIATE), so the rows above it are exactly the ones added. A new row is a
        conflict when an earlier row has its identity with another digest, as if the
        rows had been inserted and checked one by one.
        """
        before = self._db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        inserted = self._db.executemany(_INSERT_RECORD, rows).rowcount
        counts: dict[str, dict[str, int]] = {}
        for row in rows:  # every record as a duplicate first, in chunk order
            tally = counts.setdefault(row[0], {"added": 0, "duplicates": 0, "conflicts": 0})
            tally["duplicates"] += 1
        for element, added in self._added_by_element(counts, inserted, before):
            counts[element]["added"] = added
            counts[element]["duplicates"] -= added
        conflicts = self._db.execute(_NEW_CONFLICTS, (before,)).fetchall()
        for _, element in conflicts:
            counts[element]["conflicts"] += 1
        if conflicts:
            self._db.executemany("UPDATE records SET conflict = 1 WHERE seq = ?",
                                 [(seq,) for seq, _ in conflicts])
        return counts

    def _added_by_element(self, counts: Mapping[str, Any], inserted: int,
                          before: int) -> Iterable[tuple[str, int]]:
        """(element, rows added) after an insert of ``inserted`` rows above seq ``before``.

        A chunk of one element (every database page) needs no query: the rows the
        ``executemany`` inserted are all of that element.
        """
        if len(counts) == 1:
            return ((next(iter(counts)), inserted),)
        return self._db.execute(
            "SELECT element, count(*) FROM records WHERE seq > ? GROUP BY element", (before,))

    def _insert_reject(self, source: str, origin: Origin, element: str | None,
                       issues: Sequence[Issue], now: float) -> None:
        issues_json = json.dumps([i.to_json("zh") for i in issues], ensure_ascii=False)
        # Re-reading a source after a crash yields the same reject again: keep one.
        self._db.execute(
            "INSERT OR IGNORE INTO rejects (source, origin, line, element, issues, digest,"
            " rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (source, origin.locator, origin.line, element, issues_json,
             _text_digest(issues_json), now))

    def _insert_file_issues(self, source: str, issues: Sequence[Any], now: float) -> None:
        """One reject row per file (a chunk may complete several small files)."""
        by_file: dict[str, list[Issue]] = {}
        for issue in issues:
            by_file.setdefault(getattr(issue, "file", None) or source, []).append(issue)
        for locator, file_issues in by_file.items():
            self._insert_reject(source, Origin(source, locator, None), None, file_issues, now)

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
        now = self._clock()
        sealed: list[str] = []
        with self._transaction("sealing batches: the records stay journaled and are sealed"
                               " on a later try"):
            rows = self._db.execute(
                "SELECT seq, size, journaled_at FROM records WHERE batch_id IS NULL"
                " ORDER BY seq").fetchall()
            for group in plan_batches(rows, max_records, max_bytes, now=now,
                                      linger=linger_seconds):
                batch_id = _new_batch_id(now)
                self._db.execute(
                    "INSERT INTO batches (batch_id, state, created_at, record_count, bytes)"
                    " VALUES (?, 'pending', ?, ?, ?)", (batch_id, now, group.count, group.bytes))
                self._db.execute(
                    "UPDATE records SET batch_id = ? WHERE seq BETWEEN ? AND ?"
                    " AND batch_id IS NULL", (batch_id, group.first_seq, group.last_seq))
                sealed.append(batch_id)
        return sealed

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
            raise FatalError(f"batch {batch_id} was compacted after it was stored")
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
        """Store one level's receipt (the latest per level wins) and derive the state.

        A ``failed`` receipt for a batch every level has stored is about a later copy (a
        resend one level refused as a duplicate, say): the batch stays stored with its
        ``stored`` receipts, as its payloads may be gone and it could not be sent again.
        """
        now = self._clock()
        with self._transaction("recording a receipt: it stays on the broker"):
            if status == "failed" and self._state(batch_id) is BatchState.STORED:
                return BatchState.STORED
            self._db.execute(
                "INSERT OR REPLACE INTO receipts (batch_id, level, status, stored_count,"
                " failed_count, reasons, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch_id, level, status, stored_count, failed_count,
                 json.dumps(list(reasons), ensure_ascii=False), now))
            return self._settle(batch_id, now)

    def _settle(self, batch_id: str, now: float) -> BatchState:
        receipts = dict(self._db.execute(
            "SELECT level, status FROM receipts WHERE batch_id = ?", (batch_id,)).fetchall())
        failed = sorted(level for level, status in receipts.items() if status == "failed")
        if failed:
            state, error = BatchState.FAILED, "failed at " + ", ".join(failed)
        elif all(receipts.get(level) == "stored" for level in self.levels):
            state, error = BatchState.STORED, None
        else:
            return self._state(batch_id)
        self._db.execute(
            "UPDATE batches SET state = ?, finished_at = ?, last_error = coalesce(?, last_error)"
            " WHERE batch_id = ?", (state.value, now, error, batch_id))
        return state

    def _state(self, batch_id: str) -> BatchState:
        row = self._db.execute("SELECT state FROM batches WHERE batch_id = ?",
                               (batch_id,)).fetchone()
        return BatchState(row[0]) if row else BatchState.PENDING

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
        states = dict(self._db.execute(
            "SELECT state, count(*) FROM batches WHERE state <> 'stored' GROUP BY state"
        ).fetchall())
        unbatched = self._db.execute(
            "SELECT count(*) FROM records WHERE batch_id IS NULL").fetchone()[0]
        return Depth(states.get("pending", 0), states.get("sent", 0), states.get("failed", 0),
                     unbatched)

    def oldest_pending_age(self) -> float | None:
        """Seconds the oldest record not yet sent has waited; None when nothing waits.

        Stamped after now, it was journaled before the clock was stepped back, and its
        age is unknown: then the age counts from when this outbox first saw it so, which
        is less than the truth but grows, where 0 would hide it for the whole step.
        """
        row = self._db.execute(
            "SELECT min(t) FROM (SELECT min(journaled_at) AS t FROM records"
            " WHERE batch_id IS NULL UNION ALL SELECT min(created_at) FROM batches"
            " WHERE state = 'pending')").fetchone()
        if row[0] is None:
            return None
        oldest = float(row[0])
        if oldest <= self._clock():
            return self._clock() - oldest
        if self._future_oldest is None or self._future_oldest[0] != oldest:
            self._future_oldest = (oldest, self._monotonic())
        return self._monotonic() - self._future_oldest[1]

    def disk_bytes(self) -> int:
        """Bytes the journal holds: its pages in use plus the WAL file.

        Free pages are left out: SQLite reuses them before the file grows, and the file
        never shrinks, so its size would keep an agent over budget after room was made.
        """
        page_size, pages, free = (
            int(self._db.execute(f"PRAGMA {name}").fetchone()[0])
            for name in ("page_size", "page_count", "freelist_count"))
        return (pages - free) * page_size + _file_size(Path(f"{self.path}-wal"))

    def over_budget(self) -> bool:
        return self.budget_bytes is not None and self.disk_bytes() > self.budget_bytes

    def make_room(self, keep_stored_seconds: float) -> int:
        """Drop the payloads of stored batches, forget batches every level stored over
        ``keep_stored_seconds`` ago with their records and receipts, then fold the WAL
        back into the file; returns how many batches were forgotten.

        A stored batch keeps only the identity of its records, to drop a late re-read as
        a duplicate (which the levels' stores also do). Pending, sent and failed batches
        and unbatched records are never touched. Short transactions of a few batches
        each, so the WAL stays small on a disk that is nearly full: done as a receipt
        arrives, the rewrite of a whole batch would make exactly the receipt that frees
        room fail there.
        """
        # A batch gives up all its payloads in one transaction, so its first record says
        # whether it still has them: one index look-up per stored batch, not a scan.
        with_payloads = ("SELECT batch_id FROM batches b WHERE state = 'stored' AND"
                         " (SELECT payload IS NOT NULL FROM records r WHERE r.batch_id ="
                         " b.batch_id ORDER BY seq LIMIT 1) LIMIT ?")
        while True:
            with self._transaction("dropping the payloads of stored batches: the others keep"
                                   " theirs until the next try"):
                batch_ids = [batch_id for batch_id, in self._db.execute(
                    with_payloads, (_PRUNE_BATCHES,)).fetchall()]
                if batch_ids:
                    _drop_payloads(self._db, ",".join("?" * len(batch_ids)), tuple(batch_ids))
            if len(batch_ids) < _PRUNE_BATCHES:
                break
        cutoff = self._clock() - keep_stored_seconds
        expired = ("SELECT batch_id FROM batches WHERE state = 'stored' AND created_at < ?"
                   " AND finished_at < ? LIMIT ?")
        pruned = 0
        while True:
            with self._transaction("pruning stored batches: nothing more was pruned"):
                batch_ids = [(batch_id,) for batch_id, in self._db.execute(
                    expired, (cutoff, cutoff, _PRUNE_BATCHES)).fetchall()]
                for table in ("records", "receipts", "batches"):
                    self._db.executemany(f"DELETE FROM {table} WHERE batch_id = ?", batch_ids)
            pruned += len(batch_ids)
            if len(batch_ids) < _PRUNE_BATCHES:
                break
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise _mapped(exc, self.path, "folding the WAL into the outbox") from exc
        return pruned

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
        """Each level's latest receipt of a batch: level, status, counts, reasons."""
        rows = self._db.execute(
            "SELECT level, status, stored_count, failed_count, reasons, received_at"
            " FROM receipts WHERE batch_id = ? ORDER BY level", (batch_id,)).fetchall()
        keys = ("level", "status", "stored_count", "failed_count", "reasons", "received_at")
        return [dict(zip(keys, (*row[:4], json.loads(row[4] or "[]"), row[5]), strict=True))
                for row in rows]

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

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error; sqlite errors mapped.

        ``doing`` names the operation and what a failure leaves behind, for the message.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _mapped(exc, self.path, doing) from exc
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _mapped(exc, self.path, doing) from exc
            raise


_INSERT_RECORD = (
    "INSERT OR IGNORE INTO records (element, record_key, sjbbh, digest, division, payload,"
    " size, source, origin, line, journaled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_NEW_CONFLICTS = (  # rows after seq ?, each with an earlier row of its identity, other digest
    "SELECT r.seq, r.element FROM records AS r WHERE r.seq > ? AND EXISTS (SELECT 1 FROM"
    " records AS o WHERE o.element = r.element AND o.record_key = r.record_key"
    " AND o.sjbbh = r.sjbbh AND o.digest <> r.digest AND o.seq < r.seq)")


_IDENTITY = ("seq, element, record_key, sjbbh, digest, division, size, conflict, source,"
             " origin, line, journaled_at, batch_id")


def _drop_payloads(connection: sqlite3.Connection, batches: str,
                  params: tuple[object, ...] = ()) -> None:
    """Keep only the identity of the records of the batches ``batches`` selects.

    An UPDATE to NULL would leave each shrunken row alone on its page (SQLite merges
    pages only when rows are deleted), so almost no room would come free: the rows are
    deleted and put back, same ``seq``, without their payload.
    """
    connection.execute(
        f"CREATE TEMP TABLE compacted AS SELECT {_IDENTITY} FROM records"
        f" WHERE payload IS NOT NULL AND batch_id IN ({batches})", params)
    connection.execute("DELETE FROM records WHERE seq IN (SELECT seq FROM compacted)")
    connection.execute(f"INSERT INTO records ({_IDENTITY}) SELECT {_IDENTITY} FROM compacted"
                       " ORDER BY seq")
    connection.execute("DROP TABLE temp.compacted")


def _record_row(source: str, origin: Origin, record: Record, now: float) -> tuple[Any, ...]:
    """The ``records`` row of one valid record, in ``_INSERT_RECORD`` order.

    The payload is the record as the batch document will hold it, written once here:
    sealing a batch only joins its payloads, and its size is exact.
    """
    payload = record_xml(record)
    return (record.element, record.key_text, record.version, record.digest(),
            record.fields.get("XZQHDM", ""), payload, len(payload.encode()), source,
            origin.locator, origin.line if origin.line is not None else record.line, now)


_RETRIABLE = ("full", "locked", "busy", "disk i/o", "unable to open")


class OutboxBroken(FatalError):
    """The outbox cannot be used (corrupt, a table gone, read-only media): no source can
    make progress, so the agent stops and says so rather than retrying forever."""


class OutboxNotFound(FileNotThere):
    """An outbox opened with ``create=False`` is not there."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, what="outbox", what_zh="发件箱", key="[outbox] path")


def _mapped(exc: sqlite3.Error, path: Path, doing: str) -> Exception:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(word in text for word in _RETRIABLE):
        return RetriableError(f"outbox {path}: {exc}, while {doing}")
    return OutboxBroken(f"outbox {path}: {exc}, while {doing}")


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _new_batch_id(now: float) -> str:
    """Sortable and unique: creation time then 12 random hex digits (fits BatchId)."""
    stamp = datetime.fromtimestamp(now, BEIJING).strftime("%Y%m%d%H%M%S")
    return f"B{stamp}-{uuid.uuid4().hex[:12]}"


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0

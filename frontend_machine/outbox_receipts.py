"""The levels' receipts in the outbox, and the batch state they settle.

Each level's latest receipt of a batch is kept (one ``receipts`` row per batch and
level). A batch is ``stored`` once every level above the node has stored it, ``failed``
while a level's latest receipt refuses it; a level that stored it never goes back to
refusing it. Apart from ``Outbox`` because these are the statements alone:
``Outbox.record_receipt`` runs them in one of its transactions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from frontend_machine.outbox_batches import BatchState

__all__ = ["receipts_of", "record_receipt"]


def record_receipt(connection: sqlite3.Connection, levels: Sequence[str], batch_id: str,
                   level: str, status: str, now: float, *, stored_count: int = 0,
                   failed_count: int = 0, reasons: Sequence[str] = ()) -> BatchState:
    """Store one level's receipt (the latest per level wins) and derive the state.

    A level that has stored the batch keeps its ``stored`` receipt: a ``failed`` one
    from it (or for a batch every level has stored) is about a later copy (a resend
    the level refused as a duplicate, say) or an older refusal redelivered after the
    replay that stored it. The batch is stored there, and its payloads may be gone.
    """
    state = _state(connection, batch_id)
    kept = connection.execute(
        "SELECT status FROM receipts WHERE batch_id = ? AND level = ?",
        (batch_id, level)).fetchone()
    if status == "failed" and (state is BatchState.STORED or kept == ("stored",)):
        return state
    connection.execute(
        "INSERT OR REPLACE INTO receipts (batch_id, level, status, stored_count,"
        " failed_count, reasons, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (batch_id, level, status, stored_count, failed_count,
         json.dumps(list(reasons), ensure_ascii=False), now))
    return _settle(connection, levels, batch_id, state, now, taken_back=kept == ("failed",))


def _settle(connection: sqlite3.Connection, levels: Sequence[str], batch_id: str,
            state: BatchState, now: float, *, taken_back: bool) -> BatchState:
    """The batch's state from its receipts: failed while a level's latest receipt is
    ``failed``; stored once every level stored it. A level's refusal ``taken_back``
    (its ``stored`` receipt replaced its ``failed`` one: it stored the batch on
    replay) with no other refusal left makes the batch sent again, waiting for the
    other levels' receipts, its error cleared. Otherwise it stays as it was: a batch
    the publisher could not build stays failed."""
    receipts = dict(connection.execute(
        "SELECT level, status FROM receipts WHERE batch_id = ?", (batch_id,)).fetchall())
    failed = sorted(level for level, status in receipts.items() if status == "failed")
    if failed:
        settled, finished, error = BatchState.FAILED, now, "failed at " + ", ".join(failed)
    elif all(receipts.get(level) == "stored" for level in levels):
        settled, finished, error = BatchState.STORED, now, None
    elif taken_back:
        settled, finished, error = BatchState.SENT, None, None
    else:
        return state
    connection.execute(
        "UPDATE batches SET state = ?, finished_at = ?, last_error = ? WHERE batch_id = ?",
        (settled.value, finished, error, batch_id))
    return settled


def _state(connection: sqlite3.Connection, batch_id: str) -> BatchState:
    row = connection.execute("SELECT state FROM batches WHERE batch_id = ?",
                             (batch_id,)).fetchone()
    return BatchState(row[0]) if row else BatchState.PENDING


def receipts_of(connection: sqlite3.Connection, batch_id: str) -> list[dict[str, Any]]:
    """Each level's latest receipt of a batch: level, status, counts, reasons."""
    rows = connection.execute(
        "SELECT level, status, stored_count, failed_count, reasons, received_at"
        " FROM receipts WHERE batch_id = ? ORDER BY level", (batch_id,)).fetchall()
    keys = ("level", "status", "stored_count", "failed_count", "reasons", "received_at")
    return [dict(zip(keys, (*row[:4], json.loads(row[4] or "[]"), row[5]), strict=True))
            for row in rows]

"""The outbox's disk budget: the bytes the journal holds, and room made from stored batches.

A batch every level has stored gives up its payloads, keeping only the identity of its
records, and is forgotten with its records and receipts after its retention; so is a
reject once replayed (corrected) that long ago. Pending, sent and failed batches,
unbatched records and open rejects are never touched. Apart from ``Outbox``
because it is upkeep, not the flow of a record: ``Outbox.over_budget`` and
``Outbox.make_room`` call it, each step in one of the outbox's own transactions.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

__all__ = ["REPLAYED_BEFORE", "Transaction", "disk_bytes", "drop_stored_payloads",
           "forget_oldest_stored", "forget_replayed_rejects", "forget_stored"]

_PRUNE_BATCHES = 20  # per transaction: each batch holds up to batch_max_records rows
_PRUNE_REJECTS = 5000
_IDENTITY = ("seq, element, record_key, sjbbh, digest, division, size, conflict, source,"
             " origin, line, journaled_at, batch_id")
# The outbox's BEGIN IMMEDIATE … COMMIT, named for its error message (``Outbox._transaction``).
Transaction = Callable[[str], AbstractContextManager[None]]


def disk_bytes(connection: sqlite3.Connection, path: Path) -> int:
    """Pages in use of the journal at ``path``, plus its WAL file.

    Free pages are left out: SQLite reuses them before the file grows, and the file
    never shrinks, so its size would keep an agent over budget after room was made.
    """
    page_size, pages, free = (
        int(connection.execute(f"PRAGMA {name}").fetchone()[0])
        for name in ("page_size", "page_count", "freelist_count"))
    return (pages - free) * page_size + _file_size(Path(f"{path}-wal"))


def drop_stored_payloads(connection: sqlite3.Connection, transaction: Transaction) -> None:
    """Drop the payloads of every stored batch, ``_PRUNE_BATCHES`` per transaction."""
    # A batch gives up all its payloads in one transaction, so its first record says
    # whether it still has them: one index look-up per stored batch, not a scan.
    with_payloads = ("SELECT batch_id FROM batches b WHERE state = 'stored' AND"
                     " (SELECT payload IS NOT NULL FROM records r WHERE r.batch_id ="
                     " b.batch_id ORDER BY seq LIMIT 1) LIMIT ?")
    while True:
        with transaction("dropping the payloads of stored batches: the others keep"
                         " theirs until the next try"):
            batch_ids = [batch_id for batch_id, in connection.execute(
                with_payloads, (_PRUNE_BATCHES,)).fetchall()]
            if batch_ids:
                _drop_payloads(connection, ",".join("?" * len(batch_ids)), tuple(batch_ids))
        if len(batch_ids) < _PRUNE_BATCHES:
            break


def forget_stored(connection: sqlite3.Connection, transaction: Transaction,
                  cutoff: float) -> int:
    """Delete the batches stored (every level) before ``cutoff`` with their records and
    receipts, ``_PRUNE_BATCHES`` per transaction; returns how many were forgotten."""
    expired = ("SELECT batch_id FROM batches WHERE state = 'stored' AND created_at < ?"
               " AND finished_at < ? LIMIT ?")
    pruned = 0
    while True:
        forgotten = _forget(connection, transaction, expired, (cutoff, cutoff, _PRUNE_BATCHES))
        pruned += forgotten
        if forgotten < _PRUNE_BATCHES:
            break
    return pruned


def forget_oldest_stored(connection: sqlite3.Connection, transaction: Transaction) -> int:
    """Delete the ``_PRUNE_BATCHES`` batches stored longest ago, within their retention;
    returns how many were forgotten (0: none is left)."""
    oldest = ("SELECT batch_id FROM batches WHERE state = 'stored'"
              " ORDER BY finished_at, created_at LIMIT ?")
    return _forget(connection, transaction, oldest, (_PRUNE_BATCHES,))


# The oldest rejects replayed before a cutoff: read by the index ``rejects_replayed``.
REPLAYED_BEFORE = "SELECT id FROM rejects WHERE replayed_at < ? ORDER BY replayed_at LIMIT ?"


def forget_replayed_rejects(connection: sqlite3.Connection, transaction: Transaction,
                            cutoff: float) -> int:
    """Delete the rejects replayed before ``cutoff``, oldest first, ``_PRUNE_REJECTS`` per
    transaction; returns how many were forgotten.

    A replayed reject is history: its row was corrected and journaled. Kept for good,
    rejects alone would fill the budget in the end and pause the agent with nothing a
    receipt could free.
    """
    forgotten = 0
    while True:
        with transaction("forgetting replayed rejects: the others stay until the next try"):
            deleted = connection.execute(f"DELETE FROM rejects WHERE id IN ({REPLAYED_BEFORE})",
                                         (cutoff, _PRUNE_REJECTS)).rowcount
        forgotten += deleted
        if deleted < _PRUNE_REJECTS:
            return forgotten


def _forget(connection: sqlite3.Connection, transaction: Transaction, chosen: str,
            params: tuple[object, ...]) -> int:
    with transaction("pruning stored batches: nothing more was pruned"):
        batch_ids = [(batch_id,) for batch_id, in connection.execute(chosen, params).fetchall()]
        for table in ("records", "receipts", "batches"):
            connection.executemany(f"DELETE FROM {table} WHERE batch_id = ?", batch_ids)
    return len(batch_ids)


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


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0

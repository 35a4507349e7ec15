"""What waits in the outbox, for heartbeats and ``agent once``: its depth, and how long
its oldest record not yet stored at every level has waited.

Apart from ``Outbox`` because it only reads: ``Outbox.depth`` and
``Outbox.oldest_pending_age`` ask it on the outbox's connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from frontend_machine.outbox_batches import Depth

__all__ = ["OldestPending", "depth"]


def depth(connection: sqlite3.Connection) -> Depth:
    """Backlog for heartbeats: pending/sent/failed batches and unbatched records."""
    states = dict(connection.execute(
        "SELECT state, count(*) FROM batches WHERE state <> 'stored' GROUP BY state"
    ).fetchall())
    unbatched = connection.execute(
        "SELECT count(*) FROM records WHERE batch_id IS NULL").fetchone()[0]
    return Depth(states.get("pending", 0), states.get("sent", 0), states.get("failed", 0),
                 unbatched)


class OldestPending:
    """The age of an outbox's oldest record not yet stored at every level; ``clock`` is
    the wall time the rows are stamped with, ``monotonic`` only measures waits."""

    def __init__(self, clock: Callable[[], float], monotonic: Callable[[], float]) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._future_oldest: tuple[float, float] | None = None  # (stamp, first seen)

    def age(self, connection: sqlite3.Connection) -> float | None:
        """Seconds the oldest record not yet stored at every level has waited (unbatched,
        or in a pending or sent batch); None when nothing waits. A sent batch whose
        receipts never come is exactly what the centre must see growing old.

        Stamped after now, it was journaled before the clock was stepped back, and its
        age is unknown: then the age counts from when this outbox first saw it so, which
        is less than the truth but grows, where 0 would hide it for the whole step.
        """
        row = connection.execute(
            "SELECT min(t) FROM (SELECT min(journaled_at) AS t FROM records"
            " WHERE batch_id IS NULL UNION ALL SELECT min(created_at) FROM batches"
            " WHERE state IN ('pending', 'sent'))").fetchone()
        if row[0] is None:
            return None
        oldest = float(row[0])
        if oldest <= self._clock():
            return self._clock() - oldest
        if self._future_oldest is None or self._future_oldest[0] != oldest:
            self._future_oldest = (oldest, self._monotonic())
        return self._monotonic() - self._future_oldest[1]

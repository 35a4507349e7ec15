"""Batch states, batch rows and the pure batching plan of the outbox."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BatchInfo", "BatchLimits", "BatchState", "Depth", "Group", "Seats", "plan_batches",
           "seat_full_batches"]


class BatchState(StrEnum):
    """pending → sent (broker confirmed) → stored (every level) | failed (a level's latest
    receipt is ``failed``); failed → sent again once every refusing level has stored it
    (replayed there), waiting for the others; failed | sent → pending on requeue."""

    PENDING = "pending"
    SENT = "sent"
    STORED = "stored"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """One row of the ``batches`` table."""

    COLUMNS = ("batch_id, state, created_at, sent_at, finished_at, record_count, bytes,"
               " attempts, last_error")

    batch_id: str
    state: BatchState
    created_at: float
    sent_at: float | None
    finished_at: float | None
    record_count: int
    bytes: int
    attempts: int
    last_error: str | None

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> BatchInfo:
        batch_id, state, *rest = row
        return cls(str(batch_id), BatchState(str(state)), *rest)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Depth:
    """The outbox backlog, as heartbeats report it."""

    pending_batches: int
    sent_batches: int
    failed_batches: int
    unbatched_records: int


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """A batch is full at ``max_records`` records or ``max_bytes`` bytes of payload."""

    max_records: int
    max_bytes: int


@dataclass(slots=True)
class Group:
    """A run of consecutive unbatched records that will become one batch."""

    first_seq: int
    last_seq: int
    count: int
    bytes: int
    oldest: float
    newest: float


def plan_batches(rows: Iterable[tuple[int, int, float]], max_records: int, max_bytes: int,
                 *, now: float, linger: float) -> list[Group]:
    """Cut ``(seq, size, journaled_at)`` rows, in order, into batches.

    A batch closes when the next record would pass ``max_records`` or ``max_bytes``; a
    record bigger than ``max_bytes`` travels alone. The trailing, not yet full group is
    kept back until its oldest record has waited ``linger`` (0: never kept; infinite:
    always). A record journaled more than ``linger`` after ``now`` says the clock was
    stepped back: how long it waited is unknown, so its group is due at once.
    """
    if max_records < 1 or max_bytes < 1:
        raise ValueError("max_records and max_bytes must be positive")
    groups: list[Group] = []
    current: Group | None = None
    for seq, size, journaled_at in rows:
        if current is not None and (current.count >= max_records
                                    or current.bytes + size > max_bytes):
            groups.append(current)
            current = None
        if current is None:
            current = Group(seq, seq, 0, 0, journaled_at, journaled_at)
        current.last_seq = seq
        current.count += 1
        current.bytes += size
        current.oldest = min(current.oldest, journaled_at)
        current.newest = max(current.newest, journaled_at)
    if current is not None:
        full = current.count >= max_records or current.bytes >= max_bytes
        lingered = current.oldest <= now - linger or current.newest > now + linger
        if full or lingered:
            groups.append(current)
    return groups


@dataclass(frozen=True, slots=True)
class Seats:
    """Where the records of one full batch sit: a run of the unbatched records already
    journaled (``tail``, positions in it, or None) and a run of the rows being journaled
    (``new``, positions in them, or None); the tail's run comes first."""

    tail: tuple[int, int] | None
    new: tuple[int, int] | None
    count: int
    bytes: int


def seat_full_batches(tail: Sequence[tuple[int, int, float]], new_sizes: Sequence[int],
                      limits: BatchLimits) -> list[Seats]:
    """The full batches that the unbatched ``tail`` (``(seq, size, journaled_at)``, in
    order) and the rows about to be journaled after it (``new_sizes``) make, cut exactly
    as ``plan_batches`` cuts them. What does not fill a batch stays unbatched."""
    edge = len(tail)
    items = [(position, size, 0.0) for position, (_, size, _) in enumerate(tail)]
    items += [(edge + index, size, 0.0) for index, size in enumerate(new_sizes)]
    seats = []
    for group in plan_batches(items, limits.max_records, limits.max_bytes, now=0.0,
                              linger=math.inf):
        first, last = group.first_seq, group.last_seq
        seats.append(Seats(
            (first, min(last, edge - 1)) if first < edge else None,
            (max(first, edge) - edge, last - edge) if last >= edge else None,
            group.count, group.bytes))
    return seats

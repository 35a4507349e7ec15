"""Plain rows the sync-status queries return (``sql_status``) and ``gateway.status`` reads.

No logic here but a heartbeat's contact time (``HeartbeatRow.contact_at``, the one rule
the store's ordering shares): the rows say what the store holds, the status model
decides what it means. All times are naive Beijing time, like everything else in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "CoverageRow",
    "FailedCount",
    "FailedRow",
    "HeartbeatRow",
    "NodeRow",
    "NodeTotalsRow",
    "RecentBatch",
    "StatusRows",
]


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node as ``ST_NODE`` (or the registry) knows it."""

    node_id: str
    division: str
    status: str = "active"             # active | disabled
    last_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatRow:
    """One heartbeat as kept in ``ST_HEARTBEAT``."""

    node_id: str
    received_at: datetime
    source_lag_s: float | None = None
    outbox: Mapping[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    version: str | None = None
    sent_at: datetime | None = None        # the agent's clock; None from older agents

    @property
    def contact_at(self) -> datetime:
        """When the node last spoke through this beat: its sending time, never later
        than its storing time.

        ``RECEIVED_AT`` is when the gateway stored the beat: held through a store outage,
        a whole burst of beats shares one, and it would make a long-silent node look
        fresh. An agent clock ahead of the gateway's must not either, hence the bound.
        ``sql_status._contact_at`` is the same rule in SQL, for ordering in the store.
        """
        if self.sent_at is None or self.sent_at > self.received_at:
            return self.received_at
        return self.sent_at


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """``ST_COVERAGE``: when a node's records of one element first and last arrived."""

    node_id: str
    element: str
    first_at: datetime
    last_at: datetime
    records: int


@dataclass(frozen=True, slots=True)
class NodeTotalsRow:
    """A node's batches: stored (all, and records since two Beijing midnights) and failed."""

    node_id: str
    batches: int = 0
    records_today: int = 0
    records_week: int = 0
    last_stored_at: datetime | None = None
    failed: int = 0                        # refused and not replayed
    last_failed_at: datetime | None = None
    conflicts: int = 0                     # records kept in ST_CONFLICT, not resolved


@dataclass(frozen=True, slots=True)
class FailedRow:
    """A refused batch not replayed yet (``ST_FAILED_BATCH`` with no ``REPLAYED_AT``)."""

    batch_id: str
    node_id: str | None
    reason: str
    detail: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FailedCount:
    """A sender's refusals not replayed yet, however many the list of them holds."""

    node_id: str | None                    # None: no node vouched for the message
    refusals: int                          # rows, as the list of failed batches shows them
    batches: int                           # a batch refused on every resend counted once


@dataclass(frozen=True, slots=True)
class RecentBatch:
    """A stored batch of the throughput window."""

    node_id: str
    stored_at: datetime
    records: int


@dataclass(frozen=True)
class StatusRows:
    """Everything one status page needs, read at ``now``."""

    now: datetime
    nodes: Sequence[NodeRow] = ()
    heartbeats: Sequence[HeartbeatRow] = ()      # oldest first
    coverage: Sequence[CoverageRow] = ()
    totals: Sequence[NodeTotalsRow] = ()
    failed: Sequence[FailedRow] = ()             # newest first, maybe capped
    failed_counts: Sequence[FailedCount] = ()    # uncapped, one per sender
    recent_batches: Sequence[RecentBatch] = ()
    recent_failures: Sequence[datetime] = ()     # received_at of refusals in the window

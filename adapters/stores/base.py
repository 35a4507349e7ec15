"""The contract every central store keeps (design §7).

A gateway hands a whole verified batch to ``Store.write``; the store writes every
record and the batch's own row in one transaction, so a batch is either entirely
stored or not at all. Writing is idempotent: a redelivered batch changes nothing, a
record already stored with the same content is a duplicate, and a record whose key
and version are stored with other content is a conflict, kept for a person.

Errors follow ``schemas.errors``: ``RetriableError`` when the database is away (the
caller keeps the batch and retries), ``RejectedBatch`` when the batch itself can never
be stored as is (a batch ID reused for other content).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from schemas.errors import RejectedBatch
from schemas.records import Record

__all__ = [
    "BATCH_ID_LENGTH",
    "BATCH_ID_REUSED",
    "BATCH_ID_REUSED_REASON",
    "NO_BATCH_ID",
    "SETTLED_BY_STORING",
    "BatchRefused",
    "BatchState",
    "Conflict",
    "FailedBatch",
    "Heartbeat",
    "IncomingBatch",
    "NodeInfo",
    "ReceiptRow",
    "Store",
    "WriteResult",
]

BATCH_ID_REUSED = "batch id reused"
BATCH_ID_REUSED_REASON = "batch-id-reused"  # its stable reason code
# Refusal reasons (gateway.pipeline, gateway.poison, gateway.dead_letters) about the
# delivery's circumstances, not the copy's content: storing the batch later proves them
# cured, so the store settles the node's outstanding rows with them. The node was off
# (now on), its key version was not registered (now it is), processing failed (now it
# works), the broker gave up delivering it (now it is stored). Every other reason says
# that copy was wrong (forged, tampered, invalid, sent by someone else): it stays.
SETTLED_BY_STORING = frozenset({"node-disabled", "unknown-key-version", "processing-error",
                                "dead-lettered"})
NO_BATCH_ID = "-"  # ST_FAILED_BATCH's BATCH_ID for a refused message that names none
BATCH_ID_LENGTH = 100  # the longest batch ID a store keeps; the gateway refuses longer ones
BatchState = str  # "stored" | "failed"


class BatchRefused(RejectedBatch):
    """The store refuses a batch for good; ``reason`` is a stable code for receipts."""

    def __init__(self, reason: str, message: str, *, batch_id: str | None = None,
                 node_id: str | None = None) -> None:
        super().__init__(message, batch_id=batch_id, node_id=node_id)
        self.reason = reason


@dataclass(frozen=True)
class IncomingBatch:
    """A verified, decrypted and validated batch, ready to be stored."""

    batch_id: str
    node_id: str
    node_division: str
    payload_sha256: str          # of the plain XML, as the header carried it
    records: Sequence[Record]
    received_at: datetime
    schema_version: int = 1


@dataclass(frozen=True)
class Conflict:
    """A record whose (element, key, SJBBH) is stored with another digest."""

    element: str
    key_text: str
    version: int
    stored_digest: str
    incoming_digest: str

    def describe(self) -> str:
        return (f"conflict {self.element} {self.key_text} SJBBH={self.version}: stored "
                f"{self.stored_digest[:12]}, received {self.incoming_digest[:12]}")


@dataclass(frozen=True)
class WriteResult:
    """What ``write`` did; ``redelivered`` means the batch was stored before (no change)."""

    batch_id: str
    stored: int
    duplicates: int
    conflicts: tuple[Conflict, ...] = ()
    redelivered: bool = False

    @property
    def conflict_count(self) -> int:
        return len(self.conflicts)


@dataclass(frozen=True)
class FailedBatch:
    """A batch refused for good: kept with its sealed payload so it can be replayed."""

    batch_id: str
    node_id: str | None
    reason: str                  # stable reason code: bad-signature, unknown-node, …
    detail: str                  # a sentence for the operator
    body: bytes = field(repr=False)
    routing_key: str
    headers: Mapping[str, Any]
    user_id: str | None
    received_at: datetime


@dataclass(frozen=True)
class ReceiptRow:
    """A receipt as sent back to the node (the JSON body) and when."""

    batch_id: str
    node_id: str
    status: str                  # stored | failed
    body: Mapping[str, Any]
    sent_at: datetime


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat of a node's agent, from ``exgate.status``."""

    node_id: str
    division: str | None
    sent_at: datetime | None
    received_at: datetime
    version: str | None
    outbox: Mapping[str, Any]
    source_lag_s: float | None
    last_error: str | None


@dataclass(frozen=True)
class NodeInfo:
    """A node as the registry knows it, mirrored into the store for the dashboards."""

    node_id: str
    division: str
    broker_user: str
    status: str
    key_versions: tuple[int, ...] = ()


@runtime_checkable
class Store(Protocol):
    """A level's central store."""

    def write(self, batch: IncomingBatch) -> WriteResult:
        """Store every record of ``batch`` and its batch row in one transaction.

        Raises ``RejectedBatch`` (``BATCH_ID_REUSED``) when the batch ID is stored with
        another payload sha256, ``RetriableError`` when the database is away.
        """
        ...

    def record_failed(self, failed: FailedBatch) -> None:
        """Keep a refused batch with its payload and reason (idempotent per body)."""
        ...

    def record_receipt(self, receipt: ReceiptRow) -> None:
        ...

    def record_heartbeat(self, heartbeat: Heartbeat) -> None:
        ...

    def mirror_node(self, node: NodeInfo, seen_at: datetime | None = None) -> None:
        """Insert or update the node's row; ``seen_at`` moves its last-seen time."""
        ...

    def batch_state(self, batch_id: str) -> BatchState | None:
        """``stored``, ``failed`` (refused and not stored since) or None (never seen)."""
        ...

    def close(self) -> None:
        ...

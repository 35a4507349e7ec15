"""Operators' replay of failed batches (design §2, §8): list, show, replay.

A refused batch sits in ``ST_FAILED_BATCH`` with its sealed body, the AMQP headers, the
routing key and the reason. Once the cause is fixed (the node got registered, its key
was restored, the store is back) ``Replayer.replay`` hands the very same message to the
same ``Pipeline`` the consumer uses, so a replayed batch passes every check a fresh one
passes. On ``stored`` the failed row gets ``REPLAYED_AT``; a second replay finds nothing
outstanding and changes nothing. A dry run uses ``DryRunStore``, which answers what a
write would do and never writes.

A replay is no contact from the node: the message keeps the time the gateway first
received it (``Delivery.received_at``), and the pipeline leaves the node's last-seen
time alone, so a replayed old batch does not make a silent node look alive.

Reads (``list``, ``show``, the failed rows to replay, a dry run's look-ups) take no
write lock: on SQLite they read a snapshot beside a running gateway, which they neither
wait for nor hold up. Each write is one of the store's own short transactions, which
waits for a busy store as the consumer's do; a store still busy after that is tried
again after each of ``STORE_WAITS_S``, and then ``Replayer.replay`` raises
``RetriableError``: the store is away for every batch, not just this one.

Nothing here prints: ``gateway.replay_command`` renders for people and scripts. The
sentences made here are ``Localized``; what the store kept (a refusal's detail) is text
as the pipeline wrote it. Listing and showing are ``gateway.replay_view``'s; their
names are exported here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, select, update

from adapters.stores.base import (
    BATCH_ID_REUSED,
    BATCH_ID_REUSED_REASON,
    BatchRefused,
    FailedBatch,
    Heartbeat,
    IncomingBatch,
    NodeInfo,
    ReceiptRow,
    WriteResult,
)
from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from gateway.log_text import say
from gateway.pipeline import NodeDirectory, Outcome, Pipeline
from gateway.poison import POISON_REASON, describe
from gateway.replay_view import (
    BatchRow,
    FailedRow,
    Preview,
    Text,
    english,
    failed_rows,
    list_batches,
    preview,
    read_only,
    reading,
    stored_batch,
)
from schemas.errors import ExgateError, RetriableError
from schemas.messages import Localized

__all__ = [
    "STORE_WAITS_S",
    "BatchRow",
    "DryRunStore",
    "FailedRow",
    "Preview",
    "ReceiptNote",
    "ReplayResult",
    "Replayer",
    "Text",
    "english",
    "failed_rows",
    "list_batches",
    "preview",
    "stored_batch",
]

log = logging.getLogger("exgate.gateway.replay")
# After the store's own busy wait (5 s on SQLite): enough for a gateway's longest batch
# transaction, short enough that an operator waits for an answer, not a timeout.
STORE_WAITS_S = (1.0, 2.0, 4.0)
_T = TypeVar("_T")


# -- replay ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptNote:
    """The receipt a replay owed a node: sent, or ``error`` says why not."""

    to: str
    error: Text | None = None

    @property
    def sent(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "sent": self.sent, "error": english(self.error)}


@dataclass(frozen=True)
class ReplayResult:
    """What happened to one failed message."""

    batch_id: str
    failed_id: int
    node_id: str | None
    status: str               # stored | failed | skipped (replayed before)
    reason: str | None = None
    detail: Text | None = None
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dry_run: bool = False
    receipt: ReceiptNote | None = None   # None: none owed, or receipts are off

    @property
    def landed(self) -> bool:
        return self.status in ("stored", "skipped")

    def to_json(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "failed_id": self.failed_id,
                "node_id": self.node_id, "status": self.status, "reason": self.reason,
                "detail": english(self.detail), "stored": self.stored,
                "duplicates": self.duplicates, "conflicts": self.conflicts,
                "dry_run": self.dry_run,
                "receipt": None if self.receipt is None else self.receipt.to_json()}


ReceiptSink = Callable[[Outcome], Text | None]         # None when sent, else why not
WaitSink = Callable[[FailedRow, RetriableError, float], None]


@dataclass
class Replayer:
    """Replays failed messages through a level's ``Pipeline`` over ``store``.

    ``on_wait`` hears of each wait for a busy store before it starts; ``lang``: the
    language of the log lines, the pipeline's included.
    """

    division: str
    registry: NodeDirectory
    store: SqlStore
    dry_run: bool = False
    send_receipt: ReceiptSink | None = None
    on_wait: WaitSink | None = None
    waits_s: Sequence[float] = STORE_WAITS_S
    sleep: Callable[[float], None] = time.sleep
    lang: str = "zh"

    def __post_init__(self) -> None:
        target = DryRunStore(self.store) if self.dry_run else self.store
        self._pipeline = Pipeline(self.division, self.registry, target, lang=self.lang)

    def replay(self, row: FailedRow) -> ReplayResult:
        """Replay one row; ``RetriableError`` when the store stays busy or away."""
        if row.replayed_at is not None:
            when = f"{row.replayed_at:%Y-%m-%d %H:%M:%S}"
            return ReplayResult(row.batch_id, row.failed_id, row.node_id, "skipped",
                                detail=Localized(f"重放于 {when}", f"replayed at {when}"),
                                dry_run=self.dry_run)
        if self._patiently(row, lambda: self._resent_and_stored(row)):
            if not self.dry_run:
                self._patiently(row, lambda: self._update(row, {"REPLAYED_AT": now_beijing()}))
            return ReplayResult(row.batch_id, row.failed_id, row.node_id, "stored",
                                detail=Localized("节点重发的同一内容已入库，此副本无需重放",
                                                 "the node's resend of this very content is "
                                                 "stored: this copy needs no replay"),
                                dry_run=self.dry_run)
        try:
            outcome = self._patiently(row, lambda: self._pipeline.handle(row.delivery()))
            news = not self.dry_run and self._patiently(row, lambda: self._settle(row, outcome))
        except RetriableError:
            raise
        except ExgateError as exc:  # the store is broken (FatalError) for this batch
            return ReplayResult(row.batch_id, row.failed_id, row.node_id, "failed",
                                type(exc).__name__, str(exc), dry_run=self.dry_run)
        except Exception as exc:  # what made it a processing-error is not fixed yet
            why = describe(exc)
            log.warning(say("replay-still-fails", self.lang, batch=row.batch_id, error=why),
                        exc_info=True, extra={"batch_id": row.batch_id,
                                              "node_id": row.node_id})
            return ReplayResult(row.batch_id, row.failed_id, row.node_id, "failed",
                                POISON_REASON, why, dry_run=self.dry_run)
        return self._result(row, outcome, self._send(outcome) if news else None)

    def _patiently(self, row: FailedRow, step: Callable[[], _T]) -> _T:
        """``step`` (idempotent), tried again after each of ``waits_s`` while the store
        is busy or away."""
        for wait in self.waits_s:
            try:
                return step()
            except RetriableError as exc:
                if self.on_wait is not None:
                    self.on_wait(row, exc, wait)
                self.sleep(wait)
        return step()

    def _resent_and_stored(self, row: FailedRow) -> bool:
        """Whether the store holds this batch from the row's node with the very content
        the refused copy claimed (``x-exgate-sha256``): the node resent it, say with the
        right key after a stale key file's bad signature. Replaying the copy would only
        refuse it again; the store settles such rows itself when the resend comes later.
        """
        claimed = row.headers.get("x-exgate-sha256")
        if row.node_id is None or not isinstance(claimed, str):
            return False
        b = self.store.schema.batch
        with read_only(self.store, f"read batch {row.batch_id}") as conn:
            return conn.execute(select(b.c.BATCH_ID).where(
                b.c["BATCH_ID"] == row.batch_id, b.c["NODE_ID"] == row.node_id,
                b.c["PAYLOAD_SHA256"] == claimed)).first() is not None

    def _settle(self, row: FailedRow, outcome: Outcome) -> bool:
        """Mark the row stored, or keep its current cause; False when nothing is new."""
        if outcome.status == "stored":
            return self._update(row, {"REPLAYED_AT": now_beijing()})
        # Otherwise keep the current cause on the row, for `batches list`.
        reason, detail = outcome.reason or row.reason, _detail(outcome) or row.detail
        if (reason, detail) == (row.reason, row.detail):
            return False  # the node got this very refusal the first time
        return self._update(row, {"REASON": reason[:50], "DETAIL": detail[:2000]})

    def _update(self, row: FailedRow, values: dict[str, Any]) -> bool:
        f = self.store.schema.failed
        with reading(self.store, f"update failed batch {row.batch_id}"), \
                self.store.engine.begin() as conn:
            conn.execute(update(f).where(and_(f.c["FAILED_ID"] == row.failed_id,
                                              f.c.REPLAYED_AT.is_(None))).values(**values))
        return True

    def _send(self, outcome: Outcome) -> ReceiptNote | None:
        if self.send_receipt is None or outcome.receipt_to is None:
            return None
        return ReceiptNote(outcome.receipt_to, self.send_receipt(outcome))

    def _result(self, row: FailedRow, outcome: Outcome,
                receipt: ReceiptNote | None) -> ReplayResult:
        if outcome.status != "stored":
            return ReplayResult(row.batch_id, row.failed_id, row.node_id, "failed",
                                outcome.reason, _detail(outcome), dry_run=self.dry_run,
                                receipt=receipt)
        result = outcome.result
        if result is None or result.redelivered:  # nothing new: all of it was there
            total = 0 if result is None else result.stored + result.duplicates
            return ReplayResult(row.batch_id, row.failed_id, row.node_id, "stored",
                                detail=Localized("此前已入库（重复投递）",
                                                 "already stored (redelivery)"),
                                duplicates=total, dry_run=self.dry_run, receipt=receipt)
        return ReplayResult(row.batch_id, row.failed_id, row.node_id, "stored",
                            stored=result.stored, duplicates=result.duplicates,
                            conflicts=result.conflict_count, dry_run=self.dry_run,
                            receipt=receipt)


def _detail(outcome: Outcome) -> str | None:
    """The refusal's sentence, from the receipt's ``"reason: detail"``."""
    reasons = outcome.receipt.get("reasons") or []
    if not reasons:
        return None
    return str(reasons[0]).removeprefix(f"{outcome.reason}: ")


class DryRunStore:
    """The ``Store`` contract over a real store that only reads: what would happen.

    ``write`` answers as the SQL store would for the batch row (a redelivery, a reused
    batch ID) and otherwise reports every record as to be stored; every other call is a
    no-op.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def write(self, batch: IncomingBatch) -> WriteResult:
        b = self._store.schema.batch
        with read_only(self._store, "look up a batch") as conn:
            sha = conn.execute(select(b.c.PAYLOAD_SHA256)
                               .where(b.c["BATCH_ID"] == batch.batch_id)).scalar()
        if sha is None:
            return WriteResult(batch.batch_id, len(batch.records), 0)
        if sha != batch.payload_sha256:
            raise BatchRefused(BATCH_ID_REUSED_REASON, f"{BATCH_ID_REUSED}: batch "
                               f"{batch.batch_id} is stored with another payload",
                               batch_id=batch.batch_id, node_id=batch.node_id)
        return WriteResult(batch.batch_id, 0, len(batch.records), redelivered=True)

    def record_failed(self, failed: FailedBatch) -> None:
        return None

    def record_receipt(self, receipt: ReceiptRow) -> None:
        return None

    def record_heartbeat(self, heartbeat: Heartbeat) -> None:
        return None

    def mirror_node(self, node: NodeInfo, seen_at: datetime | None = None) -> None:
        return None

    def batch_state(self, batch_id: str) -> str | None:
        return self._store.batch_state(batch_id)

    def close(self) -> None:
        return None

"""What the gateway does with one delivered batch: verify → unseal → validate → store.

``Pipeline.handle`` takes the message (routing key, properties, body) and returns an
``Outcome``: ``stored`` or ``failed``, with the receipt to send back. It never touches
the broker; the consumer acks and publishes. The order of the checks is the order that
costs an attacker the most:

1. a batch ID (``message_id``) the store can keep; the sending node: registry entry,
   active, ``user_id`` (which RabbitMQ checks against the connection's login) equal to
   its broker user, routing key equal to its own;
2. unseal: Ed25519 signature, AES-256-GCM (bound to node, batch ID and key version),
   capped gunzip;
3. the sha256 header against the plain XML;
4. validation with ``DocumentReader``: every record valid (the agent validated them, so
   an invalid one means tampering or a version mismatch), HEAD and header consistent;
5. every record's XZQHDM within the node's division;
6. ``Store.write`` in one transaction (a batch ID reused for other content is refused).

A refusal is permanent: the batch is kept in the failed-batch store with its payload
and reason, and a WARNING names node, batch and reason. ``RetriableError`` (store away)
and ``FatalError`` propagate: the consumer keeps the message and tries again, and hands
one that keeps failing for no transient reason (``gateway.poison``) to ``quarantine``,
which keeps it as a failed batch the same way; so does ``gateway.dead_letters`` with a
batch the broker gave up on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from adapters.amqp.topology import node_of
from adapters.amqp.topology import routing_key as node_routing_key
from adapters.sealing import DEFAULT_MAX_PLAIN_BYTES, NodeVerifier, SealError, unseal
from adapters.stores.base import (
    BATCH_ID_LENGTH,
    NO_BATCH_ID,
    BatchRefused,
    FailedBatch,
    Heartbeat,
    IncomingBatch,
    NodeInfo,
    ReceiptRow,
    Store,
    WriteResult,
)
from gateway.log_text import both, say
from gateway.poison import POISON_REASON
from gateway.status import heartbeat_number
from schemas.divisions import level_of, within
from schemas.errors import FatalError
from schemas.messages import Localized
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.refusals import reason_name
from schemas.times import BEIJING

__all__ = ["Delivery", "NodeDirectory", "Outcome", "Pipeline", "Refusal"]

log = logging.getLogger("exgate.gateway")
MAX_REASONS = 20
MIRROR_EVERY_S = 60.0  # ST_NODE is refreshed at most this often per node


class NodeDirectory(Protocol):
    """The part of ``gateway.registry.Registry`` the pipeline reads."""

    def get(self, node_id: str) -> Any: ...

    def verifier(self, node_id: str, key_version: int) -> NodeVerifier | None: ...


@dataclass(frozen=True)
class Delivery:
    """One message from the level queue, as the broker handed it over.

    ``received_at`` is set only when a kept message is handed over again: for an
    operator's replay, when the gateway first received it; for a dead letter, when the
    broker gave up on it (``gateway.dead_letters``). Handling it again is no contact from
    the node, so the batch keeps that time and the node's last-seen time is left alone.

    ``arrived_at`` is when the consumer took the message from the queue. A delivery held
    through a store outage is handled minutes later; the batch, and the node's last
    contact, keep the time it arrived, or a node silent since would look fresh.
    """

    routing_key: str
    body: bytes = field(repr=False)
    message_id: str | None
    user_id: str | None
    headers: Mapping[str, Any]
    redelivered: bool = False
    received_at: datetime | None = None
    arrived_at: datetime | None = None

    def header(self, name: str) -> Any:
        return self.headers.get(name)


@dataclass(frozen=True)
class Outcome:
    """What happened; ``receipt_to`` is None when the sender is not who it claims."""

    status: str                       # stored | failed
    batch_id: str
    node_id: str | None
    receipt: Mapping[str, Any]
    receipt_to: str | None
    reason: str | None = None
    result: WriteResult | None = None


class Refusal(Exception):
    """A permanent refusal inside the pipeline; ``trusted`` says the node is authentic."""

    def __init__(self, reason: str, detail: str, trusted: bool = True) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.trusted = reason, detail, trusted


@dataclass
class Pipeline:
    """The gateway's checks for one level division, against a registry and a store.

    ``lang``: the language of the gateway's log (``[gateway] lang``), for the pipeline's
    lines and those of the consumer, workers and dead letters working with it.
    """

    division: str
    registry: NodeDirectory
    store: Store
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(BEIJING))
    max_plain_bytes: int = DEFAULT_MAX_PLAIN_BYTES  # a batch that inflates past this is refused
    lang: str = "zh"
    _mirrored: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def level(self) -> str:
        return level_of(self.division).value

    def handle(self, delivery: Delivery) -> Outcome:
        received = delivery.received_at or delivery.arrived_at or self.clock()
        batch_id = delivery.message_id or ""
        node_id = _text(delivery.header("x-exgate-node"))
        try:
            batch = self._verify(delivery, batch_id, node_id, received)
            result = self.store.write(batch)
        except Refusal as refusal:
            return self._refuse(delivery, batch_id, node_id, refusal, received)
        except BatchRefused as exc:
            return self._refuse(delivery, batch_id, node_id, Refusal(exc.reason, str(exc)),
                                received)
        return self._stored(batch, result)

    def quarantine(self, delivery: Delivery, cause: Localized, *,
                   reason: str = POISON_REASON) -> Outcome:
        """Keep a batch that could not be handled (``cause``) as failed under ``reason``,
        for replay once fixed: one that keeps failing (``processing-error``), or one the
        broker gave up on (``gateway.dead_letters``).

        The fault may be the store's or the gateway's, not the sender's, so the payload is
        kept whole. The receipt goes to the node only when the message is provably its
        own. A batch the store already holds is never reported failed: ``FatalError``,
        and the caller keeps the message (its bookkeeping, not the batch, is broken).
        The failed batch's detail is the English of ``cause``; the log says it in ``lang``.
        """
        received = delivery.received_at or delivery.arrived_at or self.clock()
        batch_id = delivery.message_id or ""
        node_id = _text(delivery.header("x-exgate-node"))
        if batch_id and self.store.batch_state(batch_id) == "stored":
            stored = both("stored-after-write", batch=batch_id, cause=cause)
            raise FatalError(stored.en, zh=stored.zh)
        refusal = Refusal(reason, cause.en, self._authentic(delivery, node_id))
        outcome = self._refuse(delivery, batch_id, node_id, refusal, received)
        log.error(say("kept-failed", self.lang, batch=outcome.batch_id, node=outcome.node_id,
                      cause=cause, reason=reason, reason_name=reason_name(reason)),
                  extra={"batch_id": outcome.batch_id, "node_id": outcome.node_id,
                         "reason": reason})
        return outcome

    def _authentic(self, delivery: Delivery, node_id: str | None) -> bool:
        try:
            self._node(delivery, node_id)
        except Exception:  # a refusal, or the very fault that made the batch poison
            return False
        return True

    # -- checks ------------------------------------------------------------------------

    def _verify(self, delivery: Delivery, batch_id: str, node_id: str | None,
                received: datetime) -> IncomingBatch:
        if not batch_id:
            raise Refusal("missing-batch-id", "the message has no message_id (batch ID)", False)
        if len(batch_id) > BATCH_ID_LENGTH:
            raise Refusal("bad-batch-id", f"message_id has {len(batch_id)} characters; a "
                          f"batch ID has at most {BATCH_ID_LENGTH}", False)
        entry = self._node(delivery, node_id)
        verifier = self._verifier(delivery, entry)
        try:
            plain = unseal(delivery.body, verifier, batch_id,
                           max_plain_bytes=self.max_plain_bytes)
        except SealError as exc:
            raise Refusal(exc.reason, str(exc)) from exc
        digest = hashlib.sha256(plain).hexdigest()
        if digest != _text(delivery.header("x-exgate-sha256")):
            raise Refusal("sha256-mismatch", f"payload sha256 {digest[:16]}… differs from the "
                          f"x-exgate-sha256 header")
        records, schema_version = self._validate(plain, batch_id, entry.node_id, delivery)
        self._check_divisions(entry.division, records)
        if delivery.received_at is None:
            self._mirror(entry, received)
        return IncomingBatch(batch_id, entry.node_id, entry.division, digest, records,
                             received, schema_version)

    def _node(self, delivery: Delivery, node_id: str | None) -> Any:
        entry = self.registry.get(node_id) if node_id else None
        if entry is None:
            raise Refusal("unknown-node", f"node {node_id!r} is not in the registry", False)
        if delivery.user_id != entry.broker_user:
            raise Refusal("user-mismatch", f"sent by broker user {delivery.user_id!r}, not by "
                          f"node {entry.node_id}'s user {entry.broker_user!r}", False)
        expected = node_routing_key(entry.division, entry.node_id)
        if delivery.routing_key != expected:
            raise Refusal("routing-mismatch", f"routing key {delivery.routing_key!r} is not "
                          f"the node's own {expected!r}", False)
        if entry.status != "active":
            raise Refusal("node-disabled", f"node {entry.node_id} is {entry.status}")
        return entry

    def _verifier(self, delivery: Delivery, entry: Any) -> NodeVerifier:
        raw = delivery.header("x-exgate-key-version")
        version = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        verifier = None if version is None else self.registry.verifier(entry.node_id, version)
        if verifier is None:
            raise Refusal("unknown-key-version", f"node {entry.node_id} has no valid key "
                          f"version {raw!r}")
        return verifier

    def _validate(self, plain: bytes, batch_id: str, node_id: str,
                  delivery: Delivery) -> tuple[list[Record], int]:
        reader = DocumentReader(plain, f"batch {batch_id}")
        records: list[Record] = []
        problems: list[str] = []
        for check in reader:
            if check.record is not None:
                records.append(check.record)
            else:
                problems.extend(_describe(i) for i in check.issues)
        problems[:0] = [_describe(i) for i in reader.issues]
        if problems or reader.head is None:
            raise Refusal("invalid-payload", f"{len(problems)} validation problem(s): "
                          + "; ".join(problems[:5]))
        head = reader.head
        for name, have, want in (("BATCHID", head.batch_id, batch_id),
                                 ("NODEID", head.node_id, node_id)):
            if have is not None and have != want:
                raise Refusal("head-mismatch", f"HEAD/{name} {have!r} differs from {want!r}")
        count = delivery.header("x-exgate-records")
        if count is not None and count != len(records):
            raise Refusal("count-mismatch", f"header x-exgate-records = {count!r}, payload "
                          f"has {len(records)} records")
        return records, head.schema_version

    def _check_divisions(self, division: str, records: list[Record]) -> None:
        # A batch holds the records of a few divisions: each is judged once.
        strangers = {d for d in {r.division for r in records} if not within(division, d)}
        if strangers:
            outside = [r for r in records if r.division in strangers]
            first = outside[0]
            raise Refusal("division-outside", f"{len(outside)} record(s) lie outside the "
                          f"node's division {division}, first {first.element} "
                          f"{first.key_text} with XZQHDM {first.division}")

    def _mirror(self, entry: Any, seen: datetime) -> None:
        last = self._mirrored.get(entry.node_id)
        if last is None or time.monotonic() - last >= MIRROR_EVERY_S:
            self.store.mirror_node(_node_info(entry), seen_at=seen)
            self._mirrored[entry.node_id] = time.monotonic()

    # -- heartbeats --------------------------------------------------------------------

    def heartbeat(self, delivery: Delivery) -> bool:
        """Store one heartbeat from ``exgate.status``; False (dropped) when not authentic.

        A figure no agent can mean (``gateway.status.heartbeat_number``: infinite, or
        beyond any real lag or count) is left out, as if not reported: kept, it would
        break every view of the level.
        """
        try:
            data = json.loads(delivery.body)
            node_id = str(data["node_id"])
        except (ValueError, KeyError, TypeError):
            log.warning(say("heartbeat-not-json", self.lang, key=delivery.routing_key))
            return False
        entry = self.registry.get(node_id)
        # As for batches: RabbitMQ vouches for user_id, topic permissions for the routing
        # key; a heartbeat without them could come from any node naming another.
        if entry is None or delivery.user_id != entry.broker_user or \
                delivery.routing_key != node_routing_key(entry.division, entry.node_id):
            log.warning(say("heartbeat-not-authentic", self.lang, node=node_id[:64],
                            user=delivery.user_id, key=delivery.routing_key),
                        extra={"node_id": node_id[:64]})
            return False
        received = delivery.arrived_at or self.clock()
        self.store.record_heartbeat(Heartbeat(
            node_id, _text(data.get("division")), _when(data.get("at")), received,
            _text(data.get("version")), _outbox(data.get("outbox")),
            heartbeat_number(data.get("source_lag_s")), _text(data.get("last_error"))))
        self._mirror(entry, received)
        return True

    # -- outcomes ----------------------------------------------------------------------

    def _stored(self, batch: IncomingBatch, result: WriteResult) -> Outcome:
        reasons = [c.describe() for c in result.conflicts[:MAX_REASONS]]
        receipt = self._receipt(batch.batch_id, "stored", result.stored, result.duplicates,
                                result.conflict_count, reasons)
        self.store.record_receipt(ReceiptRow(batch.batch_id, batch.node_id, "stored", receipt,
                                             self.clock()))
        ids = {"node_id": batch.node_id, "batch_id": batch.batch_id}
        log.info(say("stored", self.lang, batch=batch.batch_id, node=batch.node_id,
                     stored=result.stored, duplicates=result.duplicates,
                     conflicts=result.conflict_count,
                     again=say("stored-again", self.lang) if result.redelivered else ""),
                 extra=ids)
        if result.conflicts:
            log.warning(say("conflicts", self.lang, batch=batch.batch_id, node=batch.node_id,
                            count=result.conflict_count, reasons="; ".join(reasons[:3])),
                        extra=ids)
        return Outcome("stored", batch.batch_id, batch.node_id, receipt, batch.node_id,
                       result=result)

    def _refuse(self, delivery: Delivery, batch_id: str, node_id: str | None,
                refusal: Refusal, received: datetime) -> Outcome:
        shown = batch_id or NO_BATCH_ID
        # Untrusted, x-exgate-node is only the sender's word: filed under it, one node's
        # messages would turn another node red. The claim stays in the detail.
        sender = node_id if refusal.trusted else self._vouched(delivery)
        detail = refusal.detail if refusal.trusted or node_id is None else \
            f"{refusal.detail} (x-exgate-node claims {node_id!r})"
        log.warning(say("refused", self.lang, batch=shown,
                        node=sender or Localized("（未知）", "?"),
                        reason=refusal.reason, reason_name=reason_name(refusal.reason),
                        detail=detail),
                    extra={"node_id": sender, "batch_id": shown, "reason": refusal.reason})
        self.store.record_failed(FailedBatch(
            shown, sender, refusal.reason, detail, delivery.body,
            delivery.routing_key, dict(delivery.headers), delivery.user_id, received))
        receipt = self._receipt(shown, "failed", 0, 0, 0, [f"{refusal.reason}: {detail}"])
        to = node_id if refusal.trusted else None
        if to is not None:
            self.store.record_receipt(ReceiptRow(shown, to, "failed", receipt, self.clock()))
        return Outcome("failed", shown, sender, receipt, to, reason=refusal.reason)

    def _vouched(self, delivery: Delivery) -> str | None:
        """The node the broker vouches for: its own routing key, published by its user.

        RabbitMQ checks ``user_id`` against the login and topic permissions hold each
        user to its node's routing key; a message matching both is that node's.
        """
        entry = self.registry.get(node_of(delivery.routing_key))
        if entry is None or delivery.user_id != entry.broker_user or \
                delivery.routing_key != node_routing_key(entry.division, entry.node_id):
            return None
        return str(entry.node_id)

    def _receipt(self, batch_id: str, status: str, stored: int, duplicates: int,
                 conflicts: int, reasons: list[str]) -> dict[str, Any]:
        return {"batch_id": batch_id, "level": self.level, "division": self.division,
                "status": status, "stored": stored, "duplicates": duplicates,
                "conflicts": conflicts, "reasons": reasons,
                "at": self.clock().astimezone(BEIJING).isoformat(timespec="seconds")}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _outbox(value: Any) -> dict[str, Any]:
    """The agent's flat outbox figures, without a number that is no reading (1e999 → inf)."""
    if not isinstance(value, dict):
        return {}
    return {str(key): item for key, item in value.items()
            if isinstance(item, bool) or not isinstance(item, int | float)
            or heartbeat_number(item) is not None}


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _describe(issue: Any) -> str:
    where = f"line {issue.line} " if issue.line else ""
    what = "/".join(p for p in (issue.element, issue.field) if p)
    return f"{where}{what + ' ' if what else ''}{issue.code}: {issue.message('en')}"


def _node_info(entry: Any) -> NodeInfo:
    return NodeInfo(entry.node_id, entry.division, entry.broker_user, entry.status,
                    tuple(sorted(k.version for k in entry.keys)))

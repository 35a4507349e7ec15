"""The gateway pipeline with an in-memory store (failure knobs) and a fake registry."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from adapters.amqp.topology import routing_key
from adapters.sealing import NodeKeys, NodeVerifier, generate_node_keys, seal
from adapters.stores.base import (
    BATCH_ID_LENGTH,
    BATCH_ID_REUSED,
    BatchRefused,
    FailedBatch,
    Heartbeat,
    IncomingBatch,
    NodeInfo,
    ReceiptRow,
    WriteResult,
)
from gateway.pipeline import Delivery, Pipeline
from gateway.registry import KeyEntry, NodeEntry
from schemas.errors import RetriableError
from schemas.times import BEIJING
from tests.unit.schemas.documents import document, record

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)


@dataclass
class MemoryStore:
    """The Store contract in memory; ``fail_next`` writes raise RetriableError."""

    fail_next: int = 0
    rows: dict[tuple[str, str, int], str] = field(default_factory=dict)
    batches: dict[str, tuple[str, WriteResult]] = field(default_factory=dict)
    failed: list[FailedBatch] = field(default_factory=list)
    receipts: list[ReceiptRow] = field(default_factory=list)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    seen: dict[str, datetime | None] = field(default_factory=dict)
    received: dict[str, datetime] = field(default_factory=dict)

    def write(self, batch: IncomingBatch) -> WriteResult:
        if self.fail_next:
            self.fail_next -= 1
            raise RetriableError("store away (knob)")
        if batch.batch_id in self.batches:
            sha, result = self.batches[batch.batch_id]
            if sha != batch.payload_sha256:
                raise BatchRefused("batch-id-reused", f"{BATCH_ID_REUSED}: {batch.batch_id}")
            return replace(result, redelivered=True)
        stored = duplicates = 0
        for r in batch.records:
            ident = (r.element, r.key_text, r.version)
            if ident in self.rows:
                duplicates += 1
            else:
                self.rows[ident] = r.digest()
                stored += 1
        result = WriteResult(batch.batch_id, stored, duplicates)
        self.batches[batch.batch_id] = (batch.payload_sha256, result)
        self.received[batch.batch_id] = batch.received_at
        return result

    def record_failed(self, failed: FailedBatch) -> None:
        self.failed.append(failed)

    def record_receipt(self, receipt: ReceiptRow) -> None:
        self.receipts.append(receipt)

    def record_heartbeat(self, heartbeat: Heartbeat) -> None:
        self.heartbeats.append(heartbeat)

    def mirror_node(self, node: NodeInfo, seen_at: datetime | None = None) -> None:
        self.nodes[node.node_id] = node
        self.seen[node.node_id] = seen_at

    def batch_state(self, batch_id: str) -> str | None:
        return "stored" if batch_id in self.batches else None

    def close(self) -> None:
        pass


@dataclass
class FakeRegistry:
    entries: dict[str, NodeEntry] = field(default_factory=dict)
    verifiers: dict[tuple[str, int], NodeVerifier] = field(default_factory=dict)

    def add(self, keys: NodeKeys, division: str, status: str = "active") -> None:
        entry = NodeEntry(keys.node_id, division, f"u-{keys.node_id}", status,
                          (KeyEntry(keys.key_version, "-", "-"),))
        self.entries[keys.node_id] = entry
        self.verifiers[(keys.node_id, keys.key_version)] = keys.verifier()

    def get(self, node_id: str) -> NodeEntry | None:
        return self.entries.get(node_id)

    def verifier(self, node_id: str, key_version: int) -> NodeVerifier | None:
        entry = self.entries.get(node_id)
        if entry is None or entry.status != "active":
            return None
        return self.verifiers.get((node_id, key_version))


@pytest.fixture
def keys() -> NodeKeys:
    return generate_node_keys("n1", 1)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def registry(keys: NodeKeys) -> FakeRegistry:
    fake = FakeRegistry()
    fake.add(keys, "430102")
    return fake


@pytest.fixture
def pipeline(registry: FakeRegistry, store: MemoryStore) -> Pipeline:
    return Pipeline("430100", registry, store, clock=lambda: NOW)


def plain(batch_id: str = "B1", node_id: str = "n1", head: dict[str, str] | None = None,
          recs: list[tuple[str, dict[str, str]]] | None = None) -> bytes:
    recs = recs if recs is not None else [record("SBXX"), record("SL")]
    return document(recs, head={"BATCHID": batch_id, "NODEID": node_id,
                                "COUNT": str(len(recs)), **(head or {})})


def delivery(keys: NodeKeys, xml: bytes, batch_id: str = "B1", *, division: str = "430102",
             body: bytes | None = None, **changes: Any) -> Delivery:
    headers = {"x-exgate-node": keys.node_id, "x-exgate-key-version": keys.key_version,
               "x-exgate-schema-version": 1, "x-exgate-records": xml.count(b"<SJBBH>"),
               "x-exgate-sha256": hashlib.sha256(xml).hexdigest()}
    headers.update(changes.pop("headers", {}))
    made = Delivery(routing_key(division, keys.node_id),
                    seal(xml, keys, batch_id) if body is None else body, batch_id,
                    f"u-{keys.node_id}", headers)
    return replace(made, **changes)


def test_a_good_batch_is_stored_with_a_receipt(pipeline: Pipeline, store: MemoryStore,
                                               keys: NodeKeys) -> None:
    outcome = pipeline.handle(delivery(keys, plain()))
    assert outcome.status == "stored" and outcome.receipt_to == "n1"
    receipt = outcome.receipt
    assert {k: receipt[k] for k in ("batch_id", "level", "division", "status", "stored",
                                    "duplicates", "conflicts", "reasons")} == {
        "batch_id": "B1", "level": "city", "division": "430100", "status": "stored",
        "stored": 2, "duplicates": 0, "conflicts": 0, "reasons": []}
    assert receipt["at"] == "2026-11-20T10:00:00+08:00"
    assert [r.status for r in store.receipts] == ["stored"]
    assert store.nodes["n1"].division == "430102"
    assert not store.failed


def test_a_replayed_batch_keeps_its_arrival_and_is_no_contact_from_the_node(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys) -> None:
    arrived = datetime(2026, 11, 17, 9, 0)  # as ST_FAILED_BATCH keeps it: naive Beijing
    outcome = pipeline.handle(delivery(keys, plain(), received_at=arrived))
    assert outcome.status == "stored" and [r.status for r in store.receipts] == ["stored"]
    assert store.received == {"B1": arrived}
    assert store.seen == {}
    pipeline.handle(delivery(keys, plain("B2"), "B2"))
    assert (store.received["B2"], store.seen) == (NOW, {"n1": NOW})


def test_a_batch_held_through_an_outage_keeps_the_time_it_arrived(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys) -> None:
    arrived = NOW - timedelta(minutes=4)  # taken from the queue, then held while away
    assert pipeline.handle(delivery(keys, plain(), arrived_at=arrived)).status == "stored"
    assert (store.received, store.seen) == ({"B1": arrived}, {"n1": arrived})


def test_a_redelivered_batch_gets_the_same_receipt(pipeline: Pipeline, keys: NodeKeys) -> None:
    message = delivery(keys, plain())
    first = pipeline.handle(message)
    again = pipeline.handle(replace(message, redelivered=True))
    assert again.status == "stored" and again.result is not None and again.result.redelivered
    assert again.receipt == first.receipt


def test_a_store_outage_propagates_and_nothing_is_failed(pipeline: Pipeline,
                                                         store: MemoryStore,
                                                         keys: NodeKeys) -> None:
    store.fail_next = 1
    message = delivery(keys, plain())
    with pytest.raises(RetriableError):
        pipeline.handle(message)
    assert not store.failed and not store.receipts
    assert pipeline.handle(message).status == "stored"


def refused(pipeline: Pipeline, store: MemoryStore, message: Delivery, reason: str,
            caplog: pytest.LogCaptureFixture, trusted: bool = True) -> None:
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        outcome = pipeline.handle(message)
    assert (outcome.status, outcome.reason) == ("failed", reason)
    assert outcome.receipt["status"] == "failed"
    assert outcome.receipt["reasons"][0].startswith(reason)
    assert outcome.receipt_to == ("n1" if trusted else None)
    kept = store.failed[-1]
    assert (kept.reason, kept.batch_id, kept.body) == (reason, message.message_id or "-",
                                                       message.body)
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert reason in warning.getMessage() and str(message.message_id) in warning.getMessage()
    assert "n1" in warning.getMessage() or not trusted
    assert not store.batches


def test_an_unknown_node_is_refused(pipeline: Pipeline, store: MemoryStore,
                                    caplog: pytest.LogCaptureFixture) -> None:
    stranger = generate_node_keys("n9", 1)
    refused(pipeline, store, delivery(stranger, plain(node_id="n9")), "unknown-node", caplog,
            trusted=False)


def test_a_node_speaking_with_another_broker_user_is_refused(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    message = delivery(keys, plain(), user_id="u-n2")
    refused(pipeline, store, message, "user-mismatch", caplog, trusted=False)


def test_a_routing_key_outside_the_node_is_refused(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    message = delivery(keys, plain(), division="430103")
    refused(pipeline, store, message, "routing-mismatch", caplog, trusted=False)


def test_a_message_naming_another_node_is_filed_under_the_node_the_broker_vouches_for(
        pipeline: Pipeline, store: MemoryStore, registry: FakeRegistry,
        keys: NodeKeys) -> None:
    # n2 publishes with its own user and routing key (all the broker lets it) but names n1.
    n2 = generate_node_keys("n2", 1)
    registry.add(n2, "430102")
    forged = replace(delivery(n2, plain(node_id="n2")), headers={"x-exgate-node": "n1"})
    assert pipeline.handle(forged).node_id == "n2"
    # A stranger's message names a node nothing vouches for: filed under no node at all.
    stranger = delivery(generate_node_keys("n9", 1), plain(node_id="n9"), "B2",
                        headers={"x-exgate-node": "n1"})
    assert pipeline.handle(stranger).receipt_to is None
    assert [(f.node_id, f.reason) for f in store.failed] == \
        [("n2", "user-mismatch"), (None, "user-mismatch")]
    assert all(f.detail.endswith("(x-exgate-node claims 'n1')") for f in store.failed)


def test_a_batch_id_longer_than_the_store_keeps_is_refused(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    # Sealed and signed with that ID (HEAD/BATCHID is optional), so only its length is
    # wrong: a store column would refuse it on every attempt, holding the batch forever.
    long_id = "B" * (BATCH_ID_LENGTH + 1)
    xml = document([record("SBXX")], head={"NODEID": "n1", "COUNT": "1"})
    message = delivery(keys, xml, long_id)
    refused(pipeline, store, message, "bad-batch-id", caplog, trusted=False)


def test_a_disabled_node_is_refused(pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
                                    registry: FakeRegistry,
                                    caplog: pytest.LogCaptureFixture) -> None:
    registry.add(keys, "430102", status="disabled")
    refused(pipeline, store, delivery(keys, plain()), "node-disabled", caplog)


def test_a_forged_signature_is_refused(pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
                                       caplog: pytest.LogCaptureFixture) -> None:
    forger = NodeKeys("n1", 1, generate_node_keys("x").signing_key, keys.dek)
    body = seal(plain(), forger, "B1")
    refused(pipeline, store, delivery(keys, plain(), body=body), "bad-signature", caplog)


def test_a_tampered_ciphertext_is_refused(pipeline: Pipeline, store: MemoryStore,
                                          keys: NodeKeys,
                                          caplog: pytest.LogCaptureFixture) -> None:
    body = bytearray(seal(plain(), keys, "B1"))
    body[30] ^= 0x01
    refused(pipeline, store, delivery(keys, plain(), body=bytes(body)), "bad-signature", caplog)


def test_a_body_replayed_under_another_batch_id_fails_to_decrypt(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    body = seal(plain(), keys, "B1")
    message = delivery(keys, plain(), "B2", body=body)
    refused(pipeline, store, message, "bad-ciphertext", caplog)


def test_a_sha256_header_that_does_not_match_is_refused(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    message = delivery(keys, plain(), headers={"x-exgate-sha256": "0" * 64})
    refused(pipeline, store, message, "sha256-mismatch", caplog)


def test_an_invalid_record_fails_the_whole_batch(pipeline: Pipeline, store: MemoryStore,
                                                 keys: NodeKeys,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    xml = plain(recs=[record("SBXX"), record("SL", SLZT="7")])
    refused(pipeline, store, delivery(keys, xml), "invalid-payload", caplog)
    assert "SLZT" in store.failed[-1].detail


def test_a_head_naming_another_batch_is_refused(pipeline: Pipeline, store: MemoryStore,
                                                keys: NodeKeys,
                                                caplog: pytest.LogCaptureFixture) -> None:
    refused(pipeline, store, delivery(keys, plain(batch_id="B7")), "head-mismatch", caplog)


def test_records_outside_the_node_division_are_refused(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    # Valid as a document (the HEAD claims the province), but the node is a county's.
    xml = plain(head={"XZQHDM": "430000"}, recs=[record("SBXX", XZQHDM="430000")])
    refused(pipeline, store, delivery(keys, xml), "division-outside", caplog)


def test_a_refusal_for_divisions_counts_every_record_outside_and_names_the_first(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    # Each division is judged once per batch; the detail still counts records.
    divisions = ["430102", "430200", "430103", "430000", "430200"]
    xml = plain(head={"XZQHDM": "430000"}, recs=[
        record("SBXX", XZQHDM=division, SBLSH=f"SB{n}") for n, division in enumerate(divisions)])
    refused(pipeline, store, delivery(keys, xml), "division-outside", caplog)
    assert store.failed[-1].detail == ("3 record(s) lie outside the node's division 430102, "
                                       "first SBXX SB1 with XZQHDM 430200")


def test_a_batch_id_reused_for_other_content_is_refused(
        pipeline: Pipeline, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture) -> None:
    assert pipeline.handle(delivery(keys, plain())).status == "stored"
    other = plain(recs=[record("SBXX", SBLSH="SB0009")])
    refused_message = delivery(keys, other)
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        outcome = pipeline.handle(refused_message)
    assert (outcome.status, outcome.reason) == ("failed", "batch-id-reused")
    assert store.failed[-1].body == refused_message.body
    assert "batch id reused" in caplog.records[-1].getMessage()


LOGGED = {
    None: ["节点 n1 的批次 B1 已入库：新入库 2 条，重复 0 条，冲突 0 条",
           "节点 n1 的批次 B1 已入库：新入库 2 条，重复 0 条，冲突 0 条（重新投递，内容未变）",
           "拒收节点 （未知） 的批次 B2：节点未登记（unknown-node）：node 'n9' is not in the registry "
           "(x-exgate-node claims 'n9')"],
    "en": ["stored batch B1 from node n1: 2 stored, 0 duplicates, 0 conflicts",
           "stored batch B1 from node n1: 2 stored, 0 duplicates, 0 conflicts (redelivered, "
           "unchanged)",
           "refused batch B2 from node ?: unknown-node: node 'n9' is not in the registry "
           "(x-exgate-node claims 'n9')"],
}


@pytest.mark.parametrize("lang", [None, "en"])
def test_the_log_is_chinese_by_default_and_english_with_lang_en(
        registry: FakeRegistry, store: MemoryStore, keys: NodeKeys,
        caplog: pytest.LogCaptureFixture, lang: str | None) -> None:
    pipeline = Pipeline("430100", registry, store) if lang is None else \
        Pipeline("430100", registry, store, lang=lang)
    stranger = generate_node_keys("n9", 1)
    with caplog.at_level(logging.INFO, logger="exgate.gateway"):
        pipeline.handle(delivery(keys, plain()))
        pipeline.handle(delivery(keys, plain(), redelivered=True))
        pipeline.handle(delivery(stranger, plain("B2", node_id="n9"), "B2"))
    assert [r.getMessage() for r in caplog.records] == LOGGED[lang]
    assert [(r.batch_id, r.node_id) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("B1", "n1"), ("B1", "n1"), ("B2", None)]


def test_a_heartbeat_is_stored_and_a_stranger_s_dropped(pipeline: Pipeline, store: MemoryStore,
                                                        keys: NodeKeys) -> None:
    body = json.dumps({"node_id": "n1", "division": "430102", "at": "2026-11-20T09:59:00+08:00",
                       "version": "0.1.0", "outbox": {"pending_batches": 2},
                       "source_lag_s": 3.5, "last_error": None}).encode()
    beat = Delivery("430000.430100.430102.n1", body, None, "u-n1", {})
    assert pipeline.heartbeat(beat)
    stored = store.heartbeats[-1]
    assert (stored.node_id, stored.source_lag_s, stored.outbox) == ("n1", 3.5,
                                                                    {"pending_batches": 2})
    assert not pipeline.heartbeat(replace(beat, user_id="u-n2"))
    assert not pipeline.heartbeat(replace(beat, body=b"not json"))
    assert len(store.heartbeats) == 1


def test_a_heartbeat_is_dropped_unless_the_node_itself_sent_it(
        pipeline: Pipeline, store: MemoryStore, registry: FakeRegistry) -> None:
    # Node n2 may publish on exgate.status with its own routing key only, but it can leave
    # user_id out and name n1 in the body: n1 would look alive while it is down.
    registry.add(generate_node_keys("n2", 1), "430103")
    body = json.dumps({"node_id": "n1", "division": "430102", "source_lag_s": 0}).encode()
    own = Delivery(routing_key("430102", "n1"), body, None, "u-n1", {})
    assert not pipeline.heartbeat(replace(own, user_id=None))
    assert not pipeline.heartbeat(replace(own, routing_key=routing_key("430103", "n2")))
    assert not pipeline.heartbeat(replace(own, routing_key=routing_key("430103", "n2"),
                                          user_id="u-n2"))
    assert store.heartbeats == []
    assert pipeline.heartbeat(own)
    assert [h.node_id for h in store.heartbeats] == ["n1"]


@pytest.mark.parametrize("figure", ["1e999", "-1e999", "NaN", "Infinity", "1" + "0" * 400,
                                    "1e13"])
def test_a_heartbeat_figure_no_agent_can_mean_is_stored_as_unknown(
        pipeline: Pipeline, store: MemoryStore, figure: str) -> None:
    # Valid JSON to Python's parser (1e999 is inf): kept, one node's beat broke the
    # dashboard, /status.json and /metrics of the whole level.
    body = (f'{{"node_id": "n1", "division": "430102", "source_lag_s": {figure}, "outbox": '
            f'{{"pending_batches": {figure}, "unbatched_records": 7, "note": "x"}}}}').encode()
    assert pipeline.heartbeat(Delivery(routing_key("430102", "n1"), body, None, "u-n1", {}))
    stored = store.heartbeats[-1]
    assert stored.source_lag_s is None
    assert stored.outbox == {"unbatched_records": 7, "note": "x"}

"""The gateway against a real RabbitMQ: sealed batches in, rows and receipts out.

Each test gets a fresh vhost (``amqp_url``); the publisher is that vhost's
administrator, registered as the node's broker user so ``user_id`` checks pass. The
topology is declared first, except for a test that asks for a bare vhost (``world``
parametrized indirectly with False).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pytest
import sqlalchemy as sa

from adapters.amqp.topology import (
    DEAD_EXCHANGE,
    RECEIPTS_EXCHANGE,
    RECORDS_EXCHANGE,
    STATUS_EXCHANGE,
    dead_queue,
    declare_node_queues,
    declare_topology,
    holding_queue_arguments,
    level_queue,
    level_queue_arguments,
    receipts_queue,
    routing_key,
    status_queue,
)
from adapters.sealing import NodeKeys, generate_node_keys, seal
from adapters.sources.base import Chunk, Origin
from adapters.stores.sql import SqlStore
from frontend_machine import heartbeat as agent_heartbeat
from frontend_machine.envelope import Envelope, NodeIdentity, build_envelope
from frontend_machine.link import Delivery
from frontend_machine.link import Verdict as AgentVerdict
from frontend_machine.outbox import Outbox
from frontend_machine.outbox_batches import BatchState
from frontend_machine.receipts import apply_receipt
from frontend_machine.replay import requeue_batches
from gateway.broker_node import LocalBroker
from gateway.config import GatewaySettings
from gateway.consumer import Consumer, _Session
from gateway.mgmt_api import ManagementApi
from gateway.pipeline import Pipeline
from gateway.poison import POISON_REASON
from gateway.registry import Registry
from gateway.replay import Replayer, failed_rows
from gateway.replay_receipts import BrokerReceipts
from gateway.worker import Verdict
from schemas.reader import DocumentReader
from schemas.record_check import RecordCheck
from schemas.records import Record
from schemas.writer import record_xml
from tests.integration.amqp_helpers import drain_gateway, vhost_of, wait_for
from tests.unit.schemas.documents import document, record

LEVEL = "430100"
SETTINGS = GatewaySettings(workers=2, prefetch=4, hold_seconds=120, drain_idle_seconds=1.0)


def records(*specs: tuple[str, dict[str, str]]) -> list[Record]:
    return [c.record for c in DocumentReader(document(specs), "t") if c.record is not None]


def sealed(batch_id: str, recs: list[Record], node: NodeIdentity) -> Envelope:
    """The message the publisher sends for these records (it seals their XML)."""
    return build_envelope(batch_id, [record_xml(r) for r in recs], node)


class World:
    """A vhost with the topology, a registered node, a store and a publisher.

    With ``topology`` False nothing is declared on the vhost: not the exchanges, not the
    level's queues, not the node's receipts queue."""

    def __init__(self, amqp_url: str, tmp_path: Path, *, topology: bool = True) -> None:
        self.url = amqp_url
        self.user = unquote(urlsplit(amqp_url).username or "")
        self.keys = generate_node_keys("n1", 1)
        self.registry = Registry(tmp_path / "registry")
        self.registry.add("n1", "430102", self.user, self.keys.verifier())
        self.node = NodeIdentity("n1", "430102", self.user, self.keys)
        self.store_path = tmp_path / "store.db"
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        if topology:
            declare_topology(self.channel, [LEVEL])
            declare_node_queues(self.channel, "n1")
        self.channel.confirm_delivery()

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def publish(self, batch_id: str, recs: list[Record], *, body: bytes | None = None,
                node_id: str = "n1", **headers: Any) -> None:
        envelope = sealed(batch_id, recs, self.node)
        props = envelope.properties
        props.headers = {**(props.headers or {}), "x-exgate-node": node_id, **headers}
        self.channel.basic_publish(RECORDS_EXCHANGE, routing_key("430102", node_id),
                                   envelope.body if body is None else body, props,
                                   mandatory=True)

    def receipts(self) -> list[dict[str, Any]]:
        found = []
        while True:
            method, _, body = self.channel.basic_get(receipts_queue("n1"), auto_ack=True)
            if method is None:
                return found
            found.append(json.loads(body))

    def consumer(self, store: SqlStore, cls: type[Consumer] = Consumer, *,
                 workers: int = SETTINGS.workers,
                 stop: threading.Event | None = None) -> Consumer:
        """A level consumer that drains the queues, or, given ``stop``, consumes until
        it is set (for a test that publishes while it runs)."""
        return cls(self.url, Pipeline(LEVEL, self.registry, store),
                   replace(SETTINGS, workers=workers, prefetch=max(workers, SETTINGS.prefetch)),
                   drain=stop is None, stop=stop)


@pytest.fixture
def world(amqp_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    # ``request.param`` is the ``topology`` flag of a test parametrizing ``world`` indirectly.
    made = World(amqp_url, tmp_path, topology=getattr(request, "param", True))
    yield made
    made.close()


@pytest.fixture
def store(world: World) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{world.store_path}", sqlite_busy_s=0.2)
    opened.migrate()
    yield opened
    opened.close()


def rows(store: SqlStore, table: sa.Table) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(table)).mappings())


def test_a_sealed_batch_is_stored_and_receipted(world: World, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[level]\ndivision = "{LEVEL}"\n[broker]\nurl = "{world.url}"\n'
                      f'[store]\nurl = "sqlite:///store.db"\n[registry]\npath = "registry"\n'
                      '[gateway]\nworkers = 2\ndrain_idle_seconds = 1\n')
    world.publish("B1", records(record("SBXX"), record("SL"), record("SPGC")))
    drain_gateway(config)
    store = SqlStore(f"sqlite:///{world.store_path}")
    try:
        assert len(rows(store, store.schema.elements["SPGC"].table)) == 1
        batch = rows(store, store.schema.batch)
        assert [(b[store.schema.batch.c.BATCH_ID.name], b[store.schema.batch.c.STORED.name])
                for b in batch] == [("B1", 3)]
        assert store.batch_state("B1") == "stored"
    finally:
        store.close()
    [receipt] = world.receipts()
    assert (receipt["batch_id"], receipt["status"], receipt["stored"], receipt["level"]) == \
        ("B1", "stored", 3, "city")


class _DiesBeforeAck(Consumer):
    """Stores, then loses its connection instead of acking: a kill between commit and ack."""

    def _finish(self, session: _Session, tag: int, verdict: Verdict) -> None:
        session.in_flight -= 1
        self.stop.set()
        session.connection.close()


def test_a_redelivered_batch_leaves_the_store_unchanged(world: World, store: SqlStore,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    world.publish("B1", records(record("SBXX"), record("BJ")))
    world.consumer(store, _DiesBeforeAck).run()
    before = rows(store, store.schema.elements["SBXX"].table)
    assert len(before) == 1 and world.receipts() == []
    with caplog.at_level(logging.INFO, logger="exgate.gateway"):
        world.consumer(store).run()
    assert any(r.getMessage().startswith("批次 B1 被重新投递") for r in caplog.records)
    assert rows(store, store.schema.elements["SBXX"].table) == before
    assert len(rows(store, store.schema.batch)) == 1
    [receipt] = world.receipts()
    assert (receipt["status"], receipt["stored"], receipt["duplicates"]) == ("stored", 2, 0)
    assert rows(store, store.schema.failed) == []


def test_a_nodes_batches_are_stored_in_the_order_they_came(world: World, store: SqlStore
                                                           ) -> None:
    """Four workers: a large batch, then a small one holding a conflicting copy of one of
    its records. Stored in parallel, the small one would usually commit first and its
    copy be kept here, while another level (one worker) keeps the first: the levels must
    agree, so one node's batches are stored in the order they came. (B0 first: a
    gateway's first batch builds what the others reuse, and would keep them waiting.)"""
    world.publish("B0", records(record("SBXX", SBLSH="WARM")))
    first = [record("SBXX", SBLSH=f"SB{n:05d}") for n in range(400)]
    world.publish("B1", records(*first))
    world.publish("B2", records(record("SBXX", SBLSH="SB00399", SQRMC="后来的内容")))
    world.consumer(store, workers=4).run()
    sbxx = store.schema.elements["SBXX"].table
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(sbxx.c.SQRMC, sbxx.c.BATCH_ID)
                            .where(sbxx.c.SBLSH == "SB00399")).one()
    assert tuple(kept) == ("张三", "B1")
    [conflict] = rows(store, store.schema.conflict)
    assert (conflict["KEY_TEXT"], conflict["BATCH_ID"]) == ("SB00399", "B2")
    assert sorted((r["batch_id"], r["status"]) for r in world.receipts()) == \
        [("B0", "stored"), ("B1", "stored"), ("B2", "stored")]


def test_batches_wait_while_the_store_is_locked_then_land(world: World, store: SqlStore,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    locker = sqlite3.connect(world.store_path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    world.publish("B1", records(record("SBXX")))
    world.publish("B2", records(record("SL"), record("BJ")))
    held = threading.Event()

    def release_once_held() -> None:
        held.wait(timeout=60)
        time.sleep(1.0)  # some retries happen against the locked file
        locker.execute("COMMIT")
        locker.close()

    class _Watch(logging.Handler):
        def emit(self, log_record: logging.LogRecord) -> None:
            if "暂存重试" in log_record.getMessage():  # "held", in the default Chinese
                held.set()

    watch = _Watch()
    logging.getLogger("exgate.gateway").addHandler(watch)
    releaser = threading.Thread(target=release_once_held)
    releaser.start()
    try:
        with caplog.at_level(logging.INFO, logger="exgate.gateway"):
            world.consumer(store).run()
    finally:
        logging.getLogger("exgate.gateway").removeHandler(watch)
        releaser.join(timeout=60)
    assert held.is_set()
    assert not any("被重新投递" in r.getMessage() for r in caplog.records)
    assert store.batch_state("B1") == store.batch_state("B2") == "stored"
    assert rows(store, store.schema.failed) == []
    assert sorted(r["batch_id"] for r in world.receipts()) == ["B1", "B2"]


def _forged(world: World, batch_id: str, recs: list[Record]) -> bytes:
    forger = NodeKeys("n1", 1, generate_node_keys("x").signing_key, world.keys.dek)
    return sealed(batch_id, recs, NodeIdentity("n1", "430102", world.user,
                                                       forger)).body


def test_every_security_case_is_refused_kept_and_logged(world: World, store: SqlStore,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    good = records(record("SBXX"))
    world.publish("OK1", good)
    world.consumer(store).run()  # stored first: two workers would race the reused ID below
    world.publish("FORGED", good, body=_forged(world, "FORGED", good))
    tampered = bytearray(sealed("TAMPERED", good, world.node).body)
    tampered[40] ^= 0xFF
    world.publish("TAMPERED", good, body=bytes(tampered))
    world.publish("STRANGER", good, node_id="n9")
    world.publish("OK1", records(record("SL")))  # the same batch ID, other content
    # A node crafting its own HEAD (the province's) to smuggle a record past validation.
    xml = document([record("SBXX", XZQHDM="430000")],
                   head={"XZQHDM": "430000", "BATCHID": "OUTSIDE", "NODEID": "n1"})
    world.publish("OUTSIDE", good, body=seal(xml, world.keys, "OUTSIDE"),
                  **{"x-exgate-sha256": hashlib.sha256(xml).hexdigest()})
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        world.consumer(store).run()
    f = store.schema.failed
    reasons = {(r[f.c.BATCH_ID.name], r[f.c.REASON.name]) for r in rows(store, f)}
    assert reasons == {("FORGED", "bad-signature"), ("TAMPERED", "bad-signature"),
                       ("STRANGER", "unknown-node"), ("OK1", "batch-id-reused"),
                       ("OUTSIDE", "division-outside")}
    assert all(r[f.c.BODY.name] for r in rows(store, f))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for batch_id, reason in reasons:
        assert any(batch_id in w and reason in w for w in warnings), (batch_id, reason)
    assert store.batch_state("OK1") == "stored"
    assert len(rows(store, store.schema.elements["SBXX"].table)) == 1
    assert rows(store, store.schema.elements["SL"].table) == []
    receipts = {(r["batch_id"], r["status"]) for r in world.receipts()}
    assert ("OK1", "stored") in receipts and ("FORGED", "failed") in receipts
    assert ("STRANGER", "failed") not in receipts  # no receipt for an unproven sender


def test_a_replayed_body_under_a_new_batch_id_does_not_decrypt(world: World, store: SqlStore
                                                               ) -> None:
    good = records(record("SBXX"))
    body = seal(b"<x/>", world.keys, "OLD")
    world.publish("NEW", good, body=body)
    world.consumer(store).run()
    f = store.schema.failed
    assert [(r[f.c.BATCH_ID.name], r[f.c.REASON.name]) for r in rows(store, f)] == \
        [("NEW", "bad-ciphertext")]


def test_heartbeats_from_the_status_queue_are_stored(world: World, store: SqlStore) -> None:
    beat = {"node_id": "n1", "division": "430102", "at": "2026-11-20T10:00:00+08:00",
            "version": "0.1.0", "outbox": {"pending_batches": 0}, "source_lag_s": 0.5,
            "last_error": None}
    world.channel.basic_publish("exgate.status", routing_key("430102", "n1"),
                                json.dumps(beat).encode(),
                                pika.BasicProperties(user_id=world.user))
    world.consumer(store).run()
    h = store.schema.heartbeat
    [row] = rows(store, h)
    assert (row[h.c.NODE_ID.name], row[h.c.SOURCE_LAG_S.name]) == ("n1", 0.5)


def test_the_other_refusals_are_kept_against_the_real_broker(world: World, store: SqlStore,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    good = records(record("SBXX"))
    world.publish("SHA", good, **{"x-exgate-sha256": "0" * 64})
    world.publish("KEYV", good, **{"x-exgate-key-version": 7})
    bomb = seal(bytes(64 * 1024), world.keys, "BOMB")  # inflates past the 32 KiB cap below
    world.publish("BOMB", good, body=bomb)
    world.publish("L" * 101, good)
    # The vhost administrator may publish under any key: the gateway still checks it.
    envelope = sealed("ROUTED", good, world.node)
    world.channel.basic_publish(RECORDS_EXCHANGE, routing_key("430103", "n1"), envelope.body,
                                envelope.properties, mandatory=True)
    anonymous = sealed("NOUSER", good, world.node)
    anonymous.properties.user_id = None
    world.channel.basic_publish(RECORDS_EXCHANGE, routing_key("430102", "n1"), anonymous.body,
                                anonymous.properties, mandatory=True)
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        Consumer(world.url, Pipeline(LEVEL, world.registry, store, max_plain_bytes=32 * 1024),
                 SETTINGS, drain=True).run()
    world.registry.disable("n1")
    world.publish("OFF", good)
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        world.consumer(store).run()
    f = store.schema.failed
    reasons = {(r[f.c.BATCH_ID.name], r[f.c.REASON.name]) for r in rows(store, f)}
    assert reasons == {("SHA", "sha256-mismatch"), ("KEYV", "unknown-key-version"),
                       ("BOMB", "too-large"), ("L" * 100, "bad-batch-id"),
                       ("ROUTED", "routing-mismatch"), ("NOUSER", "user-mismatch"),
                       ("OFF", "node-disabled")}
    assert rows(store, store.schema.batch) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for batch_id, reason in reasons:
        assert any(batch_id in w and reason in w for w in warnings), (batch_id, reason)
    assert not any(world.keys.dek.hex() in w or "password" in w for w in warnings)
    receipts = {(r["batch_id"], r["status"]) for r in world.receipts()}
    assert receipts == {("SHA", "failed"), ("KEYV", "failed"), ("BOMB", "failed"),
                        ("OFF", "failed")}  # none to a sender not proven to be the node


def test_a_heartbeat_naming_another_node_is_dropped(world: World, store: SqlStore) -> None:
    beat = json.dumps({"node_id": "n1", "division": "430102", "source_lag_s": 0}).encode()
    # No user_id: RabbitMQ vouches for nobody, so it may come from any node.
    world.channel.basic_publish("exgate.status", routing_key("430102", "n1"), beat,
                                pika.BasicProperties())
    world.consumer(store).run()
    assert rows(store, store.schema.heartbeat) == []


def test_a_batch_that_keeps_failing_is_kept_as_failed_then_replays_once_fixed(
        world: World, store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    # A table the store lacks: no wait cures it. Before, every delivery was held
    # hold_seconds and requeued, 20 times, blocking a worker and a prefetch slot each time.
    store.schema.elements["SL"].table.drop(store.engine)
    world.publish("GOOD", records(record("SBXX")))
    world.publish("POISON", records(record("SL"), record("SBXX", SBLSH="x2")))
    settings = replace(SETTINGS, hold_seconds=5)
    with caplog.at_level(logging.ERROR, logger="exgate.gateway"):
        Consumer(world.url, Pipeline(LEVEL, world.registry, store), settings, drain=True).run()
    f = store.schema.failed
    [kept] = rows(store, f)
    assert (kept[f.c.BATCH_ID.name], kept[f.c.REASON.name]) == ("POISON", POISON_REASON)
    assert "no such table" in kept[f.c.DETAIL.name] and kept[f.c.BODY.name]
    assert (store.batch_state("GOOD"), store.batch_state("POISON")) == ("stored", "failed")
    assert {(r["batch_id"], r["status"]) for r in world.receipts()} == {
        ("GOOD", "stored"), ("POISON", "failed")}
    assert any("POISON" in r.getMessage() and POISON_REASON in r.getMessage()
               for r in caplog.records)
    for queue in (level_queue(LEVEL), dead_queue(LEVEL)):   # acked, not dead-lettered
        assert world.channel.queue_declare(queue, passive=True).method.message_count == 0
    store.schema.elements["SL"].table.create(store.engine)   # the operator fixes the store
    [failed] = failed_rows(store, ["POISON"])
    result = Replayer(LEVEL, world.registry, store).replay(failed)
    assert (result.status, result.stored) == ("stored", 2)
    assert store.batch_state("POISON") == "stored"
    assert failed_rows(store, ["POISON"]) == []


def test_a_refused_batch_the_level_stores_on_replay_is_no_longer_failed_at_the_node(
        world: World, store: SqlStore, tmp_path: Path) -> None:
    # Refused while the node was disabled, replayed at the level once it was enabled:
    # the node's outbox kept the batch failed, "failed at city", for --all-failed to resend.
    recs = records(record("SBXX"))
    with Outbox(tmp_path / "outbox.db") as box:
        box.journal("src", Chunk(((Origin("src", "a.xml", 1),
                                   RecordCheck("SBXX", 1, recs[0], ())),)))
        [batch_id] = box.seal_batches(10, 1 << 20, 0)
        box.mark_sent(batch_id)
        world.registry.disable("n1")
        world.publish(batch_id, recs)
        world.consumer(store).run()
        world.registry.enable("n1")
        [failed] = failed_rows(store, [batch_id])
        receipts = BrokerReceipts(world.url)
        try:
            result = Replayer(LEVEL, world.registry, store, send_receipt=receipts).replay(failed)
        finally:
            receipts.close()
        assert result.status == "stored" and result.receipt is not None and result.receipt.sent
        refused, stored = [json.dumps(r).encode() for r in world.receipts()]
        assert [json.loads(r)["status"] for r in (refused, stored)] == ["failed", "stored"]
        for body in (refused, stored, refused):  # the refusal redelivered after the stored
            assert apply_receipt(box, Delivery(body, batch_id, False)) is AgentVerdict.ACK
        info = box.batch(batch_id)
        assert info is not None and (info.state, info.last_error) == (BatchState.SENT, None)
        assert [(r["level"], r["status"]) for r in box.receipts_of(batch_id)] == [
            ("city", "stored")]
        assert requeue_batches(box, [], all_failed=True, dry_run=True) == []


def test_a_level_queue_an_older_exgate_declared_is_consumed_as_it_is(
        world: World, store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    """Its arguments cannot change (RabbitMQ refuses with PRECONDITION_FAILED): the
    gateway consumes it as it stands and says how to take this version's arguments."""
    older = {"x-queue-type": "quorum", "x-delivery-limit": 20,
             "x-dead-letter-exchange": "exgate.dead",
             "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    world.channel.queue_delete(level_queue(LEVEL))
    world.channel.queue_declare(level_queue(LEVEL), durable=True, arguments=older)
    world.channel.queue_bind(level_queue(LEVEL), RECORDS_EXCHANGE, "430000.430100.#")
    world.publish("B1", records(record("SBXX")))
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        world.consumer(store).run()
    assert store.batch_state("B1") == "stored"
    [warning] = [r.getMessage() for r in caplog.records
                 if "按现有参数消费本级队列" in r.getMessage()]
    assert "x-dead-letter-routing-key" in warning and level_queue(LEVEL) in warning
    assert [r["status"] for r in world.receipts()] == ["stored"]


def test_heartbeats_expire_in_the_status_queue(world: World, store: SqlStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"node_id": "n1", "division": "430102", "source_lag_s": 0}).encode()
    key = routing_key("430102", "n1")
    properties = agent_heartbeat.heartbeat_properties(world.user, time.time())
    world.channel.basic_publish(STATUS_EXCHANGE, key, body, properties)
    method, got, _ = world.channel.basic_get(status_queue(LEVEL), auto_ack=True)
    assert method is not None
    assert got.expiration == str(agent_heartbeat.TTL_S * 1000)
    # The declared quorum queue honours it: a beat past its TTL never reaches the store.
    monkeypatch.setattr(agent_heartbeat, "TTL_S", 0)
    world.channel.basic_publish(STATUS_EXCHANGE, key, body,
                                agent_heartbeat.heartbeat_properties(world.user, time.time()))
    world.consumer(store).run()
    assert rows(store, store.schema.heartbeat) == []


@pytest.mark.parametrize("world", [False], ids=["bare-vhost"], indirect=True)
def test_a_gateway_on_a_vhost_never_set_up_declares_its_topology_then_stores_a_batch(
        world: World, store: SqlStore, rabbitmq_server: LocalBroker) -> None:
    """On a vhost nothing was declared on, the passive declaration of the exchanges gets
    404 NOT_FOUND, which closes that channel: the gateway must declare the exchanges and
    its level's queues, with their arguments, on a fresh channel and consume from it.
    The unit tests show the calls on fake channels; this shows a real broker accepts
    them and that the session consuming from that channel stores a batch once."""
    api = ManagementApi.from_broker(rabbitmq_server)
    vhost = quote(vhost_of(world.url), safe="")

    def declared() -> tuple[dict[str, tuple[str, bool]], dict[str, tuple[str, Any]]]:
        exchanges = {e["name"]: (e["type"], e["durable"]) for e in api.get(f"exchanges/{vhost}")
                     if e["name"].startswith("exgate.")}
        return exchanges, {q["name"]: (q["type"], q["arguments"])
                           for q in api.get(f"queues/{vhost}")}

    assert declared() == ({}, {})  # the gateway starts before any exgate object exists
    stop = threading.Event()
    consumer = world.consumer(store, stop=stop)
    # Daemon: a consumer that hangs despite ``stop`` must not keep pytest alive.
    runner = threading.Thread(target=consumer.run, daemon=True)
    runner.start()
    try:
        wait_for("the gateway to consume its level", consumer.consuming)
        assert declared() == (
            {RECORDS_EXCHANGE: ("topic", True), DEAD_EXCHANGE: ("topic", True),
             RECEIPTS_EXCHANGE: ("direct", True), STATUS_EXCHANGE: ("topic", True)},
            {level_queue(LEVEL): ("quorum", level_queue_arguments(LEVEL)),
             status_queue(LEVEL): ("quorum", holding_queue_arguments()),
             dead_queue(LEVEL): ("quorum", holding_queue_arguments())})
        # What ``exgate node add`` declares for the node, on the receipts exchange the
        # gateway has just declared: the receipt then shows the batch's whole way.
        declare_node_queues(world.channel, "n1")
        world.publish("B1", records(record("SBXX"), record("SL")))
        wait_for("batch B1 to be stored", lambda: store.batch_state("B1") == "stored")
    finally:
        stop.set()
        runner.join(timeout=60)
    assert not runner.is_alive(), "the gateway did not stop"
    assert len(rows(store, store.schema.batch)) == 1
    assert len(rows(store, store.schema.elements["SBXX"].table)) == 1
    assert len(rows(store, store.schema.elements["SL"].table)) == 1
    assert rows(store, store.schema.failed) == []
    assert [(r["batch_id"], r["status"], r["stored"]) for r in world.receipts()] == [
        ("B1", "stored", 2)]

"""Dead-lettering against a real RabbitMQ, every level on one broker: a letter dead in
one level's queue lands in that level's dead queue only; a receipt returned again and
again is kept; provisioning goes on against queues an older exgate declared with other
arguments; and the gateway keeps its level's dead letters as failed batches, which
replay, never losing one while its store is away."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from adapters.amqp.topology import (
    DEAD_EXCHANGE,
    RECEIPTS_EXCHANGE,
    RECORDS_EXCHANGE,
    binding_key,
    dead_queue,
    declare_exchanges,
    declare_node_queues,
    declare_topology,
    level_queue,
    level_queue_arguments,
    receipts_queue,
    routing_key,
)
from adapters.stores.sql import SqlStore
from gateway.broker_node import LocalBroker
from gateway.config import GatewaySettings
from gateway.consumer import Consumer
from gateway.dead_letters import DEAD_LETTERED
from gateway.metrics import metrics_registry, render_metrics
from gateway.mgmt_api import HttpChannel, ManagementApi
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.replay import Replayer, failed_rows
from gateway.status_rules import StatusThresholds
from gateway.status_source import StatusSource
from tests.integration.amqp_helpers import (
    LEVELS,
    admin_channel,
    declare_levels,
    drain_queue,
    vhost_of,
)
from tests.integration.test_gateway import LEVEL as GATEWAY_LEVEL
from tests.integration.test_gateway import World, records
from tests.unit.schemas.documents import record

HANG_GUARD_S = 60.0  # dead-lettering is asynchronous; a hang guard, never a timing check


def reject_at(amqp_url: str, levels: tuple[str, ...]) -> None:
    """Publish batch B1 from a county node; each of ``levels`` rejects its copy (no
    requeue), so that copy is dead-lettered."""
    declare_levels(amqp_url)
    with admin_channel(amqp_url) as channel:
        channel.confirm_delivery()
        channel.basic_publish(RECORDS_EXCHANGE, routing_key("430102", "n1"), b"B1",
                              pika.BasicProperties(delivery_mode=2, message_id="B1"),
                              mandatory=True)
        for level in levels:
            method, _, body = channel.basic_get(level_queue(level))
            assert method is not None and body == b"B1"
            channel.basic_reject(method.delivery_tag, requeue=False)


def test_a_dead_letter_lands_in_its_own_levels_dead_queue_only(amqp_url: str) -> None:
    reject_at(amqp_url, LEVELS)
    for level in LEVELS:
        [(_, properties, body)] = _eventually(amqp_url, dead_queue(level))
        assert body == b"B1"
        assert properties.headers["x-first-death-queue"] == level_queue(level)
        assert properties.headers["x-first-death-reason"] == "rejected"


def _eventually(url: str, queue: str) -> list[tuple[object, pika.BasicProperties, bytes]]:
    """The dead queue's messages once dead-lettering (asynchronous) has delivered one,
    and after a further half second, so that a second letter would be seen too."""
    found: list[tuple[object, object, bytes]] = []
    deadline = time.monotonic() + HANG_GUARD_S
    while not found and time.monotonic() < deadline:
        found += drain_queue(url, queue)
        time.sleep(0.1)
    time.sleep(0.5)
    found += drain_queue(url, queue)
    return [(m, p, b) for m, p, b in found if isinstance(p, pika.BasicProperties)]


def test_a_receipt_returned_more_than_twenty_times_is_kept(amqp_url: str) -> None:
    """RabbitMQ 4 would drop it at the 21st return without the declared limit."""
    with admin_channel(amqp_url) as channel:
        declare_exchanges(channel)
        declare_node_queues(channel, "n1")
        channel.confirm_delivery()
        channel.basic_publish(RECEIPTS_EXCHANGE, "n1", b"receipt", mandatory=True)
        for _ in range(25):  # an agent losing its link while it holds the receipt
            method, _, body = channel.basic_get(receipts_queue("n1"))
            assert method is not None and body == b"receipt"
            channel.basic_nack(method.delivery_tag, requeue=True)
        method, properties, body = channel.basic_get(receipts_queue("n1"), auto_ack=True)
    assert method is not None and body == b"receipt"
    assert properties.headers["x-delivery-count"] >= 25


def test_provisioning_keeps_a_queue_an_older_exgate_declared(
        amqp_url: str, rabbitmq_server: LocalBroker, caplog: pytest.LogCaptureFixture) -> None:
    older = {"x-queue-type": "quorum", "x-delivery-limit": 20,
             "x-dead-letter-exchange": DEAD_EXCHANGE,
             "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    with admin_channel(amqp_url) as channel:
        channel.queue_declare(level_queue("430102"), durable=True, arguments=older)
    vhost = vhost_of(amqp_url)
    api = ManagementApi.from_broker(rabbitmq_server)
    with caplog.at_level(logging.WARNING, logger="exgate.broker"):
        declare_topology(HttpChannel(api, vhost), LEVELS)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "inequivalent arg 'x-dead-letter-routing-key'" in warning
    assert "保留该队列现状" in warning  # in Chinese, the default
    queue = api.get(f"queues/{quote(vhost, safe='')}/{level_queue('430102')}")
    assert queue["arguments"] == older
    bindings = api.get(f"queues/{quote(vhost, safe='')}/{level_queue('430102')}/bindings")
    assert (RECORDS_EXCHANGE, binding_key("430102")) in {
        (b["source"], b["routing_key"]) for b in bindings}


def test_the_gateway_keeps_its_levels_dead_letters_and_counts_what_is_not_its_own(
        amqp_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Before, every dead letter stayed out of reach of status and replay, only counted.
    # Now a letter dead in the level's queue (even one that is no batch) is kept as a
    # failed batch; one no x-death says died there stays, and is what the metric counts.
    reject_at(amqp_url, ("430102",))
    with admin_channel(amqp_url) as channel:
        channel.basic_publish(DEAD_EXCHANGE, level_queue("430102"), b"by hand",
                              pika.BasicProperties(delivery_mode=2, message_id="X1"))
    _until(lambda: _count(amqp_url, dead_queue("430102")) == 2)  # dead-lettering is async
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    consumer = Consumer(amqp_url, Pipeline("430102", Registry(tmp_path / "registry"), store),
                        GatewaySettings(drain_idle_seconds=0.5), drain=True)
    assert consumer.dead_letters() is None  # no pass yet
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        consumer.run()
    assert consumer.dead_letters() == 1
    assert [(r.batch_id, r.node_id, r.reason, r.body) for r in failed_rows(store)] == [
        ("B1", None, DEAD_LETTERED, b"B1")]
    # The gateway's log is Chinese by default.
    assert "死信队列 exgate.dead.430102 中仍有 1 条消息" in caplog.text
    assert "其中 1 条不是在 exgate.level.430102 中成为死信的" in caplog.text
    assert "status and replay do not see them" not in caplog.text
    [(_, properties, body)] = _eventually(amqp_url, dead_queue("430102"))
    assert (properties.message_id, body) == ("X1", b"by hand")
    source = StatusSource(store, "430102", StatusThresholds())
    metrics = render_metrics(metrics_registry(source.report, "430102",
                                              dead_letters=consumer.dead_letters)).decode()
    store.close()
    assert 'exgate_level_dead_letters{level="430102"} 1.0' in metrics


# -- a sealed batch from a registered node, dead-lettered ----------------------------------------


@pytest.fixture
def world(amqp_url: str, tmp_path: Path) -> Iterator[World]:
    made = World(amqp_url, tmp_path)
    yield made
    made.close()


@pytest.fixture
def store(world: World) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{world.store_path}", sqlite_busy_s=0.2)
    opened.migrate()
    yield opened
    opened.close()


def _give_up(world: World, *, returns: int) -> bytes:
    """Take the one batch in the level queue and return it ``returns`` times, then reject
    it without requeue: the broker dead-letters it. Its body, as the gateway got it."""
    bodies: list[bytes] = []
    for attempt in range(returns + 1):
        method, _, body = world.channel.basic_get(level_queue(GATEWAY_LEVEL))
        if method is None:
            break  # past the queue's delivery limit: dead-lettered
        bodies.append(body)
        if attempt < returns:
            world.channel.basic_nack(method.delivery_tag, requeue=True)
        else:
            world.channel.basic_reject(method.delivery_tag, requeue=False)
    _until(lambda: _count(world.url, dead_queue(GATEWAY_LEVEL)) == 1)
    assert bodies and len(set(bodies)) == 1
    return bodies[0]


def test_a_batch_the_broker_gave_up_on_is_kept_as_failed_receipted_and_replays(
        world: World, store: SqlStore) -> None:
    # A level queue that gives up at the second return, as 1,000 returns would.
    world.channel.queue_delete(level_queue(GATEWAY_LEVEL))
    world.channel.queue_declare(level_queue(GATEWAY_LEVEL), durable=True,
                                arguments=level_queue_arguments(GATEWAY_LEVEL, 1))
    world.channel.queue_bind(level_queue(GATEWAY_LEVEL), RECORDS_EXCHANGE,
                             binding_key(GATEWAY_LEVEL))
    world.publish("B1", records(record("SBXX"), record("SL")))
    body = _give_up(world, returns=3)
    consumer = world.consumer(store)
    consumer.run()
    [kept] = failed_rows(store)
    assert (kept.batch_id, kept.node_id, kept.reason, kept.body, kept.user_id) == (
        "B1", "n1", DEAD_LETTERED, body, world.user)
    assert kept.routing_key == routing_key("430102", "n1")  # as published, for replay
    assert kept.detail.startswith(f"was dead-lettered by the broker from "
                                  f"{level_queue(GATEWAY_LEVEL)} at ")
    assert "(delivery_limit: " in kept.detail and kept.headers["x-exgate-node"] == "n1"
    assert store.batch_state("B1") == "failed" and consumer.dead_letters() == 0
    assert _count_settled(world.url, dead_queue(GATEWAY_LEVEL)) == 0
    [receipt] = world.receipts()
    assert (receipt["batch_id"], receipt["status"]) == ("B1", "failed")
    assert receipt["reasons"][0].startswith(f"{DEAD_LETTERED}: was dead-lettered")
    result = Replayer(GATEWAY_LEVEL, world.registry, store).replay(kept)
    assert (result.status, result.stored) == ("stored", 2)
    assert store.batch_state("B1") == "stored" and failed_rows(store) == []


def test_a_dead_letter_waits_while_the_store_is_away_then_is_kept_once(
        world: World, store: SqlStore) -> None:
    world.publish("B1", records(record("SBXX")))
    _give_up(world, returns=0)
    locker = sqlite3.connect(world.store_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # every write waits 0.2 s, then "database is locked"
    try:
        away = world.consumer(store)
        away.run()
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert away.dead_letters() == 1
    assert failed_rows(store, outstanding=False) == [] and world.receipts() == []
    _until(lambda: _count(world.url, dead_queue(GATEWAY_LEVEL)) == 1)  # handed back
    back = world.consumer(store)
    back.run()
    [kept] = failed_rows(store, outstanding=False)
    assert (kept.batch_id, kept.reason) == ("B1", DEAD_LETTERED)
    assert "(rejected: rejected without requeue, 1 time)" in kept.detail
    assert back.dead_letters() == 0
    assert _count_settled(world.url, dead_queue(GATEWAY_LEVEL)) == 0
    assert [(r["batch_id"], r["status"]) for r in world.receipts()] == [("B1", "failed")]


def _until(condition: Callable[[], bool], seconds: float = HANG_GUARD_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _count(url: str, queue: str) -> int:
    with admin_channel(url) as channel:
        return int(channel.queue_declare(queue, passive=True).method.message_count)


def _count_settled(url: str, queue: str) -> int:
    """The count after half a second: a letter handed back (or an ack lost) shows by then."""
    time.sleep(0.5)
    return _count(url, queue)

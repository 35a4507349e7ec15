"""Dead-lettering against a real RabbitMQ, every level on one broker: a letter dead in
one level's queue lands in that level's dead queue only; a receipt returned again and
again is kept; and provisioning goes on against queues an older exgate declared with
other arguments."""

from __future__ import annotations

import logging
import time
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
    receipts_queue,
    routing_key,
)
from adapters.stores.sql import SqlStore
from gateway.broker_node import LocalBroker
from gateway.config import GatewaySettings
from gateway.consumer import Consumer
from gateway.metrics import metrics_registry, render_metrics
from gateway.mgmt_api import HttpChannel, ManagementApi
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.status_rules import StatusThresholds
from gateway.status_source import StatusSource
from tests.integration.amqp_helpers import (
    LEVELS,
    admin_channel,
    declare_levels,
    drain_queue,
    vhost_of,
)


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
    deadline = time.monotonic() + 10
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
    assert "keeping the queue as it is" in warning
    queue = api.get(f"queues/{quote(vhost, safe='')}/{level_queue('430102')}")
    assert queue["arguments"] == older
    bindings = api.get(f"queues/{quote(vhost, safe='')}/{level_queue('430102')}/bindings")
    assert (RECORDS_EXCHANGE, binding_key("430102")) in {
        (b["source"], b["routing_key"]) for b in bindings}


def test_the_gateway_counts_its_levels_dead_letters_for_metrics_and_the_log(
        amqp_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A dead letter is out of reach of status and replay: before, nothing said it was there.
    reject_at(amqp_url, ("430102",))
    deadline = time.monotonic() + 10
    while _count(amqp_url, dead_queue("430102")) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # dead-lettering is asynchronous
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    consumer = Consumer(amqp_url, Pipeline("430102", Registry(tmp_path / "registry"), store),
                        GatewaySettings(drain_idle_seconds=0.5), drain=True)
    assert consumer.dead_letters() is None  # not counted yet
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        consumer.run()
    assert consumer.dead_letters() == 1
    assert "1 message(s) in the dead queue exgate.dead.430102" in caplog.text
    source = StatusSource(store, "430102", StatusThresholds())
    body = render_metrics(metrics_registry(source.report, "430102",
                                           dead_letters=consumer.dead_letters)).decode()
    store.close()
    assert 'exgate_level_dead_letters{level="430102"} 1.0' in body


def _count(url: str, queue: str) -> int:
    with admin_channel(url) as channel:
        return int(channel.queue_declare(queue, passive=True).method.message_count)

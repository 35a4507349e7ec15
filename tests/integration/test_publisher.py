"""The publisher against a real RabbitMQ: confirms, properties, sealing, refusals,
receipts, and a broker outage in the middle of a run."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from adapters.amqp.topology import RECEIPTS_EXCHANGE, level_queue, status_queue
from adapters.sealing import load_broker_login, unseal
from frontend_machine.outbox import Outbox
from frontend_machine.outbox_batches import BatchState
from frontend_machine.publisher import Publisher
from frontend_machine.publisher_settings import FlushResult, PublisherSettings
from gateway.broker_node import LocalBroker
from gateway.mgmt_api import ManagementApi
from gateway.provisioning import disable_node, enable_node
from tests.integration.amqp_helpers import (
    Node,
    admin_channel,
    declare_levels,
    delete_user,
    drain_queue,
    fill,
    provision,
    vhost_of,
)
from tests.servers import start_broker, stop_broker

NS = {"x": "urn:exgate:exchange:1"}


@pytest.fixture
def node(rabbitmq_server: LocalBroker, amqp_url: str, tmp_path: Path) -> Iterator[Node]:
    declare_levels(amqp_url)
    provisioned = provision(rabbitmq_server, vhost_of(amqp_url), tmp_path, "furong-01")
    yield provisioned
    delete_user(rabbitmq_server, "exgate-node-furong-01")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


@pytest.fixture
def publisher_for(outbox: Outbox) -> Iterator:
    made: list[Publisher] = []

    def make(settings: PublisherSettings) -> Publisher:
        made.append(Publisher(outbox, settings))
        return made[-1]

    yield make
    for publisher in made:
        publisher.close()


def flush_until_refused(publisher: Publisher, *words: str) -> FlushResult:
    """Short flushes until the last error names all of ``words``; the last result.

    A refused batch never goes out, so each flush runs to its timeout: several short
    ones rather than a long one, as connecting may take seconds on a loaded machine.
    """
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while True:
        result = publisher.flush(2.0)
        if all(word in (result.last_error or "") for word in words):
            return result
        assert time.monotonic() < deadline, result


def states(outbox: Outbox, batch_ids: list[str]) -> list[BatchState]:
    return [outbox.batch(b).state for b in batch_ids]  # type: ignore[union-attr]


def test_batches_arrive_confirmed_with_contract_properties_and_unseal(
        node: Node, outbox: Outbox, publisher_for, amqp_url: str) -> None:
    batch_ids = fill(outbox, 1, 25, per_batch=10)
    result = publisher_for(node.settings()).flush(30.0)
    assert (result.published, result.pending) == (3, 0)
    assert states(outbox, batch_ids) == [BatchState.SENT] * 3

    messages = drain_queue(amqp_url, level_queue("430102"))
    assert [props.message_id for _, props, _ in messages] == batch_ids  # in outbox order
    verifier = node.registry.verifier("furong-01", 1)
    for (_, props, body), count in zip(messages, (10, 10, 5), strict=True):
        assert props.user_id == "exgate-node-furong-01"
        assert props.delivery_mode == 2
        assert props.content_type == "application/vnd.exgate.sealed"
        assert props.app_id == "exgate-agent"
        assert props.timestamp
        plain = unseal(body, verifier, props.message_id)
        headers = {k: v for k, v in props.headers.items() if k != "x-delivery-count"}
        assert headers == {
            "x-exgate-node": "furong-01", "x-exgate-key-version": 1,
            "x-exgate-schema-version": 1, "x-exgate-records": count,
            "x-exgate-sha256": hashlib.sha256(plain).hexdigest()}
        head = etree.fromstring(plain).find("x:HEAD", NS)
        assert {child.tag.split("}")[1]: child.text for child in head} | {"CREATED": "-"} == {
            "XZQHDM": "430102", "TYSHXYDM": "12451422MB0173307F", "CREATED": "-",
            "BATCHID": props.message_id, "NODEID": "furong-01", "COUNT": str(count)}
    # One publish reaches every level above the node.
    for level in ("430000", "430100"):
        assert len(drain_queue(amqp_url, level_queue(level))) == 3


def test_heartbeat_reaches_the_status_queues(node: Node, outbox: Outbox, publisher_for,
                                             amqp_url: str) -> None:
    fill(outbox, 1, 3, per_batch=10)
    publisher_for(node.settings()).flush(30.0)
    [(_, props, body)] = drain_queue(amqp_url, status_queue("430102"))[:1]
    beat = json.loads(body)
    assert props.user_id == "exgate-node-furong-01"
    assert set(beat) == {"node_id", "division", "at", "version", "outbox", "source_lag_s",
                         "last_error"}
    assert (beat["node_id"], beat["division"]) == ("furong-01", "430102")
    assert set(beat["outbox"]) == {"pending_batches", "unbatched_records",
                                   "oldest_pending_age_s"}


def test_receipts_update_batch_states(node: Node, outbox: Outbox, publisher_for,
                                      amqp_url: str) -> None:
    good, bad = fill(outbox, 1, 4, per_batch=2)
    publisher = publisher_for(node.settings())
    assert publisher.flush(30.0).pending == 0
    with admin_channel(amqp_url) as channel:
        # Confirmed: a quorum queue may drop what is still in flight when the
        # publishing connection closes right after the last publish.
        channel.confirm_delivery()
        channel.basic_publish(RECEIPTS_EXCHANGE, "furong-01", b"not json")
        for level in ("province", "city", "county"):
            receipt = {"batch_id": good, "level": level, "division": "430102",
                       "status": "stored", "stored": 2, "duplicates": 0, "conflicts": 0,
                       "reasons": [], "at": "2026-11-20T10:00:00+08:00"}
            channel.basic_publish(RECEIPTS_EXCHANGE, "furong-01", json.dumps(receipt).encode())
        failed = {"batch_id": bad, "level": "city", "division": "430100", "status": "failed",
                  "stored": 0, "duplicates": 0, "conflicts": 0, "reasons": ["bad-signature"],
                  "at": "2026-11-20T10:00:00+08:00"}
        channel.basic_publish(RECEIPTS_EXCHANGE, "furong-01", json.dumps(failed).encode())
    deadline = time.monotonic() + 30
    while publisher.counters.receipts < 4 and time.monotonic() < deadline:
        publisher.step(0.2)
    assert states(outbox, [good, bad]) == [BatchState.STORED, BatchState.FAILED]
    # Acked after the commit: nothing is left on the queue, the malformed one dropped.
    # Closed first: what the publisher still held unacked goes back to the queue.
    publisher.close()
    assert drain_queue(amqp_url, "exgate.receipts.furong-01") == []


def test_another_nodes_routing_key_is_refused_by_the_broker(
        rabbitmq_server: LocalBroker, node: Node, outbox: Outbox, publisher_for,
        amqp_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    other = provision(rabbitmq_server, vhost_of(amqp_url), tmp_path / "n2", "furong-02")
    try:
        [batch] = fill(outbox, 1, 3, per_batch=10)
        # furong-01's broker login, claiming to be furong-02 (its routing key).
        publisher = publisher_for(node.settings(node_id=other.node_id))
        with caplog.at_level(logging.ERROR, logger="exgate.agent.publisher"):
            result = flush_until_refused(publisher, "403", "ACCESS_REFUSED")
        assert result.pending == 1 and publisher.counters.published == 0
        assert any(r.getMessage().startswith("消息服务器拒绝：发送批次") and "403" in r.getMessage()
                   for r in caplog.records)  # the agent's language: Chinese by default
        assert outbox.batch(batch).state is BatchState.PENDING
        assert "ACCESS_REFUSED" in (outbox.batch(batch).last_error or "")
        assert drain_queue(amqp_url, level_queue("430102")) == []
    finally:
        delete_user(rabbitmq_server, "exgate-node-furong-02")


def test_user_id_of_another_user_is_refused(node: Node, outbox: Outbox, publisher_for,
                                            amqp_url: str) -> None:
    [batch] = fill(outbox, 1, 3, per_batch=10)
    publisher = publisher_for(node.settings(broker_user="exgate-node-someone-else"))
    result = flush_until_refused(publisher, "406", "user_id")
    assert result.pending == 1 and publisher.counters.published == 0
    assert outbox.batch(batch).state is BatchState.PENDING
    assert drain_queue(amqp_url, level_queue("430102")) == []


def test_unroutable_batches_stay_pending_then_go_out_in_order(
        rabbitmq_server: LocalBroker, outbox: Outbox, publisher_for, amqp_url: str,
        tmp_path: Path) -> None:
    declare_levels(amqp_url, ())  # exchanges only: no level queue for Hunan yet
    node = provision(rabbitmq_server, vhost_of(amqp_url), tmp_path, "furong-03")
    try:
        batch_ids = fill(outbox, 1, 6, per_batch=2)
        publisher = publisher_for(node.settings())
        result = flush_until_refused(publisher, "unroutable")
        assert result.pending == 3 and publisher.counters.published == 0
        assert outbox.batch(batch_ids[0]).attempts >= 1
        declare_levels(amqp_url, ("430000",))
        assert publisher.flush(30.0).pending == 0
        got = drain_queue(amqp_url, level_queue("430000"))
        assert [props.message_id for _, props, _ in got] == batch_ids
    finally:
        delete_user(rabbitmq_server, "exgate-node-furong-03")


def _publish_in_thread(path: Path, settings: PublisherSettings,
                       stop: threading.Event, out: dict) -> None:
    with Outbox(path) as box:
        publisher = Publisher(box, settings)
        out["publisher"] = publisher
        try:
            publisher.run(stop, idle_wait=0.1)
        finally:
            publisher.close()


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_broker_outage_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    broker = start_broker()  # its own broker: this test stops it
    stop = threading.Event()
    thread = None
    try:
        admin = broker.amqp_url()
        declare_levels(admin)
        node = provision(broker, "/", tmp_path, "furong-01")
        path = tmp_path / "outbox.db"
        shared: dict = {}
        with Outbox(path) as box:
            first = fill(box, 1, 30, per_batch=10)
            thread = threading.Thread(target=_publish_in_thread,
                                      args=(path, node.settings(), stop, shared))
            thread.start()
            _wait(lambda: box.depth().pending_batches == 0, 60, "the first batches")
            broker.stop()
            second = fill(box, 31, 30, per_batch=10)  # sealed while the broker is away
            _wait(lambda: shared["publisher"].counters.failures >= 2, 60, "failed reconnects")
            assert box.depth().pending_batches == 3
            broker.start()
            _wait(lambda: box.depth().pending_batches == 0, 120, "the catch-up")
            assert all(box.batch(b).state is BatchState.SENT for b in first + second)
        stop.set()
        thread.join(30)
        got = drain_queue(admin, level_queue("430102"))
        assert [props.message_id for _, props, _ in got] == first + second
    finally:
        stop.set()
        if thread is not None:
            thread.join(30)
        stop_broker(broker)


def test_a_refused_login_logs_in_once_the_credentials_file_is_replaced(
        rabbitmq_server: LocalBroker, node: Node, outbox: Outbox, amqp_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """``agent run`` after ``node disable`` then ``enable``: no restart, nothing twice."""
    api, vhost = ManagementApi.from_broker(rabbitmq_server), vhost_of(amqp_url)

    def from_file() -> PublisherSettings:  # as publishing.publisher_settings reads it
        login = load_broker_login(node.key_file)
        assert login is not None
        base = node.settings()
        return replace(base, link=replace(base.link, user=login.user, password=login.password))

    [batch_id] = fill(outbox, 1, 5, per_batch=5)
    disable_node(api, node.registry, "furong-01", vhost=vhost)
    publisher = Publisher(outbox, from_file(), reread=from_file)
    try:
        _wait(lambda: publisher.step(0.1) or publisher.counters.login_refused is not None,
              30, "the refused login")
        assert states(outbox, [batch_id]) == [BatchState.PENDING]
        # The refusal names the broker and the user, in both languages, never a password.
        refused, url = publisher.counters.login_refused, urlsplit(amqp_url)
        assert refused is not None
        login = load_broker_login(node.key_file)
        assert login is not None
        where = f"{url.hostname}:{url.port}"
        assert f"the broker {where} (vhost {vhost}) refused the login of user " \
               f"{login.user!r}" in str(refused)
        assert f"消息服务器 {where}（虚拟主机 {vhost}）拒绝了用户 {login.user!r} 的登录" in \
               refused.message("zh")
        assert login.password not in str(refused) + refused.message("zh")
        enable_node(api, node.registry, "furong-01", node.key_file, vhost=vhost)
        with caplog.at_level(logging.INFO, "exgate.agent.publisher"):
            _wait(lambda: publisher.step(0.1) or states(outbox, [batch_id]) == [BatchState.SENT],
                  30, "the batch confirmed with the new login")
    finally:
        publisher.close()
    assert any("credentials file was replaced" in r.getMessage()
               or "凭据文件已更换" in r.getMessage() for r in caplog.records)
    messages = drain_queue(amqp_url, level_queue("430102"))
    assert [props.message_id for _, props, _ in messages] == [batch_id]  # once

"""What the consumer tells the dashboard and the log: connected and consuming or not, what it
holds through failures (no broker here)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pika.exceptions as px
import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from adapters.amqp.topology import (
    DEAD_EXCHANGE,
    RECEIPTS_EXCHANGE,
    RECORDS_EXCHANGE,
    STATUS_EXCHANGE,
    holding_queue_arguments,
    level_queue_arguments,
)
from gateway.config import GatewaySettings
from gateway.consumer import Consumer, _older_queue_effect
from gateway.holds import HoldState
from gateway.pipeline import Delivery, Pipeline
from schemas.errors import RetriableError
from tests.unit.gateway.test_pipeline import FakeRegistry, MemoryStore


def consumer_in(lang: str | None) -> Consumer:
    """A consumer logging in ``lang`` (None: the default, Chinese)."""
    pipeline = Pipeline("430100", FakeRegistry(), MemoryStore()) if lang is None else \
        Pipeline("430100", FakeRegistry(), MemoryStore(), lang=lang)
    return Consumer("amqp://gateway:pw@127.0.0.1/exgate", pipeline,
                    GatewaySettings(workers=1, prefetch=1))


@pytest.fixture
def consumer() -> Consumer:
    """Logging in English, as most tests here read its lines."""
    return consumer_in("en")


def test_it_says_consuming_only_while_its_connection_consumes_the_queues(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def one_round(**_: Any) -> None:
        seen.append(consumer.consuming())
        consumer.stop.set()

    connection = mock.MagicMock(is_open=True)
    connection.process_data_events.side_effect = one_round
    monkeypatch.setattr("pika.BlockingConnection", lambda parameters: connection)
    assert not consumer.consuming()
    consumer.run()
    assert seen == [True]
    assert not consumer.consuming()
    assert connection.channel.return_value.basic_consume.call_count == 2


def test_it_never_says_consuming_while_the_broker_refuses_the_connection(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[bool] = []

    def refused(parameters: Any) -> None:
        attempts.append(consumer.consuming())
        if len(attempts) == 2:
            consumer.stop.set()
        raise px.AMQPConnectionError("refused")

    monkeypatch.setattr("pika.BlockingConnection", refused)
    monkeypatch.setattr("gateway.consumer.backoff", lambda failures: 0.01)
    consumer.run()
    assert attempts == [False, False] and not consumer.consuming()


def test_a_broker_out_of_reach_is_logged_by_address_and_retried_even_when_silent(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A listener that never speaks AMQP ends in pika's handshake timeout, which is no
    ``AMQPError``: it ended ``gateway run`` instead of being retried."""
    failures = [AMQPConnectorStackTimeout("Timeout during AMQP handshake"),
                px.ProbableAuthenticationError("ACCESS_REFUSED")]

    def failing(parameters: Any) -> None:
        if len(failures) == 1:
            consumer.stop.set()
        raise failures.pop(0)

    monkeypatch.setattr("pika.BlockingConnection", failing)
    monkeypatch.setattr("gateway.consumer.backoff", lambda failures: 0.01)
    with caplog.at_level(logging.WARNING, "exgate.gateway"):
        consumer.run()
    silent, refused = [r.getMessage() for r in caplog.records]
    assert silent.startswith("connecting to the broker: broker 127.0.0.1:5672 (vhost exgate) "
                             "unavailable: connected, but no AMQP answer came in time")
    assert refused.startswith("the broker 127.0.0.1:5672 (vhost exgate) refused the login of "
                              "user 'gateway' (ACCESS_REFUSED): check the user of [broker] url")
    assert all("pw@" not in line and "reconnecting in" in line for line in (silent, refused))


def test_an_older_queue_warning_says_what_its_differing_argument_changes() -> None:
    def refusal(argument: str) -> str:
        return (f"PRECONDITION_FAILED - inequivalent arg '{argument}' for queue "
                "'exgate.level.430100' in vhost '/'")

    assert "reach the dead queues of the levels above" in _older_queue_effect(
        refusal("x-dead-letter-routing-key"), "en")
    limit = _older_queue_effect(refusal("x-delivery-limit"), "en")
    assert "1,000" in limit and "replay them" in limit and "levels above" not in limit
    assert _older_queue_effect(refusal("x-queue-type"), "en") == ""
    assert "各上级的死信队列" in _older_queue_effect(refusal("x-dead-letter-routing-key"), "zh")
    limit = _older_queue_effect(refusal("x-delivery-limit"), "zh")
    assert "1,000" in limit and "请在监察库恢复后重放" in limit



# -- declaring the level's topology --------------------------------------------------------------


class DeclaringChannel:
    """A channel that records what is declared on it and, like pika's, is closed for good
    once the broker refused something on it: a fallback has to open a fresh one."""

    def __init__(self, refusal: tuple[str, px.ChannelClosedByBroker] | None) -> None:
        self.refusal = refusal  # (method, error) the broker answers its first call with
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.is_open = True

    def __getattr__(self, name: str) -> Callable[..., None]:
        def call(*args: Any, **kwargs: Any) -> None:
            if not self.is_open:
                raise px.ChannelWrongStateError("Channel is closed.")
            self.calls.append((name, args, kwargs))
            if self.refusal is not None and self.refusal[0] == name:
                self.is_open = False
                raise self.refusal[1]
        return call

    def named(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


class DeclaringConnection:
    """Hands out a fresh ``DeclaringChannel`` each time, the first ones refusing as scripted."""

    def __init__(self, consumer: Consumer,
                 refusals: list[tuple[str, px.ChannelClosedByBroker]]) -> None:
        self.consumer = consumer
        self.refusals = refusals
        self.channels: list[DeclaringChannel] = []
        self.is_open = True
        self.consuming_seen: list[bool] = []

    def channel(self) -> DeclaringChannel:
        opened = DeclaringChannel(self.refusals.pop(0) if self.refusals else None)
        self.channels.append(opened)
        return opened

    def process_data_events(self, **_: Any) -> None:
        self.consuming_seen.append(self.consumer.consuming())
        self.consumer.stop.set()

    def close(self) -> None:
        self.is_open = False


EXCHANGES = [(RECORDS_EXCHANGE, "topic"), (DEAD_EXCHANGE, "topic"),
             (RECEIPTS_EXCHANGE, "direct"), (STATUS_EXCHANGE, "topic")]


def test_exchanges_a_broker_does_not_have_yet_are_declared_on_a_fresh_channel_then_consumed(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker ``exgate broker start`` never set up answers the passive declaration with
    404, which closes that channel: the exchanges and the level's queues are declared on a
    new one, with their arguments, and the level is consumed from it."""
    not_found = px.ChannelClosedByBroker(
        404, "NOT_FOUND - no exchange 'exgate.records' in vhost 'exgate'")
    connection = DeclaringConnection(consumer, [("exchange_declare", not_found)])
    monkeypatch.setattr("pika.BlockingConnection", lambda parameters: connection)
    consumer.run()

    refused, declared, receipts = connection.channels
    assert refused.calls == [("exchange_declare", (RECORDS_EXCHANGE,),
                              {"exchange_type": "topic", "durable": True, "passive": True})]
    assert [(args[0], kwargs) for args, kwargs in declared.named("exchange_declare")] == [
        (name, {"exchange_type": kind, "durable": True, "passive": False})
        for name, kind in EXCHANGES]
    assert [(args[0], kwargs) for args, kwargs in declared.named("queue_declare")] == [
        ("exgate.dead.430100", {"durable": True, "arguments": holding_queue_arguments()}),
        ("exgate.status.430100", {"durable": True, "arguments": holding_queue_arguments()}),
        ("exgate.level.430100", {"durable": True,
                                 "arguments": level_queue_arguments("430100")})]
    assert declared.named("queue_declare")[-1][1]["arguments"][
        "x-dead-letter-routing-key"] == "exgate.level.430100"
    assert {args for args, _ in declared.named("queue_bind")} == {
        ("exgate.dead.430100", DEAD_EXCHANGE, "exgate.level.430100"),
        ("exgate.status.430100", STATUS_EXCHANGE, "430000.430100.#"),
        ("exgate.level.430100", RECORDS_EXCHANGE, "430000.430100.#")}
    # Consumed from the channel the topology was declared on, receipts confirmed apart.
    assert declared.named("basic_qos") == [((), {"prefetch_count": 1})]
    assert [args[0] for args, _ in declared.named("basic_consume")] == [
        "exgate.level.430100", "exgate.status.430100"]
    assert receipts.named("confirm_delivery") == [((), {})]
    assert connection.consuming_seen == [True]


def test_a_refused_passive_declaration_other_than_404_is_no_missing_exchange_and_is_retried(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Only NOT_FOUND means "declare them": a refusal (403, the user may not even read
    the exchange) must not lead to declaring, and is retried like any broker refusal."""
    denied = px.ChannelClosedByBroker(
        403, "ACCESS_REFUSED - access to exchange 'exgate.records' in vhost 'exgate' refused")
    connections: list[DeclaringConnection] = []

    def connect(parameters: Any) -> DeclaringConnection:
        connections.append(DeclaringConnection(consumer, [("exchange_declare", denied)]))
        if len(connections) == 2:
            consumer.stop.set()
        return connections[-1]

    monkeypatch.setattr("pika.BlockingConnection", connect)
    monkeypatch.setattr("gateway.consumer.backoff", lambda failures: 0.01)
    with caplog.at_level(logging.WARNING, "exgate.gateway"):
        consumer.run()

    assert len(connections) == 2  # a try, then its retry
    for connection in connections:
        # The refused channel was the only one: nothing declared, nothing consumed.
        assert [channel.calls for channel in connection.channels] == [
            [("exchange_declare", (RECORDS_EXCHANGE,),
              {"exchange_type": "topic", "durable": True, "passive": True})]]
        assert not connection.is_open and connection.consuming_seen == []
    assert not consumer.consuming()
    refusal = ("declaring and consuming exgate.level.430100: broker 127.0.0.1:5672 (vhost "
               "exgate) closed the channel: 403 ACCESS_REFUSED - access to exchange "
               "'exgate.records' in vhost 'exgate' refused; reconnecting in 0.0 s")
    assert [r.getMessage() for r in caplog.records] == [refusal, refusal]


def test_the_consumer_logs_in_chinese_by_default_with_the_broker_s_error_in_chinese(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    consumer = consumer_in(None)
    denied = px.ChannelClosedByBroker(403, "ACCESS_REFUSED - access refused")

    def connect(parameters: Any) -> DeclaringConnection:
        consumer.stop.set()
        return DeclaringConnection(consumer, [("exchange_declare", denied)])

    monkeypatch.setattr("pika.BlockingConnection", connect)
    monkeypatch.setattr("gateway.consumer.backoff", lambda failures: 0.01)
    with caplog.at_level(logging.WARNING, "exgate.gateway"):
        consumer.run()
    assert [r.getMessage() for r in caplog.records] == [
        "声明并消费 exgate.level.430100：消息服务器 127.0.0.1:5672（虚拟主机 exgate）关闭了通道："
        "403 ACCESS_REFUSED - access refused；0.0 秒后重新连接"]


# -- holding through failures -----------------------------------------------------------------


def failing_then_through(failures: int, seen: list[HoldState], consumer: Consumer
                         ) -> Callable[..., bool]:
    """A pipeline step refused ``failures`` times by the store, then taken."""
    calls = [0]

    def step(delivery: Delivery) -> bool:
        seen.append(consumer.holds())
        calls[0] += 1
        if calls[0] <= failures:
            raise RetriableError("keep heartbeat of node furong-01: disk I/O error")
        return True
    return step


def run_one(consumer: Consumer, kind: str, delivery: Delivery) -> None:
    session = mock.MagicMock()
    session.dead = threading.Event()
    consumer._run(session, 1, delivery, kind, time.monotonic())
    finish = session.connection.add_callback_threadsafe.call_args.args[0]
    assert finish.args[2].action == "ack"


HEARTBEAT = Delivery("430000.430100.430102.furong-01", b"{}", None, "u-furong-01", {})


def test_a_held_heartbeat_is_logged_as_its_node_s_heartbeat_never_as_batch_none(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("gateway.worker.backoff", lambda failures: 0.0)
    seen: list[HoldState] = []
    monkeypatch.setattr(consumer.pipeline, "heartbeat", failing_then_through(2, seen, consumer))
    with caplog.at_level(logging.INFO, "exgate.gateway"):
        run_one(consumer, "heartbeat", HEARTBEAT)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ("heartbeat of node furong-01 held, attempt 1: keep heartbeat of "
                        "node furong-01: disk I/O error")
    assert lines[-1] == "heartbeat of node furong-01 went through after 2 failed attempt(s)"
    assert not any("batch" in line or "None" in line for line in lines)
    assert all(r.node_id == "furong-01" for r in caplog.records)  # type: ignore[attr-defined]


def test_the_consumer_says_what_it_holds_through_failures_and_since_when(
        consumer: Consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.worker.backoff", lambda failures: 0.0)
    seen: list[HoldState] = []
    batch = Delivery("430000.430100.430102.furong-01", b"x", "B1", "u-furong-01",
                     {"x-exgate-node": "furong-01"})
    monkeypatch.setattr(consumer.pipeline, "handle", failing_then_through(3, seen, consumer))
    run_one(consumer, "batch", batch)
    assert [s.held for s in seen] == [0, 1, 1, 1]
    assert seen[0].since is None and seen[1].since is not None
    assert seen[1].since == seen[3].since       # one trouble, from the first failure
    assert consumer.holds() == HoldState()      # went through: nothing held, no trouble

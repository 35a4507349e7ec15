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

from gateway.config import GatewaySettings
from gateway.consumer import Consumer, _older_queue_effect
from gateway.holds import HoldState
from gateway.pipeline import Delivery, Pipeline
from schemas.errors import RetriableError
from tests.unit.gateway.test_pipeline import FakeRegistry, MemoryStore


@pytest.fixture
def consumer() -> Consumer:
    pipeline = Pipeline("430100", FakeRegistry(), MemoryStore())
    return Consumer("amqp://gateway:pw@127.0.0.1/exgate", pipeline,
                    GatewaySettings(workers=1, prefetch=1))


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
        refusal("x-dead-letter-routing-key"))
    limit = _older_queue_effect(refusal("x-delivery-limit"))
    assert "1,000" in limit and "replay them" in limit and "levels above" not in limit
    assert _older_queue_effect(refusal("x-queue-type")) == ""


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

"""What the consumer tells the dashboard: connected and consuming, or not (no broker here)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pika.exceptions as px
import pytest

from gateway.config import GatewaySettings
from gateway.consumer import Consumer, _older_queue_effect
from gateway.pipeline import Pipeline
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


def test_an_older_queue_warning_says_what_its_differing_argument_changes() -> None:
    def refusal(argument: str) -> str:
        return (f"PRECONDITION_FAILED - inequivalent arg '{argument}' for queue "
                "'exgate.level.430100' in vhost '/'")

    assert "reach the dead queues of the levels above" in _older_queue_effect(
        refusal("x-dead-letter-routing-key"))
    limit = _older_queue_effect(refusal("x-delivery-limit"))
    assert "1,000" in limit and "replay them" in limit and "levels above" not in limit
    assert _older_queue_effect(refusal("x-queue-type")) == ""

"""Receipts of replayed batches: each one not sent is answered with why, none skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions as px
import pytest

from gateway.pipeline import Outcome
from gateway.replay_receipts import BrokerReceipts

URL = "amqp://gateway:secret@127.0.0.1:5672/exgate"


def outcome(batch_id: str, node_id: str = "n1") -> Outcome:
    return Outcome("stored", batch_id, node_id, {"batch_id": batch_id, "status": "stored"},
                   node_id)


@dataclass
class FakeBroker:
    """A connection whose channel refuses what ``refuse`` maps a batch ID to."""

    refuse: dict[str, Exception] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    connections: int = 0
    is_open: bool = True

    def __call__(self, params: Any) -> FakeBroker:
        self.connections += 1
        return self

    def channel(self) -> FakeBroker:
        return self

    def confirm_delivery(self) -> None:
        return None

    def basic_publish(self, exchange: str, routing_key: str, body: bytes, properties: Any,
                      mandatory: bool) -> None:
        error = self.refuse.get(properties.correlation_id)
        if error is not None:
            raise error
        self.published.append(properties.correlation_id)

    def close(self) -> None:
        self.is_open = False


def test_a_receipt_the_broker_refuses_costs_only_itself(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    broker = FakeBroker({"B1": px.UnroutableError([]), "B2": px.NackError([])})
    monkeypatch.setattr(pika, "BlockingConnection", broker)
    send = BrokerReceipts(URL)
    answers = [send(outcome(b)) for b in ("B1", "B2", "B3")]
    assert [a and a.en for a in answers] == ["the broker has no receipt queue for node n1",
                                             "the broker refused it (nack)", None]
    assert [a and a.zh for a in answers] == ["消息服务器上没有节点 n1 的回执队列",
                                             "消息服务器拒绝接收（nack）", None]
    assert (broker.published, broker.connections) == (["B3"], 1)


def test_once_the_broker_is_away_every_later_receipt_says_so_untried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker({"B1": px.StreamLostError("connection reset")})
    monkeypatch.setattr(pika, "BlockingConnection", broker)
    send = BrokerReceipts(URL)
    answers = [send(outcome(b)) for b in ("B1", "B2", "B3")]
    assert all(a is not None and "StreamLostError connection reset" in a.en for a in answers)
    en, zh = answers[0].en, answers[0].zh  # type: ignore[union-attr]
    assert "broker 127.0.0.1:5672 (vhost exgate) unavailable: the connection was lost" in en
    assert "消息服务器 127.0.0.1:5672（虚拟主机 exgate）不可用：连接中断" in zh
    assert "secret" not in en + zh
    assert (broker.published, broker.connections, broker.is_open) == ([], 1, False)


def test_a_url_pika_cannot_take_is_a_reason_never_an_escape(tmp_path: Any) -> None:
    """pika reads ``ssl_options`` files while parsing the URL: a missing one raised out of
    the replay (the batch had landed) instead of being the receipt's reason."""
    missing = tmp_path / "ca.pem"
    url = f"amqps://gateway:secret@mq.hn.gov/exgate?ssl_options={{'ca_certs':'{missing}'}}"
    answer = BrokerReceipts(url)(outcome("B1"))
    assert answer is not None and "mq.hn.gov:5671 (vhost exgate)" in answer.en
    assert "secret" not in answer.en + answer.zh

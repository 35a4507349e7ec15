"""The publisher's reconnect backoff, and what a link that works or keeps failing does."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.amqp.errors import BrokerRefused
from adapters.sealing import generate_node_keys
from adapters.sources.base import Chunk
from frontend_machine.envelope import NodeIdentity
from frontend_machine.link import BrokerLink, LinkSettings, ReceiptHandler, Verdict
from frontend_machine.outbox import Outbox
from frontend_machine.outbox_batches import BatchState
from frontend_machine.publisher import Publisher
from frontend_machine.publisher_settings import PublisherSettings
from schemas.errors import RetriableError
from tests.unit.frontend_machine.test_outbox import FakeClock, record, valid


class FakeLink:
    """A link the broker accepts at login; ``refuse`` makes it close on every publish
    the way a 403 on the records topic does."""

    def __init__(self, clock: FakeClock, refuse: bool, receipts: bool = True) -> None:
        self.clock, self.refuse, self.consuming = clock, refuse, receipts
        self.subscriptions = 0
        self.held = 0

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: Any, *,
                mandatory: bool, doing: str) -> None:
        if self.refuse and exchange == "exgate.records":
            raise BrokerRefused(f"{doing}: 403 ACCESS_REFUSED", reply_code=403)

    def process(self, seconds: float) -> None:
        self.clock.now += seconds

    def consume_receipts(self, settings: LinkSettings, handler: ReceiptHandler) -> bool:
        self.subscriptions += 1
        return self.consuming

    def wake(self) -> None:
        pass

    def close(self) -> None:
        pass


def publisher(tmp_path: Path, clock: FakeClock, make_link: Callable[[], FakeLink],
              lang: str = "zh") -> tuple[Publisher, list[float]]:
    """A publisher with one pending batch; the list gets the time of every connect."""
    box = Outbox(tmp_path / "o.db")
    box.journal("src", Chunk(valid(record("A"))))
    box.seal_batches(10, 1 << 20, 0)
    settings = PublisherSettings(LinkSettings("amqp://u:p@h/", "n1", lang=lang),
                                 NodeIdentity("n1", "430102", "u", generate_node_keys("n1")))
    opened: list[float] = []

    def factory(settings: LinkSettings, handler: ReceiptHandler | None) -> Any:
        opened.append(clock.now)
        return make_link()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    return Publisher(box, settings, link_factory=factory, clock=clock, sleep=sleep), opened


def linked_publisher(tmp_path: Path, clock: FakeClock, connection: FakeConnection
                     ) -> tuple[Publisher, str]:
    """A publisher whose link is a real ``BrokerLink`` over ``connection``; its one
    pending batch."""
    pub, _ = publisher(tmp_path, clock,
                       lambda: BrokerLink(connection, connection))  # type: ignore[arg-type, return-value]
    [batch] = [b.batch_id for b in pub.outbox.next_pending_batches(5)]
    return pub, batch


def test_a_link_refused_after_login_reconnects_ever_more_slowly_up_to_the_cap(
        tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    pub, opened = publisher(tmp_path, clock, lambda: FakeLink(clock, refuse=True))
    while clock.now < 1800:
        pub.step(0.25)
    gaps = [later - earlier for earlier, later in itertools.pairwise(opened)]
    assert len(opened) < 60  # it was some 2-3 a second while each login reset the backoff
    assert all(gap <= 60.0 + 0.25 for gap in gaps)
    assert min(gaps[-10:]) >= 30.0  # jittered between half and all of the 60 s cap
    assert "403" in (pub.counters.last_error or "")


def test_a_confirmed_publish_resets_the_backoff_and_clears_the_error(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    links = [FakeLink(clock, refuse=True) for _ in range(3)] + [FakeLink(clock, refuse=False)]
    pub, opened = publisher(tmp_path, clock, lambda: links[len(opened) - 1])
    while not pub.counters.published:
        pub.step(0.25)
    gaps = [later - earlier for earlier, later in itertools.pairwise(opened)]
    assert len(opened) == 4 and gaps == sorted(gaps) and gaps[-1] >= 1.0  # 3 failures grew it
    assert pub._reconnect.failures == 0 and pub.counters.last_error is None


def test_a_refused_receipts_consumer_is_asked_for_again_while_publishing_goes_on(
        tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    link = FakeLink(clock, refuse=False, receipts=False)
    pub, opened = publisher(tmp_path, clock, lambda: link)
    for _ in range(20):
        pub.step(1.0)
    assert pub.counters.published == 1 and len(opened) == 1
    assert 1 < link.subscriptions < 20  # again, with backoff
    link.consuming = True
    asked = link.subscriptions
    pub.step(60.0)
    pub.step(60.0)
    assert link.subscriptions == asked


class FakeChannel:
    """The receipts channel: records acks and nacks."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.nacked: list[tuple[int, bool]] = []
        self.consumer: Callable[..., None] | None = None

    def basic_qos(self, prefetch_count: int) -> None:
        pass

    def basic_consume(self, queue: str, callback: Callable[..., None], auto_ack: bool) -> None:
        self.consumer = callback

    def basic_ack(self, tag: int) -> None:
        self.acked.append(tag)

    def basic_nack(self, tag: int, requeue: bool) -> None:
        self.nacked.append((tag, requeue))


class FakeConnection:
    """A pika connection whose ``process_data_events`` delivers the queued receipts."""

    is_open = True

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.receipts, self.queued = clock, FakeChannel(), []
        self.published: list[str] = []
        self.tags = itertools.count(1)

    def channel(self) -> FakeChannel:
        return self.receipts

    def deliver(self, body: bytes) -> None:
        self.queued.append(body)

    def process_data_events(self, time_limit: float) -> None:
        self.clock.now += time_limit
        while self.queued and self.receipts.consumer is not None:
            self.receipts.consumer(self.receipts, SimpleNamespace(
                delivery_tag=next(self.tags), redelivered=False),
                SimpleNamespace(message_id="r"), self.queued.pop(0))

    # the publishing channel
    def basic_publish(self, exchange: str, routing_key: str, body: bytes, properties: Any,
                      mandatory: bool) -> None:
        self.published.append(exchange)


def receipt(batch_id: str, level: str) -> bytes:
    return json.dumps({"batch_id": batch_id, "level": level, "status": "stored"}).encode()


@pytest.mark.parametrize(("verdict", "acked", "nacked"), [
    (Verdict.ACK, [1], []), (Verdict.DROP, [], [(1, False)])])
def test_a_receipt_is_acked_or_dropped_as_the_outbox_says(
        verdict: Verdict, acked: list[int], nacked: list[tuple[int, bool]]) -> None:
    connection = FakeConnection(FakeClock(0.0))
    link = BrokerLink(connection, connection)  # type: ignore[arg-type]
    link.consume_receipts(LinkSettings("amqp://u:p@h/", "n1"), lambda delivery: verdict)
    connection.deliver(b"{}")
    link.process(1.0)
    assert (connection.receipts.acked, connection.receipts.nacked, link.held) == (
        acked, nacked, 0)


def test_a_receipt_the_outbox_cannot_record_is_held_and_acked_once_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never handed back to the broker: a quorum queue would count each return toward its
    delivery limit and then lose the receipt."""
    clock = FakeClock(0.0)
    connection = FakeConnection(clock)
    pub, first = linked_publisher(tmp_path, clock, connection)
    box = pub.outbox
    pub.step(0.0)  # connects, publishes the first batch
    assert box.batch(first).state is BatchState.SENT  # type: ignore[union-attr]

    record_receipt = box.record_receipt
    tries: list[str] = []

    def full_twice(batch_id: str, level: str, status: str, **counts: Any) -> BatchState:
        tries.append(level)
        if len(tries) <= 2:
            raise RetriableError("database or disk is full")
        return record_receipt(batch_id, level, status, **counts)

    monkeypatch.setattr(box, "record_receipt", full_twice)
    connection.deliver(receipt(first, "province"))
    connection.deliver(receipt(first, "city"))  # waits behind the held one, in order
    pub.step(0.0)
    assert link_of(pub).held == 2 and tries == ["province"]

    box.journal("src", Chunk(valid(record("B"))))
    [second] = box.seal_batches(10, 1 << 20, 0)
    while link_of(pub).held:
        pub.step(1.0)
    assert tries == ["province", "province", "province", "city"]  # failed twice, then both
    assert box.batch(second).state is BatchState.SENT  # type: ignore[union-attr]
    assert connection.receipts.acked == [1, 2] and connection.receipts.nacked == []
    assert [r["level"] for r in box.receipts_of(first)] == ["city", "province"]
    assert pub.counters.receipts == 2 and pub.connected


def test_flush_holds_a_receipt_it_cannot_record_instead_of_failing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(0.0)
    connection = FakeConnection(clock)
    pub, batch = linked_publisher(tmp_path, clock, connection)

    def full(*args: Any, **kwargs: Any) -> BatchState:
        raise RetriableError("database or disk is full")

    monkeypatch.setattr(pub.outbox, "record_receipt", full)
    connection.deliver(receipt(batch, "province"))
    result = pub.flush(5.0)
    assert result.published == 1 and result.pending == 0
    assert link_of(pub).held == 1 and connection.receipts.nacked == []


def link_of(pub: Publisher) -> BrokerLink:
    assert pub._link is not None
    return pub._link


# -- the agent's language -------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "error", "then"), [
    (None, "连接消息服务器：消息服务器 127.0.0.1:1（虚拟主机 /）不可用：连接被拒绝（该地址上没有"
           "服务在监听", "；批次保留在发件箱中，正在重新连接（"),
    ("en", "connecting to the broker: broker 127.0.0.1:1 (vhost /) unavailable: connection "
           "refused (nothing listens there",
     "; batches stay in the outbox, reconnecting (next try in "),
])
def test_a_broker_that_is_down_is_reported_in_the_agents_language(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, lang: str | None, error: str,
        then: str) -> None:
    """Nothing listens on port 1 of the loopback: the real link fails to connect. The
    outbox and the heartbeats keep the English text; the log line is in the agent's
    language (Chinese unless "en"), naming the broker and saying why in words."""
    with Outbox(tmp_path / "o.db") as box:
        box.journal("src", Chunk(valid(record("A"))))
        box.seal_batches(10, 1 << 20, 0)
        link = LinkSettings("amqp://u:p@127.0.0.1:1/", "n1", connect_timeout=5.0)
        if lang is not None:
            link = LinkSettings("amqp://u:p@127.0.0.1:1/", "n1", connect_timeout=5.0,
                                lang=lang)
        settings = PublisherSettings(link, NodeIdentity("n1", "430102", "u",
                                                        generate_node_keys("n1")))
        pub = Publisher(box, settings)
        with caplog.at_level(logging.INFO, "exgate.agent.publisher"):
            result = pub.flush(0.5)
    [line, waiting] = [r for r in caplog.records if r.name == "exgate.agent.publisher"]
    message = line.getMessage()
    assert line.levelno == logging.WARNING and line.node == "n1"  # type: ignore[attr-defined]
    assert waiting.levelno == logging.INFO and "Ctrl-C" in waiting.getMessage()
    assert message.startswith(error) and then in message
    assert result.pending == 1
    assert (result.last_error or "").startswith(
        "connecting to the broker: broker 127.0.0.1:1 (vhost /) unavailable")
    assert result.last_error_said is not None and message.startswith(result.last_error_said)

"""The publisher's reconnect backoff, and what a link that works or keeps failing does."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.amqp.errors import BrokerRefused
from adapters.sealing import generate_node_keys
from adapters.sources.base import Chunk
from frontend_machine.envelope import NodeIdentity
from frontend_machine.link import (
    Delivery,
    LinkSettings,
    ReceiptHandler,
    ReceiptNotRecorded,
    Verdict,
    _on_message,
)
from frontend_machine.outbox import Outbox
from frontend_machine.publisher import Publisher, PublisherSettings
from tests.unit.frontend_machine.test_outbox import FakeClock, record, valid


class FakeLink:
    """A link the broker accepts at login; ``refuse`` makes it close on every publish
    the way a 403 on the records topic does."""

    def __init__(self, clock: FakeClock, refuse: bool, receipts: bool = True) -> None:
        self.clock, self.refuse, self.consuming = clock, refuse, receipts
        self.subscriptions = 0

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


def publisher(tmp_path: Path, clock: FakeClock,
              make_link: Callable[[], FakeLink]) -> tuple[Publisher, list[float]]:
    """A publisher with one pending batch; the list gets the time of every connect."""
    box = Outbox(tmp_path / "o.db")
    box.journal("src", Chunk(valid(record("A"))))
    box.seal_batches(10, 1 << 20, 0)
    settings = PublisherSettings(LinkSettings("amqp://u:p@h/", "n1"),
                                 NodeIdentity("n1", "430102", "u", generate_node_keys("n1")))
    opened: list[float] = []

    def factory(settings: LinkSettings, handler: ReceiptHandler | None) -> Any:
        opened.append(clock.now)
        return make_link()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    return Publisher(box, settings, link_factory=factory, clock=clock, sleep=sleep), opened


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
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.nacked: list[tuple[int, bool]] = []

    def basic_ack(self, tag: int) -> None:
        self.acked.append(tag)

    def basic_nack(self, tag: int, requeue: bool) -> None:
        self.nacked.append((tag, requeue))


@pytest.mark.parametrize(("verdict", "acked", "nacked"), [
    (Verdict.ACK, [7], []), (Verdict.DROP, [], [(7, False)])])
def test_a_receipt_is_acked_or_dropped_as_the_outbox_says(
        verdict: Verdict, acked: list[int], nacked: list[tuple[int, bool]]) -> None:
    channel = FakeChannel()
    on_message = _on_message(lambda delivery: verdict)
    on_message(channel, SimpleNamespace(delivery_tag=7, redelivered=False),
               SimpleNamespace(message_id="B1"), b"{}")
    assert (channel.acked, channel.nacked) == (acked, nacked)


def test_a_receipt_the_outbox_cannot_record_drops_the_link_instead_of_a_requeue_loop() -> None:
    channel = FakeChannel()
    seen: list[Delivery] = []

    def full(delivery: Delivery) -> Verdict:
        seen.append(delivery)
        return Verdict.REQUEUE

    with pytest.raises(ReceiptNotRecorded):
        _on_message(full)(channel, SimpleNamespace(delivery_tag=7, redelivered=False),
                          SimpleNamespace(message_id="B1"), b"{}")
    assert len(seen) == 1 and channel.acked == [] and channel.nacked == []

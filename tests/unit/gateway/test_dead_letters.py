"""Dead letters rescued into the failed-batch store: the decision with a real pipeline over
an in-memory (or SQLite) store, and a pass over a fake dead-queue channel (no broker)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pika
import pika.exceptions as px
import pytest
import sqlalchemy as sa

from adapters.sealing import NodeKeys, generate_node_keys
from adapters.stores.base import SETTLED_BY_STORING, FailedBatch
from adapters.stores.sql import SqlStore
from gateway.dead_letters import (
    DEAD_LETTERED,
    DeadLetters,
    Death,
    dead_letter,
    death_in,
    rescue,
)
from gateway.pipeline import Delivery, Outcome, Pipeline
from schemas.errors import RetriableError
from schemas.messages import Localized
from tests.unit.gateway.test_pipeline import NOW, FakeRegistry, MemoryStore, delivery, plain

LEVEL = "430100"
QUEUE = "exgate.level.430100"
DIED = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)   # 09:30 in Beijing


def x_death(queue_name: str = QUEUE, reason: str = "delivery_limit",
            key: str = "430000.430100.430102.n1") -> dict[str, Any]:
    """Headers as RabbitMQ writes them on a letter dead in ``queue_name``; the latest
    death first (here, one in a queue of another level before)."""
    return {"x-death": [
        {"count": 1, "reason": reason, "queue": queue_name, "time": DIED,
         "exchange": "exgate.records", "routing-keys": [key]},
        {"count": 2, "reason": "rejected", "queue": "exgate.level.430000",
         "time": DIED, "exchange": "exgate.records", "routing-keys": [key]}],
        "x-first-death-queue": "exgate.level.430000", "x-first-death-reason": "rejected",
        "x-first-death-exchange": "exgate.records"}


@pytest.fixture
def keys() -> NodeKeys:
    return generate_node_keys("n1", 1)


def pipeline_over(store: Any, keys: NodeKeys) -> Pipeline:
    registry = FakeRegistry()
    registry.add(keys, "430102")
    return Pipeline(LEVEL, registry, store, clock=lambda: NOW)


def letter_of(keys: NodeKeys, reason: str = "delivery_limit") -> tuple[Delivery, Death]:
    """The dead letter of a good batch: the level queue's name as its routing key."""
    sent = delivery(keys, plain())
    headers = {**sent.headers, **x_death(reason=reason)}
    properties = pika.BasicProperties(message_id=sent.message_id, user_id=sent.user_id,
                                      headers=headers)
    death = death_in(headers, QUEUE)
    assert death is not None
    return dead_letter(properties, sent.body, death, QUEUE), death


# -- what x-death says -------------------------------------------------------------------------


def test_the_detail_says_where_why_how_often_and_when_the_broker_gave_up() -> None:
    death = death_in(x_death(), QUEUE)
    assert death == Death(QUEUE, "delivery_limit", 1, DIED, "430000.430100.430102.n1")
    assert death.cause().en == (
        "was dead-lettered by the broker from exgate.level.430100 at 2026-11-20 09:30:00 "
        "(delivery_limit: returned to the queue more often than its delivery limit "
        "allows, 1 time)")
    assert death.cause().zh == (
        "于 2026-11-20 09:30:00 被消息服务器从 exgate.level.430100 转入死信（delivery_limit："
        "重新入队次数超过投递上限，共 1 次）")
    rejected = death_in(x_death(reason="rejected"), QUEUE)
    assert rejected is not None and "(rejected: rejected without requeue, 1 time)" in \
        rejected.cause().en


def test_without_an_x_death_entry_the_first_death_headers_still_tell() -> None:
    headers = {"x-first-death-queue": QUEUE, "x-first-death-reason": "rejected"}
    death = death_in(headers, QUEUE)
    assert death == Death(QUEUE, "rejected")
    assert death.cause().en == ("was dead-lettered by the broker from exgate.level.430100 "
                                "(rejected: rejected without requeue)")
    assert death.cause().zh == "被消息服务器从 exgate.level.430100 转入死信（rejected：被拒绝且未重新入队）"


def test_a_letter_no_header_says_died_in_the_levels_queue_is_not_its_own() -> None:
    assert death_in({}, QUEUE) is None
    assert death_in({"x-death": "garbage", "x-first-death-queue": 7}, QUEUE) is None
    assert death_in(x_death(queue_name="exgate.level.430102"), QUEUE) is None


def test_the_letter_is_the_message_as_first_delivered(keys: NodeKeys) -> None:
    letter, _ = letter_of(keys)
    assert letter.routing_key == "430000.430100.430102.n1"   # not the dead-letter key
    assert (letter.message_id, letter.user_id, letter.received_at) == ("B1", "u-n1", DIED)
    assert letter.headers["x-exgate-node"] == "n1" and "x-death" in letter.headers


# -- the decision ---------------------------------------------------------------------------


def test_a_dead_letter_is_kept_as_a_failed_batch_with_a_failed_receipt(
        keys: NodeKeys) -> None:
    store = MemoryStore()
    letter, death = letter_of(keys)
    outcome = rescue(pipeline_over(store, keys), letter, death)
    assert outcome is not None
    assert (outcome.status, outcome.reason, outcome.receipt_to) == ("failed", DEAD_LETTERED,
                                                                    "n1")
    [kept] = store.failed
    assert kept == FailedBatch("B1", "n1", DEAD_LETTERED, death.cause().en, letter.body,
                               "430000.430100.430102.n1", letter.headers, "u-n1", DIED)
    assert [(r.batch_id, r.status) for r in store.receipts] == [("B1", "failed")]
    assert outcome.receipt["reasons"] == [f"{DEAD_LETTERED}: {death.cause().en}"]


def test_a_dead_letter_of_a_batch_stored_at_this_level_is_only_acked(keys: NodeKeys) -> None:
    store = MemoryStore()
    pipeline = pipeline_over(store, keys)
    assert pipeline.handle(delivery(keys, plain())).status == "stored"
    receipts = list(store.receipts)
    letter, death = letter_of(keys)
    assert rescue(pipeline, letter, death) is None
    assert store.failed == [] and store.receipts == receipts


def test_a_dead_letter_kept_as_failed_before_makes_no_second_row(
        keys: NodeKeys, sqlite_store: SqlStore) -> None:
    # The store's record_failed keeps one row per batch ID and body, whatever the reason:
    # first the poison path kept it, then its ack was lost and the broker gave up.
    pipeline = pipeline_over(sqlite_store, keys)
    letter, death = letter_of(keys)
    pipeline.quarantine(letter, Localized("连续失败 3 次", "failed 3 times in a row"))
    for _ in range(2):  # and the same letter again, as after a lost ack of the rescue
        assert rescue(pipeline, letter, death) is not None
    f = sqlite_store.schema.failed
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(f)).scalar_one() == 1
    assert sqlite_store.batch_state("B1") == "failed"


def test_storing_the_batch_settles_its_dead_lettered_row() -> None:
    # The store names the reason by its text (adapters import no gateway code).
    assert DEAD_LETTERED in SETTLED_BY_STORING


# -- a pass over the dead queue ----------------------------------------------------------------


@dataclass
class FakeChannel:
    """The dead queue's channel: ready letters, and what the pass did with them."""

    ready: list[tuple[int, pika.BasicProperties, bytes]]
    done: list[tuple[str, Any]] = field(default_factory=list)
    is_open: bool = True
    missing: bool = False   # the dead queue is not there (an older layout)

    def queue_declare(self, queue_name: str, passive: bool = False) -> Any:
        assert passive and queue_name == "exgate.dead.430100"
        if self.missing:
            self.is_open = False
            raise px.ChannelClosedByBroker(404, "NOT_FOUND - no queue")
        return SimpleNamespace(method=SimpleNamespace(message_count=len(self.ready)))

    def basic_get(self, queue_name: str) -> tuple[Any, Any, Any]:
        if not self.ready:
            return None, None, None
        tag, properties, body = self.ready.pop(0)
        return SimpleNamespace(delivery_tag=tag, routing_key=QUEUE), properties, body

    def basic_ack(self, tag: int) -> None:
        self.done.append(("ack", tag))

    def basic_nack(self, tag: int, requeue: bool = True) -> None:
        assert requeue
        self.done.append(("nack", tag))

    def close(self) -> None:
        self.is_open = False


@dataclass
class FakeConnection:
    """Callbacks from the store's thread wait here for the test, the I/O thread."""

    dead_channel: FakeChannel
    callbacks: queue.Queue[Callable[[], None]] = field(default_factory=queue.Queue)

    def channel(self) -> FakeChannel:
        return self.dead_channel

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        self.callbacks.put(callback)


@dataclass
class AwayStore(MemoryStore):
    """Keeping a failed batch fails while ``away``."""

    away: bool = False

    def record_failed(self, failed: FailedBatch) -> None:
        if self.away:
            raise RetriableError("cannot keep failed batch B1 at sqlite:///s.db: database "
                                 "is locked; will retry")
        super().record_failed(failed)


def one_pass(store: Any, keys: NodeKeys, channel: FakeChannel) -> DeadLetters:
    """Run a pass to its end as the consumer's I/O thread would; never hangs."""
    dead = DeadLetters(pipeline_over(store, keys), threading.Event())
    connection = FakeConnection(channel)

    def send_receipt(outcome: Outcome) -> None:
        channel.done.append(("receipt", (outcome.batch_id, outcome.receipt_to)))

    try:
        dead.start(cast(Any, connection), send_receipt)
        while dead.busy():
            connection.callbacks.get(timeout=10)()   # queue.Empty: the pass is stuck
    finally:
        dead.close()
    return dead


def dead_queue_of(keys: NodeKeys, *letters: pika.BasicProperties) -> FakeChannel:
    letter, _ = letter_of(keys)
    return FakeChannel([(tag, properties, letter.body)
                        for tag, properties in enumerate(letters, start=1)])


def ours(keys: NodeKeys) -> pika.BasicProperties:
    sent = delivery(keys, plain())
    return pika.BasicProperties(message_id="B1", user_id="u-n1",
                                headers={**sent.headers, **x_death()})


def test_a_pass_sends_the_receipt_before_it_acks_the_letter(keys: NodeKeys) -> None:
    store = MemoryStore()
    channel = dead_queue_of(keys, ours(keys))
    dead = one_pass(store, keys, channel)
    assert channel.done == [("receipt", ("B1", "n1")), ("ack", 1)]
    assert [f.reason for f in store.failed] == [DEAD_LETTERED]
    assert dead.waiting() == 0 and not channel.is_open


def test_with_the_store_away_the_letter_stays_and_nothing_is_kept(keys: NodeKeys) -> None:
    store = AwayStore(away=True)
    channel = dead_queue_of(keys, ours(keys), ours(keys))
    dead = one_pass(store, keys, channel)
    # Handed back, never acked; the pass stops there and leaves the second untouched.
    assert channel.done == [("nack", 1)]
    assert store.failed == [] and store.receipts == []
    assert dead.waiting() == 2
    store.away = False
    channel = dead_queue_of(keys, ours(keys))
    dead = one_pass(store, keys, channel)
    assert channel.done == [("receipt", ("B1", "n1")), ("ack", 1)]
    assert len(store.failed) == 1 and dead.waiting() == 0


def test_a_letter_that_did_not_die_in_the_levels_queue_is_handed_back_and_counted(
        keys: NodeKeys) -> None:
    heartbeat = pika.BasicProperties(headers={"x-death": [
        {"count": 1, "reason": "expired", "queue": "exgate.status.430100"}]})
    published_by_hand = pika.BasicProperties(message_id="B9")
    channel = dead_queue_of(keys, heartbeat, ours(keys), published_by_hand)
    store = MemoryStore()
    dead = one_pass(store, keys, channel)
    assert sorted(channel.done, key=str) == sorted(
        [("receipt", ("B1", "n1")), ("ack", 2), ("nack", 1), ("nack", 3)], key=str)
    assert [f.batch_id for f in store.failed] == ["B1"]
    assert dead.waiting() == 2


def test_a_receipts_channel_gone_hands_the_letter_back_by_closing_the_pass(
        keys: NodeKeys) -> None:
    """The receipts channel closed mid-pass: the dead queue's channel, which holds the
    letter, is closed too (the broker takes it back) rather than left holding it."""
    channel = dead_queue_of(keys, ours(keys))
    dead = DeadLetters(pipeline_over(MemoryStore(), keys), threading.Event())
    connection = FakeConnection(channel)

    def receipts_gone(outcome: Outcome) -> None:
        raise px.ChannelWrongStateError("Channel is closed.")

    try:
        dead.start(cast(Any, connection), receipts_gone)
        while dead.busy():
            connection.callbacks.get(timeout=10)()
    finally:
        dead.close()
    assert channel.done == [] and not channel.is_open


def test_a_level_without_a_dead_queue_counts_nothing(keys: NodeKeys) -> None:
    channel = FakeChannel([], missing=True)
    dead = one_pass(MemoryStore(), keys, channel)
    assert dead.waiting() is None and not dead.busy() and channel.done == []

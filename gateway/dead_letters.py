"""Rescuing the level's dead letters into the failed-batch store.

The level queue dead-letters a message the broker gave up on (returned more often than
``DELIVERY_LIMIT``, or rejected without requeue by hand) into ``exgate.dead.<division>``,
where no operator tool looks. The consumer starts a pass over that queue every minute:
each letter that died in this level's queue is kept as a failed batch (``dead-lettered``,
what its ``x-death`` says in the detail) by ``Pipeline.quarantine``, as the poison path
keeps one, so ``status``, ``batches list|show|replay`` and the dashboard see it; the node
gets its ``failed`` receipt, and only then is the letter acked.

Nothing lost, nothing doubled:

- the store away (or anything else failing): the letter goes back to the dead queue and
  the pass ends; the next pass tries again. At one return a minute, the dead queue's
  delivery limit (a million) lasts some two years;
- a batch this level has stored (its ack was lost after the write): acked, nothing kept;
- a batch kept as failed before with the same body: ``record_failed`` keeps one copy;
- a letter that did not die in this level's queue (no ``x-death`` names it: published to
  ``exgate.dead`` by hand, or another level's letter under a layout an older exgate
  declared) is not this level's to judge: it stays, counted and logged. The status queue
  has no dead-letter exchange, so no heartbeat gets here.

pika is not thread-safe: the dead queue's channel (one of its own, since a queue that is
not there closes the channel it is asked on, never the consuming one) is used on the
connection's I/O thread only, and the store's work runs on a thread of its own, one
letter at a time, so neither a slow store nor workers busy holding batches through an
outage hold up the I/O thread or the pass.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika
import pika.exceptions as px
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from adapters.amqp.topology import dead_queue, level_queue
from gateway.log_text import both, say
from gateway.pipeline import Delivery, Outcome, Pipeline
from gateway.poison import describe
from schemas.errors import ExgateError, RetriableError
from schemas.messages import Localized
from schemas.times import BEIJING

__all__ = ["DEAD_LETTERED", "DeadLetters", "Death", "dead_letter", "death_in", "rescue"]

log = logging.getLogger("exgate.gateway")
DEAD_LETTERED = "dead-lettered"  # the failed batch's reason code, as refusals have theirs
_WHY = ("delivery_limit", "rejected", "expired", "maxlen")  # said as "why-<reason>"
_CHANNEL_GONE = (px.ChannelClosed, px.ChannelWrongStateError)


@dataclass(frozen=True)
class Death:
    """What the broker wrote in ``x-death`` when it gave up on a message in ``queue``."""

    queue: str
    reason: str                 # delivery_limit | rejected | expired | maxlen
    count: int | None = None
    at: datetime | None = None  # the broker's clock, the first time
    routing_key: str | None = None  # as the message was published

    def cause(self) -> Localized:
        """What happened, after "batch B1 from node n1": the English is the failed
        batch's detail, the log says it in its language."""
        at = "" if self.at is None else \
            both("dead-at", at=f"{self.at.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}")
        times = "" if self.count is None else \
            both("dead-times", count=self.count, plural="" if self.count == 1 else "s")
        why = both(f"why-{self.reason}") if self.reason in _WHY else ""
        return both("dead-lettered", queue=self.queue, at=at, reason=self.reason, why=why,
                    times=times)


def death_in(headers: Mapping[str, Any], queue: str) -> Death | None:
    """How the message died in ``queue``, or None when no dead-letter header names it.

    ``x-death`` holds one entry per (queue, reason), the latest first; ``x-first-death-*``
    (no time, no count) is what an entry-less header still says.
    """
    entries = headers.get("x-death")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and _text(entry.get("queue")) == queue:
            keys = entry.get("routing-keys")
            return Death(queue, _text(entry.get("reason")) or "unknown",
                         _count(entry.get("count")), _when(entry.get("time")),
                         _text(keys[0]) if isinstance(keys, list) and keys else None)
    if _text(headers.get("x-first-death-queue")) == queue:
        return Death(queue, _text(headers.get("x-first-death-reason")) or "unknown")
    return None


def dead_letter(properties: pika.BasicProperties, body: bytes, death: Death,
                fallback_key: str) -> Delivery:
    """The message as the level queue first handed it over: the routing key it was
    published with (a dead letter carries the level queue's name instead), its headers
    (``x-death`` with them, for ``batches show``), and the time it died as received."""
    return Delivery(death.routing_key or fallback_key, body, properties.message_id,
                    properties.user_id, dict(properties.headers or {}),
                    received_at=death.at)


def rescue(pipeline: Pipeline, letter: Delivery, death: Death) -> Outcome | None:
    """Keep a dead letter as a failed batch (the receipt to send in the outcome); None
    when its batch is stored at this level, so acking it is all there is to do.

    Raises whatever keeps the store from answering or keeping it: the letter must stay.
    """
    if letter.message_id and pipeline.store.batch_state(letter.message_id) == "stored":
        log.info(say("dead-letter-stored", pipeline.lang, batch=letter.message_id),
                 extra={"batch_id": letter.message_id})
        return None
    return pipeline.quarantine(letter, death.cause(), reason=DEAD_LETTERED)


@dataclass
class _Pass:
    """One pass over the dead queue, on one connection."""

    connection: BlockingConnection
    channel: BlockingChannel
    send_receipt: Callable[[Outcome], None]
    left: int                   # letters still to take: those there when the pass began
    kept: list[int] = field(default_factory=list)  # delivery tags handed back at the end
    strangers: int = 0          # letters that did not die in this level's queue


class DeadLetters:
    """The level's dead queue, rescued a pass at a time (see the module's docstring);
    logs in the pipeline's language."""

    def __init__(self, pipeline: Pipeline, stop: threading.Event) -> None:
        self.pipeline = pipeline
        self.stop = stop
        self.queue = dead_queue(pipeline.division)
        self.died_in = level_queue(pipeline.division)
        self.lang = pipeline.lang
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="exgate-dead")
        self._pass: _Pass | None = None
        self._waiting: int | None = None

    def waiting(self) -> int | None:
        """Messages the last pass left in the dead queue (None: no pass ended yet, or the
        level has no dead queue)."""
        return self._waiting

    def busy(self) -> bool:
        """True while a pass is under way on a live channel (I/O thread)."""
        return self._pass is not None and self._pass.channel.is_open

    def start(self, connection: BlockingConnection,
              send_receipt: Callable[[Outcome], None]) -> None:
        """Begin a pass (I/O thread); the rest of it runs in callbacks on that thread."""
        channel = connection.channel()
        try:
            ready = _ready(channel, self.queue)
        except px.ChannelClosedByBroker:
            return  # no dead queue (an older layout): nothing to rescue or count
        self._pass = _Pass(connection, channel, send_receipt, ready)
        self._next(self._pass)

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)

    # -- I/O thread ------------------------------------------------------------------------

    def _next(self, run: _Pass) -> None:
        """Take letters until one is to be rescued, and hand it to the store's thread; or
        end the pass. Letters that arrive meanwhile wait for the next pass."""
        try:
            while run.left > 0 and not self.stop.is_set():
                method, properties, body = run.channel.basic_get(self.queue)
                if method is None:
                    break
                run.left -= 1
                death = death_in(properties.headers or {}, self.died_in)
                if death is None:
                    run.kept.append(method.delivery_tag)
                    run.strangers += 1
                    continue
                letter = dead_letter(properties, body, death, method.routing_key)
                self._thread.submit(self._rescue, run, method.delivery_tag, letter, death)
                return
            self._end(run)
        except _CHANNEL_GONE as exc:
            self._lost(run, exc)

    def _settled(self, run: _Pass, tag: int, outcome: Outcome | None, done: bool) -> None:
        if run is not self._pass or not run.channel.is_open:
            return  # the channel is gone, and the broker has the letter back
        try:
            if not done:
                run.kept.append(tag)
                self._end(run)
                return
            if outcome is not None and outcome.receipt_to:
                run.send_receipt(outcome)
            run.channel.basic_ack(tag)
        except _CHANNEL_GONE as exc:
            self._lost(run, exc)
            return
        self._next(run)

    def _end(self, run: _Pass) -> None:
        """Count what stays (still there, and what the pass hands back), hand it back."""
        waiting = _ready(run.channel, self.queue) + len(run.kept)
        for tag in run.kept:
            run.channel.basic_nack(tag, requeue=True)
        run.channel.close()
        self._pass = None
        if waiting and waiting != self._waiting:
            log.warning(say("dead-letters-left", self.lang, waiting=waiting, queue=self.queue,
                            strangers=run.strangers, died_in=self.died_in))
        self._waiting = waiting

    def _lost(self, run: _Pass, exc: Exception) -> None:
        if run is self._pass:
            self._pass = None
        # The failure may be another channel's (the receipts'): closing this one hands
        # back every letter it holds, which would otherwise stay unacked and out of
        # every later pass's sight until the connection drops.
        with contextlib.suppress(px.AMQPError, OSError):
            if run.channel.is_open:
                run.channel.close()
        log.warning(say("dead-pass-stopped", self.lang, queue=self.queue, error=exc))

    # -- the store's thread -----------------------------------------------------------------

    def _rescue(self, run: _Pass, tag: int, letter: Delivery, death: Death) -> None:
        try:
            outcome, done = rescue(self.pipeline, letter, death), True
        except Exception as exc:  # anything: the letter stays, and the next pass retries
            outcome, done = None, False
            log.log(logging.WARNING if isinstance(exc, RetriableError) else logging.ERROR,
                    say("dead-letter-stays", self.lang, batch=letter.message_id,
                        queue=self.queue, error=describe(exc)),
                    exc_info=not isinstance(exc, ExgateError),
                    extra={"batch_id": letter.message_id})
        # If the connection is gone, the broker has the letter back for the next pass.
        with contextlib.suppress(px.ConnectionWrongStateError):
            run.connection.add_callback_threadsafe(
                functools.partial(self._settled, run, tag, outcome, done))


def _ready(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

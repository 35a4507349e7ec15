"""The level's consumer: one pika connection, a pool of workers, acks from the I/O thread.

The connection's thread only does I/O: it runs ``process_data_events`` in a loop, so
AMQP heartbeats keep flowing however long a batch takes or however long the store is
away. Deliveries (at most ``prefetch`` unacked) go to a pool of ``workers`` threads
that run the ``Pipeline``: different nodes in parallel, one node's batches one after
another in the order they came, so every level keeps the same copy of a conflicting
record (``ordered_pool``). A worker hands its verdict back with
``connection.add_callback_threadsafe`` (the one thread-safe pika call), and the I/O
thread publishes the receipt (publisher confirms on) and only then acks.

A worker holds a delivery through transient failures and gives up on a poison one
(``gateway.worker``); its ``Verdict`` comes back here to be acked or nacked.

Past the queue's delivery limit the broker gives up: every ``DEAD_CHECK_S`` the level's
dead queue is rescued into the failed-batch store (``gateway.dead_letters``), and
``dead_letters()`` says how many messages the last pass left there.

``consuming()`` says whether a connection is up with both queues consumed: the
dashboard's ``/healthz`` and ``exgate_broker_connected`` read it (``gateway.run`` starts
the process around the consumer). ``holds()`` says how many deliveries are held through
failures and since when (``gateway.holds``): ``/healthz``, ``/metrics`` and the
dashboard's banner show a store that refuses writes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions as px
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from adapters.amqp.errors import CONNECT_ERRORS, GATEWAY_LOGIN, BrokerAddress, mapped, url_user
from adapters.amqp.topology import (
    DELIVERY_LIMIT,
    RECEIPTS_EXCHANGE,
    declare_exchanges,
    declare_level,
    level_queue,
    status_queue,
)
from gateway.config import GatewaySettings
from gateway.dead_letters import DeadLetters
from gateway.holds import Holds, HoldState
from gateway.log_text import both, say
from gateway.ordered_pool import OrderedPool
from gateway.pipeline import Delivery, Outcome, Pipeline
from gateway.worker import Verdict, Worker, backoff
from schemas.errors import RetriableError

__all__ = ["Consumer"]

log = logging.getLogger("exgate.gateway")
DEAD_CHECK_S = 60.0  # how often a pass over the level's dead queue starts
STOP_GRACE_S = 30.0


@dataclass
class _Session:
    """One connection and what hangs off it; ``dead`` tells workers to let go."""

    connection: BlockingConnection
    channel: BlockingChannel
    receipts: BlockingChannel
    dead: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    last_activity: float = field(default_factory=time.monotonic)


class Consumer:
    """Consumes ``exgate.level.<division>`` and ``exgate.status.<division>``; logs in the
    pipeline's language."""

    def __init__(self, broker_url: str, pipeline: Pipeline, settings: GatewaySettings, *,
                 drain: bool = False, stop: threading.Event | None = None) -> None:
        self.broker_url = broker_url
        self._broker = BrokerAddress.of_url(broker_url)
        self._user = url_user(broker_url)
        self.pipeline = pipeline
        self.settings = settings
        self.drain = drain
        self.stop = stop or threading.Event()
        self.division = pipeline.division
        self.lang = pipeline.lang
        self._pool = OrderedPool(settings.workers, thread_name_prefix="exgate-worker")
        self._warned_as_found = False  # about queues declared with other arguments
        self._consuming = threading.Event()
        self._dead = DeadLetters(pipeline, self.stop)
        self._dead_checked = 0.0
        self._holds = Holds()
        self._worker = Worker(pipeline, settings, self.stop, self._holds)

    def consuming(self) -> bool:
        """True while connected with the level's queues consumed; thread-safe."""
        return self._consuming.is_set()

    def dead_letters(self) -> int | None:
        """Messages the last pass left in the level's dead queue (None: none ended yet).

        Those are letters the store could not take yet, or not this level's batches:
        for ``/metrics`` and the log. The rescued ones are failed batches by then.
        """
        return self._dead.waiting()

    def holds(self) -> HoldState:
        """The deliveries held through failures now, and since when; thread-safe.

        For ``/healthz``, ``/metrics`` and the dashboard: a store that refuses writes
        shows there, not only in the log.
        """
        return self._holds.state()

    # -- the outer loop: reconnect with backoff -------------------------------------------

    def run(self) -> None:
        """Consume until ``stop`` is set (or, with ``drain``, until the queue is empty)."""
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    if self._session():
                        return
                    failures = 0
                except RetriableError as exc:
                    failures += 1
                    delay = backoff(failures)
                    log.warning(say("reconnecting", self.lang, error=exc, delay=delay))
                    self.stop.wait(delay)
        finally:
            self._pool.shutdown()
            self._dead.close()

    def _session(self) -> bool:
        """One connection's life; True when drained, False when asked to stop."""
        session = self._open()
        try:
            return self._loop(session)
        except CONNECT_ERRORS as exc:
            raise self._mapped(exc, "doing-consume") from exc
        finally:
            self._consuming.clear()
            session.dead.set()
            _close(session.connection)

    def _open(self) -> _Session:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.broker_url))
        except CONNECT_ERRORS as exc:
            raise self._mapped(exc, "doing-connect") from exc
        try:
            channel = self._declared(connection)
            channel.basic_qos(prefetch_count=self.settings.prefetch)
            receipts = connection.channel()
            receipts.confirm_delivery()
            session = _Session(connection, channel, receipts)
            channel.basic_consume(level_queue(self.division),
                                  functools.partial(self._on_message, session, "batch"))
            channel.basic_consume(status_queue(self.division),
                                  functools.partial(self._on_message, session, "heartbeat"))
        except CONNECT_ERRORS as exc:
            _close(connection)
            raise self._mapped(exc, "doing-declare") from exc
        self._consuming.set()
        log.info(say("consuming", self.lang, queue=level_queue(self.division),
                     workers=self.settings.workers, prefetch=self.settings.prefetch))
        return session

    def _mapped(self, exc: BaseException, doing: str) -> RetriableError:
        """A broker failure while ``doing`` (a text of ``gateway.log_text``), in both
        languages, naming this level's broker, and the user of a refused login."""
        said = both(doing, queue=level_queue(self.division))
        return mapped(exc, said.en, said.zh, user=self._user, broker=self._broker,
                      login_remedy=GATEWAY_LOGIN)

    def _declared(self, connection: BlockingConnection) -> BlockingChannel:
        """A channel on which the level's topology is declared, or found declared
        otherwise: a queue an older exgate made keeps its arguments, with a warning.

        The exchanges are only found where they are (``exgate broker start`` and
        ``exgate gateway user`` declare them), so a level's gateway user needs no
        configure permission on them, which would let it delete them; on a broker
        without them they are declared, by a user that may."""
        channel = connection.channel()
        try:
            declare_exchanges(channel, passive=True)
        except px.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:  # NOT_FOUND: a broker not set up by exgate yet
                raise
            channel = connection.channel()
            declare_exchanges(channel)
        try:
            declare_level(channel, self.division)
            return channel
        except px.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # PRECONDITION_FAILED: declared with other arguments
                raise
            refusal = exc.reply_text
        channel = connection.channel()
        declare_level(channel, self.division, passive=True)
        if not self._warned_as_found:
            self._warned_as_found = True
            log.warning(say("queues-as-found", self.lang, refusal=refusal,
                            effect=_older_queue_effect(refusal, self.lang),
                            queue=level_queue(self.division)))
        return channel

    def _loop(self, session: _Session) -> bool:
        while not self.stop.is_set():
            session.connection.process_data_events(time_limit=0.5)
            if time.monotonic() - self._dead_checked >= DEAD_CHECK_S and \
                    not self._dead.busy() and not self.stop.is_set():
                self._dead_checked = time.monotonic()
                self._dead.start(session.connection,
                                 functools.partial(self._send_receipt, session))
            if self.drain and self._drained(session):
                log.info(say("drained", self.lang, queue=level_queue(self.division),
                             seconds=self.settings.drain_idle_seconds))
                return True
        self._wind_down(session)
        return False

    def _drained(self, session: _Session) -> bool:
        idle = time.monotonic() - session.last_activity
        if session.in_flight or self._dead.busy() or idle < self.settings.drain_idle_seconds:
            return False
        for queue in (level_queue(self.division), status_queue(self.division)):
            declared = session.channel.queue_declare(queue, passive=True)
            if declared.method.message_count:
                session.last_activity = time.monotonic()
                return False
        return True

    def _wind_down(self, session: _Session) -> None:
        """Stop taking work; give running batches (and the dead letter being kept) a
        moment to finish and be acked."""
        deadline = time.monotonic() + STOP_GRACE_S
        session.channel.stop_consuming()
        while (session.in_flight or self._dead.busy()) and time.monotonic() < deadline:
            session.connection.process_data_events(time_limit=0.2)

    # -- I/O thread: deliveries in, verdicts out -------------------------------------------

    def _on_message(self, session: _Session, kind: str, channel: BlockingChannel,
                    method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        delivery = Delivery(method.routing_key, body, properties.message_id,
                            properties.user_id, dict(properties.headers or {}),
                            bool(method.redelivered), arrived_at=self.pipeline.clock())
        if delivery.redelivered and kind == "batch":
            log.info(say("redelivered", self.lang, batch=delivery.message_id,
                         count=delivery.headers.get("x-delivery-count", "?")),
                     extra={"batch_id": delivery.message_id})
        session.in_flight += 1
        session.last_activity = time.monotonic()
        # One sender's batches are stored in the order they came (``ordered_pool``).
        self._pool.submit((kind, method.routing_key),
                          functools.partial(self._run, session, method.delivery_tag, delivery,
                                            kind, time.monotonic()))

    def _finish(self, session: _Session, tag: int, verdict: Verdict) -> None:
        session.in_flight -= 1
        session.last_activity = time.monotonic()
        if session.dead.is_set() or not session.channel.is_open:
            return  # the broker requeues it; the store makes the retry harmless
        outcome = verdict.outcome
        if verdict.action == "ack" and outcome is not None and outcome.receipt_to:
            self._send_receipt(session, outcome)
        if verdict.action == "ack":
            session.channel.basic_ack(tag)
        elif verdict.action == "requeue":
            session.channel.basic_nack(tag, requeue=True)

    def _send_receipt(self, session: _Session, outcome: Outcome) -> None:
        assert outcome.receipt_to is not None
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
            correlation_id=outcome.batch_id, app_id="exgate-gateway")
        try:
            session.receipts.basic_publish(
                RECEIPTS_EXCHANGE, outcome.receipt_to,
                json.dumps(outcome.receipt, ensure_ascii=False).encode(), properties,
                mandatory=True)
        except (px.UnroutableError, px.NackError) as exc:
            # Stored (or kept as failed) all the same; the receipt is in ST_RECEIPT and a
            # resend of the batch by the node gets a fresh one.
            log.warning(say("receipt-not-sent", self.lang, batch=outcome.batch_id,
                            node=outcome.receipt_to, error=self._mapped(exc, "doing-receipt")),
                        extra={"batch_id": outcome.batch_id, "node_id": outcome.receipt_to})

    # -- worker threads ----------------------------------------------------------------------

    def _run(self, session: _Session, tag: int, delivery: Delivery, kind: str,
             taken: float) -> None:
        verdict = self._worker.patiently(session.dead, delivery, kind, taken)
        # If the connection is gone the delivery is redelivered and the store dedupes it.
        with contextlib.suppress(px.ConnectionWrongStateError):
            session.connection.add_callback_threadsafe(
                functools.partial(self._finish, session, tag, verdict))


def _older_queue_effect(refusal: str, lang: str) -> str:
    """What the argument the broker names in ``refusal`` changes for the operator."""
    if "x-dead-letter-routing-key" in refusal:
        return say("older-routing-key", lang)
    if "x-delivery-limit" in refusal:
        return say("older-delivery-limit", lang, limit=DELIVERY_LIMIT)
    return ""


def _close(connection: BlockingConnection) -> None:
    if connection.is_open:
        with contextlib.suppress(px.AMQPError, OSError):
            connection.close()

"""One AMQP connection of the agent: a confirm-mode publishing channel and a receipts
consumer. This is the only agent module that touches pika; every pika exception leaves
it as an ``adapters.amqp.errors`` exception.

``BlockingConnection`` is not thread-safe: one thread owns a link. Only ``wake`` may be
called from another thread (it cuts short a ``process`` wait).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pika
import pika.exceptions as px
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from adapters.amqp.errors import CONNECT_ERRORS, BrokerAddress, mapped
from adapters.amqp.parameters import broker_parameters
from adapters.amqp.topology import receipts_queue
from frontend_machine.report import say
from schemas.errors import message_of
from schemas.messages import Localized

__all__ = ["BrokerLink", "Delivery", "LinkSettings", "Verdict"]

log = logging.getLogger("exgate.agent.link")


class Verdict(Enum):
    """What to do with a consumed receipt once the handler has run."""

    ACK = "ack"  # committed to the outbox
    REQUEUE = "requeue"  # the outbox could not commit: hold it unacked, try again later
    DROP = "drop"  # malformed: it can never be applied


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    message_id: str | None
    redelivered: bool


ReceiptHandler = Callable[[Delivery], Verdict]


@dataclass(frozen=True, slots=True)
class _Held:
    channel: BlockingChannel
    tag: int
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """How the agent reaches its broker. pika's parameters are built once, here: a URL
    pika refuses (``UnusableBrokerURL``) stops the agent at start-up, not at each try.
    Its TLS context too: a CA file replaced on disk is read when the agent restarts (or
    rereads its credentials file after a refused login)."""

    url: str = field(repr=False)
    node_id: str
    user: str | None = None  # overrides the URL's user (from the credentials file)
    password: str | None = field(default=None, repr=False)
    heartbeat: int = 30
    connect_timeout: float = 10.0
    blocked_timeout: float = 60.0
    receipt_prefetch: int = 50
    lang: str = "zh"  # of the agent's log lines, the publisher's too ("zh" or "en")
    _parameters: pika.URLParameters = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        params = broker_parameters(self.url)
        if self.user is not None:
            params.credentials = pika.PlainCredentials(self.user, self.password or "")
        params.heartbeat = self.heartbeat
        params.connection_attempts = 1
        params.socket_timeout = self.connect_timeout
        params.blocked_connection_timeout = self.blocked_timeout
        params.client_properties = {"connection_name": f"exgate-agent {self.node_id}"}
        object.__setattr__(self, "_parameters", params)

    def parameters(self) -> pika.URLParameters:
        return self._parameters

    @property
    def broker(self) -> BrokerAddress:
        """Host, port and virtual host: what every broker failure names."""
        return BrokerAddress.of(self._parameters)

    @property
    def broker_user(self) -> str:
        """The user the broker authenticates us as: the ``user_id`` of every message."""
        return str(getattr(self._parameters.credentials, "username", ""))


@contextmanager
def _boundary(doing: Localized, broker: BrokerAddress | None,
              user: str | None = None) -> Iterator[None]:
    """pika's exceptions as exgate's, naming ``broker``; ``user``: the broker user a
    refused login names."""
    try:
        yield
    except CONNECT_ERRORS as exc:
        raise mapped(exc, doing.en, doing.zh, user=user, broker=broker) from exc


class BrokerLink:
    """An open connection; build it with ``BrokerLink.open``, always ``close`` it.

    A receipt the outbox could not record is held here unacked, and the ones delivered
    after it queue behind it so the outbox records them in order, until ``retry_held``
    gets them recorded. Handed back to the broker instead (nack with requeue, or a
    closed connection, which returns every unacked one), each would count toward the
    delivery limit of a RabbitMQ 4 quorum queue (20 by default), past which the receipt
    is gone for good. The receipts prefetch bounds how many are held.
    """

    def __init__(self, connection: BlockingConnection, publishing: BlockingChannel,
                 broker: BrokerAddress | None = None) -> None:
        self._connection = connection
        self._publishing = publishing
        self._broker = broker
        self.consuming = False
        self._held: list[_Held] = []

    @property
    def held(self) -> int:
        """How many receipts wait unacked for the outbox to record them."""
        return len(self._held)

    @classmethod
    def open(cls, settings: LinkSettings, on_receipt: ReceiptHandler | None) -> BrokerLink:
        broker = settings.broker
        with _boundary(Localized("连接消息服务器", "connecting to the broker"), broker,
                       settings.broker_user):
            connection = BlockingConnection(settings.parameters())
        try:
            with _boundary(Localized("打开发布通道", "opening the publishing channel"), broker):
                channel = connection.channel()
                channel.confirm_delivery()
        except BaseException:
            _close_quietly(connection)
            raise
        link = cls(connection, channel, broker)
        if on_receipt is not None:
            link.consume_receipts(settings, on_receipt)
        return link

    def consume_receipts(self, settings: LinkSettings, handler: ReceiptHandler) -> bool:
        """Start consuming the node's receipts; False (logged) when the broker refuses."""
        queue = receipts_queue(settings.node_id)
        try:
            with _boundary(Localized(f"订阅回执队列 {queue}", f"consuming {queue}"),
                           self._broker):
                channel = self._connection.channel()
                channel.basic_qos(prefetch_count=settings.receipt_prefetch)
                channel.basic_consume(queue, self._on_message(handler), auto_ack=False)
        except Exception as exc:  # receipts are optional for publishing: keep sending
            log.warning(say("receipts-refused", settings.lang,
                            error=message_of(exc, settings.lang)),
                        extra={"node": settings.node_id})
            return False
        self.consuming = True
        return True

    def publish(self, exchange: str, routing_key: str, body: bytes,
                properties: pika.BasicProperties, *, mandatory: bool,
                doing: Localized) -> None:
        """Publish and wait for the broker's confirm; raises on return, nack or loss."""
        with _boundary(doing, self._broker):
            self._publishing.basic_publish(exchange, routing_key, body, properties,
                                           mandatory=mandatory)

    def retry_held(self, handler: ReceiptHandler) -> bool:
        """Record the held receipts in order, acking each once recorded; stops at the
        first the outbox still cannot record. True when none is held any more."""
        while self._held:
            held = self._held[0]
            if not self._settle(held, handler(held.delivery)):
                return False
            self._held.pop(0)
        return True

    def _on_message(self, handler: ReceiptHandler) -> Callable[..., None]:
        def on_message(channel: BlockingChannel, method: Any, properties: Any,
                       body: bytes) -> None:
            held = _Held(channel, method.delivery_tag,
                         Delivery(body, properties.message_id, bool(method.redelivered)))
            if self._held or not self._settle(held, handler(held.delivery)):
                self._held.append(held)

        return on_message

    def _settle(self, held: _Held, verdict: Verdict) -> bool:
        """Ack or drop the receipt as the outbox said; False when it must be held."""
        receipt = held.delivery.message_id
        with _boundary(Localized(f"确认回执 {receipt}", f"settling receipt {receipt}"),
                       self._broker):
            if verdict is Verdict.ACK:
                held.channel.basic_ack(held.tag)
            elif verdict is Verdict.DROP:
                held.channel.basic_nack(held.tag, requeue=False)
            else:
                return False
        return True

    def process(self, seconds: float) -> None:
        """Serve heartbeats and deliver receipts for up to ``seconds`` (less if woken)."""
        with _boundary(Localized("等待消息服务器事件", "waiting for broker events"),
                       self._broker):
            self._connection.process_data_events(time_limit=max(0.0, seconds))

    def wake(self) -> None:
        """From any thread: make a running ``process`` return early."""
        with contextlib.suppress(Exception):
            self._connection.add_callback_threadsafe(lambda: None)

    @property
    def is_open(self) -> bool:
        return bool(self._connection.is_open and self._publishing.is_open)

    def close(self) -> None:
        _close_quietly(self._connection)


def _close_quietly(connection: BlockingConnection) -> None:
    if connection.is_closed:
        return
    with contextlib.suppress(px.AMQPError, OSError):
        connection.close()

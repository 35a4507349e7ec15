"""Sending a replayed batch's receipt back to its node, best effort.

The consumer sends a receipt for every batch it handles; a replay from the CLI does the
same so the node's outbox learns that the level now stored the batch. The receipt is
already in ``ST_RECEIPT``; when it cannot be sent the replay still counts, and the
node's ``exgate agent replay ID`` resends the batch, which the level takes as a
redelivery and answers with a fresh receipt.

Every receipt not sent is answered with why (in both languages; a broker failure names
the broker: ``adapters.amqp.errors``), so the operator learns which nodes to tell.
A receipt the broker refuses (no receipt queue for the node, a nack) costs only itself;
once the connection fails, later receipts are not tried, since each try could wait out
the socket timeout, and share the first one's answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions as px

from adapters.amqp.errors import CONNECT_ERRORS, GATEWAY_LOGIN, BrokerAddress, mapped, url_user
from adapters.amqp.topology import RECEIPTS_EXCHANGE
from gateway.log_text import say
from gateway.pipeline import Outcome
from schemas.messages import Localized

__all__ = ["BrokerReceipts"]

log = logging.getLogger("exgate.gateway.replay")


@dataclass
class BrokerReceipts:
    """Publishes receipts with confirms on one lazily opened connection.

    Calling it sends ``outcome``'s receipt and returns None, or why it was not sent
    (Chinese and English; the log gets it in ``lang``).
    """

    broker_url: str = field(repr=False)
    lang: str = "zh"
    _connection: Any = field(default=None, repr=False)
    _channel: Any = field(default=None, repr=False)
    _down: Localized | None = None   # why the broker cannot be reached, once it could not

    def __call__(self, outcome: Outcome) -> Localized | None:
        error = self._down or self._publish(outcome)
        if error is not None:
            log.warning(say("receipt-not-sent", self.lang, batch=outcome.batch_id,
                            node=outcome.receipt_to, error=error),
                        extra={"batch_id": outcome.batch_id, "node_id": outcome.receipt_to})
        return error

    def _publish(self, outcome: Outcome) -> Localized | None:
        try:
            channel = self._open()
            channel.basic_publish(
                RECEIPTS_EXCHANGE, outcome.receipt_to,
                json.dumps(outcome.receipt, ensure_ascii=False).encode(),
                pika.BasicProperties(content_type="application/json",
                                     delivery_mode=pika.DeliveryMode.Persistent,
                                     correlation_id=outcome.batch_id,
                                     app_id="exgate-gateway"),
                mandatory=True)
        except px.UnroutableError:
            return Localized(f"消息服务器上没有节点 {outcome.receipt_to} 的回执队列",
                             f"the broker has no receipt queue for node {outcome.receipt_to}")
        except px.NackError:
            return Localized("消息服务器拒绝接收（nack）", "the broker refused it (nack)")
        except Exception as exc:  # best effort: pika raises TypeError on some URLs too
            self._down = self._why(exc)
            self.close()
            return self._down
        return None

    def _why(self, exc: Exception) -> Localized:
        """Why the broker cannot take receipts, naming it (never the password)."""
        if isinstance(exc, CONNECT_ERRORS):
            error = mapped(exc, "publishing receipts", "发送回执", user=url_user(self.broker_url),
                           broker=BrokerAddress.of_url(self.broker_url),
                           login_remedy=GATEWAY_LOGIN)
            return Localized(error.message("zh"), str(error))
        raw = f"{type(exc).__name__} {exc}".strip()
        return Localized(f"无法发送回执：{raw}", f"cannot publish receipts: {raw}")

    def _open(self) -> Any:
        if self._channel is None:
            params = pika.URLParameters(self.broker_url)
            params.connection_attempts, params.socket_timeout = 1, 5
            self._connection = pika.BlockingConnection(params)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(px.AMQPError, OSError):
                self._connection.close()
        self._connection = self._channel = None

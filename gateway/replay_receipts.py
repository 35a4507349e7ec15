"""Sending a replayed batch's receipt back to its node, best effort.

The consumer sends a receipt for every batch it handles; a replay from the CLI does the
same so the node's outbox learns that the level now stored the batch. The receipt is
already in ``ST_RECEIPT``; when it cannot be sent the replay still counts, and the
node's ``exgate agent replay ID`` resends the batch, which the level takes as a
redelivery and answers with a fresh receipt.

Every receipt not sent is answered with why, so the operator learns which nodes to tell.
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

from adapters.amqp.topology import RECEIPTS_EXCHANGE
from adapters.config_files import redact
from gateway.pipeline import Outcome

__all__ = ["BrokerReceipts"]

log = logging.getLogger("exgate.gateway.replay")


@dataclass
class BrokerReceipts:
    """Publishes receipts with confirms on one lazily opened connection.

    Calling it sends ``outcome``'s receipt and returns None, or why it was not sent.
    """

    broker_url: str = field(repr=False)
    _connection: Any = field(default=None, repr=False)
    _channel: Any = field(default=None, repr=False)
    _down: str | None = None   # why the broker cannot be reached, once it could not

    def __call__(self, outcome: Outcome) -> str | None:
        error = self._down or self._publish(outcome)
        if error is not None:
            log.warning("receipt for batch %s not sent to node %s: %s", outcome.batch_id,
                        outcome.receipt_to, error,
                        extra={"batch_id": outcome.batch_id, "node_id": outcome.receipt_to})
        return error

    def _publish(self, outcome: Outcome) -> str | None:
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
            return f"the broker has no receipt queue for node {outcome.receipt_to}"
        except px.NackError:
            return "the broker refused it (nack)"
        except Exception as exc:  # best effort: pika raises TypeError on some URLs too
            self._down = (f"cannot publish via {redact(self.broker_url)}: "
                          f"{type(exc).__name__} {exc}".strip())
            self.close()
            return self._down
        return None

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

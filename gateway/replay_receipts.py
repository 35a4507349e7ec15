"""Sending a replayed batch's receipt back to its node, best effort.

The consumer sends a receipt for every batch it handles; a replay from the CLI does the
same so the node's outbox learns that the level now stored the batch. The receipt is
already in ``ST_RECEIPT``; when the broker cannot be reached the replay still counts,
and a resend of the batch by the node (``exgate agent replay``) fetches a fresh receipt.
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
from gateway.config import redact
from gateway.pipeline import Outcome

__all__ = ["BrokerReceipts"]

log = logging.getLogger("exgate.gateway.replay")


@dataclass
class BrokerReceipts:
    """Publishes receipts with confirms on one lazily opened connection."""

    broker_url: str = field(repr=False)
    problems: list[str] = field(default_factory=list)
    _connection: Any = field(default=None, repr=False)
    _channel: Any = field(default=None, repr=False)
    _broken: bool = False

    def __call__(self, outcome: Outcome) -> None:
        if self._broken or outcome.receipt_to is None:
            return
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
        except Exception as exc:  # best effort: pika raises TypeError on some URLs too
            self._broken = True
            problem = (f"receipt for batch {outcome.batch_id} not sent to node "
                       f"{outcome.receipt_to} via {redact(self.broker_url)}: "
                       f"{type(exc).__name__} {exc}".strip())
            self.problems.append(problem)
            log.warning(problem, extra={"batch_id": outcome.batch_id,
                                        "node_id": outcome.receipt_to})

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

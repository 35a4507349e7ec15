"""The agent's heartbeat on ``exgate.status``: who it is and how far behind it is.

Each heartbeat expires after ``TTL_S`` in the queues (per-message ``expiration``: the
status queues are declared already, and RabbitMQ refuses to redeclare a queue with
another ``x-message-ttl``). The gateway stamps a beat with the time it takes it, so a
backlog of old beats, left while a gateway or a link was down, would make a silent node
look alive and bury the lag trend; the next beat is at most 30 s away anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import pika

from frontend_machine.outbox import Outbox
from schemas.times import BEIJING

__all__ = ["TTL_S", "Heartbeat", "agent_version", "heartbeat_body", "heartbeat_properties"]

TTL_S = 600  # the default [status] silent_s of the gateways: older says nothing more


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node_id: str
    division: str
    source_lag_s: float | None = None
    last_error: str | None = None


@cache
def agent_version() -> str:
    try:
        return version("exgate")
    except PackageNotFoundError:
        return "unknown"


def heartbeat_properties(broker_user: str, now: float) -> pika.BasicProperties:
    """Transient, expiring after ``TTL_S``; ``user_id`` lets the gateway trust the sender."""
    return pika.BasicProperties(
        user_id=broker_user, content_type="application/json", app_id="exgate-agent",
        timestamp=int(now), delivery_mode=pika.DeliveryMode.Transient,
        expiration=str(TTL_S * 1000))


def heartbeat_body(beat: Heartbeat, outbox: Outbox, now: float) -> bytes:
    depth = outbox.depth()
    oldest = outbox.oldest_pending_age()
    return json.dumps({
        "node_id": beat.node_id,
        "division": beat.division,
        "at": datetime.fromtimestamp(now, BEIJING).isoformat(timespec="seconds"),
        "version": agent_version(),
        # Not yet stored at every level: a sent batch missing a receipt counts too, or a
        # level that never got it would leave the node green at the centre.
        "outbox": {"pending_batches": depth.pending_batches + depth.sent_batches,
                   "unbatched_records": depth.unbatched_records,
                   "oldest_pending_age_s": None if oldest is None else round(oldest, 3)},
        "source_lag_s": beat.source_lag_s,
        "last_error": beat.last_error,
    }, ensure_ascii=False).encode()

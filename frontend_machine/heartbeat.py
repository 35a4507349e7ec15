"""The agent's heartbeat on ``exgate.status``: who it is and how far behind it is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from frontend_machine.outbox import Outbox
from schemas.times import BEIJING

__all__ = ["Heartbeat", "agent_version", "heartbeat_body"]


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


def heartbeat_body(beat: Heartbeat, outbox: Outbox, now: float) -> bytes:
    depth = outbox.depth()
    oldest = outbox.oldest_pending_age()
    return json.dumps({
        "node_id": beat.node_id,
        "division": beat.division,
        "at": datetime.fromtimestamp(now, BEIJING).isoformat(timespec="seconds"),
        "version": agent_version(),
        "outbox": {"pending_batches": depth.pending_batches,
                   "unbatched_records": depth.unbatched_records,
                   "oldest_pending_age_s": None if oldest is None else round(oldest, 3)},
        "source_lag_s": beat.source_lag_s,
        "last_error": beat.last_error,
    }, ensure_ascii=False).encode()

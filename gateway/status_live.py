"""What only the running gateway knows, for ``exgate status``: the writes it holds.

While the store refuses writes, ``gateway run`` holds its deliveries and heartbeats
(``gateway.holds``); the store cannot say so, and nodes merely look late. The consumer's
dashboard publishes the hold on ``/status.json`` (``store_writes``), so the command asks
the level's own gateway there, when ``[dashboard] listen`` is set, briefly and on
loopback when the dashboard listens on every address. No answer (no gateway running,
no dashboard, a dashboard of ``exgate dashboard`` alone) means nothing is known, never
an error: the store's view is still printed.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from typing import Any

from gateway.config import parse_listen
from gateway.holds import HoldState
from schemas.times import BEIJING

__all__ = ["held_writes"]

ASK_TIMEOUT_S = 2.0
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def held_writes(listen: str | None, timeout: float = ASK_TIMEOUT_S) -> HoldState | None:
    """The hold the gateway's dashboard at ``listen`` reports; None when it says nothing."""
    if listen is None:
        return None
    host, port = parse_listen(listen)
    host = _ANY_ADDRESS.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    # A config's own address, never a user's URL: only http to the dashboard's port.
    request = urllib.request.Request(f"http://{shown}:{port}/status.json",
                                     headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read(1 << 22))
    except (OSError, ValueError):  # refused, timed out, a 503 while the store is away, not JSON
        return None
    return _hold_state(data.get("store_writes") if isinstance(data, dict) else None)


def _hold_state(writes: Any) -> HoldState | None:
    if not isinstance(writes, dict):
        return None
    held, age = writes.get("held"), writes.get("age_s")
    if not isinstance(held, int) or not isinstance(age, int | float):
        return None
    return HoldState(held, _naive_beijing(writes.get("since")), float(age))


def _naive_beijing(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(BEIJING).replace(tzinfo=None)
    return moment

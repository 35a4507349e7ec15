"""What only the running gateway knows, for ``exgate status``: the writes it holds.

While the store refuses writes, ``gateway run`` holds its deliveries and heartbeats
(``gateway.holds``); the store cannot say so, and nodes merely look late. The consumer's
dashboard publishes the hold on ``/status.json`` (``store_writes``), so the command asks
the level's own gateway there, when ``[dashboard] listen`` is set: on loopback when the
dashboard listens on every address, straight to it (never through the environment's
proxy, never following a redirect), 2 s for each step and 4 MB at most. No answer, or
one from another level's dashboard (no gateway running, no dashboard, a dashboard of
``exgate dashboard`` alone, a port taken by another service) means nothing is known,
never an error: the store's view is still printed.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from datetime import datetime
from typing import Any

from gateway.config import parse_listen
from gateway.holds import HoldState
from schemas.times import BEIJING

__all__ = ["held_writes"]

ASK_TIMEOUT_S = 2.0
MAX_ANSWER_BYTES = 1 << 22
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def held_writes(listen: str | None, division: str,
                timeout: float = ASK_TIMEOUT_S) -> HoldState | None:
    """The hold that the dashboard of level ``division`` at ``listen`` reports; None
    when none answers for that level."""
    if listen is None:
        return None
    host, port = parse_listen(listen)
    host = _ANY_ADDRESS.get(host, host)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/status.json", headers={"Accept": "application/json"})
        response = connection.getresponse()
        if response.status != 200:  # 503 while the store is away; a redirect is not followed
            return None
        body = _read(response, time.monotonic() + timeout)
    except (OSError, http.client.HTTPException):  # refused, timed out, not HTTP
        return None
    finally:
        connection.close()
    try:
        data = json.loads(body, parse_constant=_no_constant) if body is not None else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("level") != division:
        return None
    return _hold_state(data.get("store_writes"))


def _read(response: http.client.HTTPResponse, deadline: float) -> bytes | None:
    """The answer, or None when it is larger than ``MAX_ANSWER_BYTES`` or still coming
    at ``deadline`` (a trickle resets the socket's timeout at every byte)."""
    parts, size = [], 0
    # read1: what one receive brings. read(n) would wait for all n bytes, however slowly
    # they come, and never reach the deadline check.
    while chunk := response.read1(65536):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES or time.monotonic() > deadline:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is no JSON number")


def _hold_state(writes: Any) -> HoldState | None:
    if not isinstance(writes, dict):
        return None
    held, age = writes.get("held"), writes.get("age_s")
    if isinstance(held, bool) or not isinstance(held, int) or held < 0 \
            or isinstance(age, bool) or not isinstance(age, int | float) \
            or not math.isfinite(age) or age < 0:
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

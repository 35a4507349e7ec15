"""Deliveries the consumer holds through failures: how many, and since when.

The consumer holds a batch or heartbeat it cannot store (``Worker.patiently``) and
retries it with backoff, so a store that refuses writes shows in the log only, while
heartbeats stop reaching the store and nodes turn yellow one by one, blamed for the
level's trouble. ``Holds`` keeps the state for ``/healthz``, ``/metrics`` and the
dashboard's banner.

The trouble starts with the first failure of a delivery and ends when a delivery goes
through (stored, or kept as failed: either way the store took a write) with no other
held. A delivery handed back to the queue after ``hold_seconds`` is redelivered at once
and fails again: the trouble goes on, since that time, instead of starting over. Only
when nothing has failed for ``QUIET_S`` with nothing held (the delivery went to another
process of the level, say) is the trouble forgotten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from adapters.stores.sql_values import now_beijing

__all__ = ["HOLD_ALERT_S", "QUIET_S", "HoldState", "Holds"]

HOLD_ALERT_S = 60.0  # held this long, the level is in trouble: /healthz 503, a banner
QUIET_S = 60.0       # twice the consumer's longest backoff: a held delivery fails sooner


@dataclass(frozen=True, slots=True)
class HoldState:
    """What the consumer holds now: ``held`` deliveries, failing since ``since``."""

    held: int = 0
    since: datetime | None = None     # naive Beijing time; None while nothing fails
    age_s: float = 0.0                # seconds since ``since``

    @property
    def alarming(self) -> bool:
        """Held long enough that waiting is no longer a hiccup: someone must look."""
        return self.since is not None and self.age_s >= HOLD_ALERT_S


class Holds:
    """Thread-safe: the consumer's workers report, the dashboard's threads read."""

    def __init__(self, clock: Callable[[], datetime] = now_beijing,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock, self._monotonic = clock, monotonic
        self._lock = threading.Lock()
        self._held: dict[object, tuple[float, datetime]] = {}
        self._since: tuple[float, datetime] | None = None
        self._last_failure = 0.0

    def failed(self, token: object) -> None:
        """The delivery ``token`` stands for failed: it is held from its first failure."""
        with self._lock:
            now = (self._monotonic(), self._clock())
            self._held.setdefault(token, now)
            self._since = self._since or now
            self._last_failure = now[0]

    def ended(self, token: object, *, through: bool) -> None:
        """The delivery is done with (held or not): ``through`` when the store took it."""
        with self._lock:
            self._held.pop(token, None)
            if through:
                # The store takes writes: the trouble is what the others still wait on.
                self._since = min(self._held.values(), default=None)

    def state(self) -> HoldState:
        with self._lock:
            now = self._monotonic()
            if not self._held and now - self._last_failure >= QUIET_S:
                self._since = None
            if self._since is None:
                return HoldState(len(self._held))
            return HoldState(len(self._held), self._since[1], max(0.0, now - self._since[0]))

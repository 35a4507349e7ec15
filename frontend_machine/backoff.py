"""Exponential backoff with jitter, for reconnecting and for re-publishing refused batches;
``Reminder``, the same idea for repeating one log line."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff", "Reminder"]


@dataclass
class Backoff:
    """``failure()`` doubles the delay up to ``maximum`` and returns it with jitter
    (between half and all of it, so a fleet of agents does not reconnect in step);
    ``success()`` resets it. ``ready()`` says whether the delay has passed."""

    initial: float = 0.5
    maximum: float = 60.0
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    next_at: float = 0.0

    def failure(self) -> float:
        self.failures += 1
        ceiling = min(self.maximum, self.initial * 2.0 ** min(self.failures - 1, 30))
        delay = ceiling * self.rng.uniform(0.5, 1.0)
        self.next_at = self.clock() + delay
        return delay

    def success(self) -> None:
        self.failures = 0
        self.next_at = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.next_at

    def remaining(self) -> float:
        return max(0.0, self.next_at - self.clock())


@dataclass
class Reminder:
    """Whether a log line that may repeat for hours is due: a new text at once, the same
    text again after ``first`` seconds, then after ever doubling intervals up to
    ``maximum``. An agent the centre locked out retries all night; a line per attempt
    would bury everything else in its log, while silence would hide why nothing moves.
    """

    first: float = 60.0
    maximum: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _text: str | None = None
    _interval: float = 0.0
    _next_at: float = 0.0

    def due(self, text: str) -> bool:
        now = self.clock()
        if text != self._text:
            self._text, self._interval = text, self.first
        elif now < self._next_at:
            return False
        else:
            self._interval = min(self._interval * 2.0, self.maximum)
        self._next_at = now + self._interval
        return True

    def reset(self) -> None:
        """The condition is over: its text, seen again, is news."""
        self._text, self._interval, self._next_at = None, 0.0, 0.0

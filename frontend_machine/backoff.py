"""Exponential backoff with jitter, for reconnecting and for re-publishing refused batches."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


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

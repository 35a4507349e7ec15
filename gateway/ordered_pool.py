"""A thread pool that keeps each sender's deliveries in their order.

The levels must agree on what they store. When a node sends two copies of one record
version with different content (a conflict), the copy a store meets first is kept and
the other goes to ``ST_CONFLICT``. Every level receives a node's batches in the order
the node published them; if two workers of one gateway stored them in parallel, the
later batch could commit first at one level and not at another, and the levels would
keep different copies. So the tasks of one key (one node's batches) run one after
another, in submission order, while different keys share the workers in parallel.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["OrderedPool"]

Task = Callable[[], None]


class OrderedPool:
    """``workers`` threads; the tasks of one key run one at a time, in order."""

    def __init__(self, workers: int, thread_name_prefix: str) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=thread_name_prefix)
        self._lock = threading.Lock()
        # A key is present while one of its tasks runs; its deque holds the ones after.
        self._queued: dict[Hashable, deque[Task]] = {}

    def submit(self, key: Hashable, task: Task) -> None:
        with self._lock:
            waiting = self._queued.get(key)
            if waiting is not None:
                waiting.append(task)
                return
            self._queued[key] = deque()
        self._pool.submit(self._run, key, task)

    def shutdown(self) -> None:
        """Wait for the running tasks; drop the queued ones (their deliveries go back to
        the queue with the connection)."""
        with self._lock:
            for waiting in self._queued.values():
                waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, key: Hashable, task: Task) -> None:
        try:
            task()
        finally:
            self._next(key)

    def _next(self, key: Hashable) -> None:
        with self._lock:
            waiting = self._queued[key]
            if not waiting:
                del self._queued[key]
                return
            task = waiting.popleft()
        # Resubmitted rather than run here, so that one busy key cannot hold a worker
        # while other keys wait. After shutdown the pool refuses it, as it should.
        with contextlib.suppress(RuntimeError):
            self._pool.submit(self._run, key, task)

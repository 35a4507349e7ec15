"""The store's upkeep beside the consumer: heartbeats past their retention are deleted.

An agent beats every 30 s, so ``ST_HEARTBEAT`` gains about 2,900 rows per node a day.
The status lights read the beats of the last ``lag_window_s`` and each node's latest
(however old: a silent node still shows when it was last heard), so ``[status]
heartbeat_retention_days`` (7 by default, never below ``lag_window_s``) keeps a week for
people and deletes the rest. A thread does it at start and then hourly, not per
message, in chunks of ``CHUNK`` rows, each its own short transaction: a batch write
(on SQLite, the one writer) waits for one chunk at most. A failure is logged and tried
again next time; upkeep never stops the gateway.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from gateway.log_text import say

__all__ = ["CHUNK", "EVERY_S", "Housekeeper", "housekeeping"]

log = logging.getLogger("exgate.gateway")
EVERY_S = 3600.0
CHUNK = 2000
JOIN_S = 30.0


class Housekeeper:
    """Deletes the level's old heartbeats; ``sweep`` once, ``run`` until stopped."""

    def __init__(self, store: SqlStore, retention_days: float, *,
                 clock: Callable[[], datetime] = now_beijing, lang: str = "zh") -> None:
        self.store = store
        self.retention_days = retention_days
        self.clock = clock
        self.lang = lang  # of the log

    def sweep(self, stop: threading.Event | None = None) -> int:
        """Delete what is past retention, chunk by chunk; how many heartbeats went."""
        before = self.clock() - timedelta(days=self.retention_days)
        deleted = 0
        while stop is None or not stop.is_set():
            went = self.store.prune_heartbeats(before, CHUNK)
            deleted += went
            if went < CHUNK:
                break
        return deleted

    def run(self, stop: threading.Event, every_s: float = EVERY_S) -> None:
        while not stop.is_set():
            try:
                deleted = self.sweep(stop)
            except Exception as exc:  # the store away, or worse: next time, never fatal
                log.warning(say("heartbeats-not-deleted", self.lang, days=self.retention_days,
                                every=every_s, error=exc))
            else:
                if deleted:
                    log.info(say("heartbeats-deleted", self.lang, count=deleted,
                                 days=self.retention_days))
            stop.wait(every_s)


@contextlib.contextmanager
def housekeeping(store: SqlStore, retention_days: float, every_s: float = EVERY_S, *,
                 lang: str = "zh") -> Iterator[Housekeeper]:
    """A ``Housekeeper`` running in a daemon thread for as long as the block lasts,
    logging in ``lang``."""
    keeper = Housekeeper(store, retention_days, lang=lang)
    stop = threading.Event()
    thread = threading.Thread(target=keeper.run, args=(stop, every_s),
                              name="exgate-housekeeping", daemon=True)
    thread.start()
    try:
        yield keeper
    finally:
        stop.set()
        # A sweep stuck connecting to an unreachable database must not hold the gateway's
        # exit: the thread is a daemon, and a sweep is harmless to cut short.
        thread.join(timeout=JOIN_S)

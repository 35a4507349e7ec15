"""``exgate gateway run``: one level's gateway process.

The consumer and, beside it, the dashboard (when ``[dashboard] listen`` is set) and the
store's housekeeping, after the store's tables are brought up to date. Apart from
``consumer`` because this is start-up and wiring, and the consumer is the message loop.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from adapters.stores.sql import SqlStore
from gateway.config import GatewayConfig, load_config
from gateway.consumer import Consumer, backoff
from gateway.dashboard.server import DashboardServer
from gateway.housekeeping import housekeeping
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from schemas.errors import ConfigError, RetriableError

__all__ = ["run_gateway"]

log = logging.getLogger("exgate.gateway")


def run_gateway(config_path: Path, workers: int | None = None, drain: bool = False,
                stop: threading.Event | None = None) -> int:
    """``exgate gateway run``: 0 after a clean stop or drain, 2 for a config error."""
    try:
        config = load_config(config_path).with_workers(workers)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    try:
        store = SqlStore(config.store_url)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        if not _migrate(store, stop):
            return 0
        pipeline = Pipeline(config.division, Registry(config.registry_path), store)
        consumer = Consumer(config.broker_url, pipeline, config.gateway, drain=drain, stop=stop)
        with contextlib.ExitStack() as beside:
            beside.enter_context(_dashboard(config, store, consumer.consuming))
            beside.enter_context(housekeeping(store, config.heartbeat_retention_days))
            consumer.run()
    finally:
        store.close()
    return 0


@contextlib.contextmanager
def _dashboard(config: GatewayConfig, store: SqlStore,
               consuming: Callable[[], bool]) -> Iterator[DashboardServer | None]:
    """The status dashboard beside the consumer when ``[dashboard] listen`` is set.

    None when it cannot listen: consuming is this process's job, and the port is most
    likely another gateway process's of the same level (a second process, or the
    service a ``--drain`` run was started beside).
    """
    if not config.dashboard_listen:
        yield None
        return
    from gateway.dashboard.command import ListenError, open_dashboard

    try:
        server = open_dashboard(config, store, connected=consuming).start()
    except ListenError as exc:
        log.warning("%s; consuming without a dashboard (is another gateway process of "
                    "level %s serving it?)", exc, config.division)
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


def _migrate(store: SqlStore, stop: threading.Event) -> bool:
    """Bring the store's tables up to date, waiting while the database is away."""
    failures = 0
    while not stop.is_set():
        try:
            store.migrate()
            return True
        except RetriableError as exc:
            failures += 1
            log.warning("store %s not ready: %s", store.redacted_url, exc)
            stop.wait(backoff(failures))
    return False

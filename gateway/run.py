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
from urllib.parse import urlsplit

from adapters.config_files import lang_setting
from adapters.heap import startup_frozen
from adapters.stores.sql import SqlStore
from gateway.config import GatewayConfig, load_config
from gateway.consumer import Consumer
from gateway.dashboard.server import DashboardServer
from gateway.holds import HoldState
from gateway.housekeeping import housekeeping
from gateway.log_text import say
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.worker import backoff
from schemas.errors import ConfigError, FatalError, RetriableError, located

__all__ = ["run_gateway"]

log = logging.getLogger("exgate.gateway")


def run_gateway(config_path: Path, workers: int | None = None, drain: bool = False,
                stop: threading.Event | None = None) -> int:
    """``exgate gateway run``: 0 after a clean stop or drain, 2 for a config error, 1 when
    the store cannot be used at all. It logs in ``[gateway] lang``."""
    try:
        config = load_config(config_path).with_workers(workers)
        check_consumable(config)
    except ConfigError as exc:
        log.error("%s", exc.message(lang_setting(config_path, "gateway")))
        return 2
    lang = config.lang
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    try:
        store = SqlStore(config.store_url)
    except ConfigError as exc:
        log.error("%s", exc.message(lang))
        return 2
    try:
        try:
            if not _migrate(store, stop, lang):
                return 0
        except FatalError as exc:  # no login, no such database: no retry can help
            log.error("%s", exc.message(lang))
            return 1
        pipeline = Pipeline(config.division, Registry(config.registry_path), store, lang=lang)
        consumer = Consumer(config.broker_url, pipeline, config.gateway, drain=drain, stop=stop)
        with contextlib.ExitStack() as beside:
            beside.enter_context(_dashboard(config, store, consumer.consuming,
                                            consumer.dead_letters, consumer.holds))
            beside.enter_context(housekeeping(store, config.heartbeat_retention_days,
                                              lang=lang))
            with startup_frozen():
                consumer.run()
    finally:
        store.close()
    return 0


def check_consumable(config: GatewayConfig) -> None:
    """What only consuming needs, which the read-only commands sharing the config do not:
    a broker password, and a registry folder (a mistyped one refused every batch as an
    unknown node's, with no receipt)."""
    if urlsplit(config.broker_url).username and urlsplit(config.broker_url).password is None:
        raise located(str(config.path), "[broker] url names a user but no password: set "
                      "[broker] password_file or EXGATE_BROKER_PASSWORD",
                      "[broker] url 给出了用户名但没有口令：请设置 [broker] password_file "
                      "或环境变量 EXGATE_BROKER_PASSWORD")
    if not config.registry_path.is_dir():
        raise located(str(config.path), f"[registry] path {config.registry_path} is not a "
                      "folder (exgate node add creates it): every batch would be refused as "
                      "from an unknown node",
                      f"[registry] path {config.registry_path} 不是文件夹（由 exgate node add "
                      "创建）：所有批次都会被当作未登记节点的批次拒收")


@contextlib.contextmanager
def _dashboard(config: GatewayConfig, store: SqlStore,
               consuming: Callable[[], bool],
               dead_letters: Callable[[], int | None] | None = None,
               holds: Callable[[], HoldState] | None = None
               ) -> Iterator[DashboardServer | None]:
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
        server = open_dashboard(config, store, connected=consuming,
                                dead_letters=dead_letters, holds=holds).start()
    except ListenError as exc:
        log.warning(say("no-dashboard", config.lang, error=exc, division=config.division))
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


def _migrate(store: SqlStore, stop: threading.Event, lang: str) -> bool:
    """Bring the store's tables up to date, waiting while the database is away."""
    failures = 0
    while not stop.is_set():
        try:
            store.migrate()
            return True
        except RetriableError as exc:
            failures += 1
            log.warning(say("store-not-ready", lang, store=store.redacted_url, error=exc))
            stop.wait(backoff(failures))
    return False

"""Running the dashboard: inside ``exgate gateway run`` or alone (``exgate dashboard``).

Alone, a dashboard that cannot listen is the command's failure (exit 2). Inside
``gateway run`` it is not: several processes may consume one level, and only one of them
can have the port (``ListenError`` lets the consumer tell this apart).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from adapters.config_files import lang_setting
from adapters.stores.sql import SqlStore
from gateway.config import GatewayConfig, load_config, parse_listen
from gateway.dashboard.server import DashboardServer
from gateway.holds import HoldState
from gateway.status_source import StatusSource
from schemas.errors import ConfigError, wrapped

__all__ = ["DEFAULT_LISTEN", "REPORT_CACHE_S", "ListenError", "open_dashboard", "run_dashboard"]

log = logging.getLogger("exgate.dashboard")
DEFAULT_LISTEN = "127.0.0.1:8430"
REPORT_CACHE_S = 5.0  # several browsers and a Prometheus share one report


class ListenError(ConfigError):
    """The dashboard's address is taken or not this host's."""


def open_dashboard(config: GatewayConfig, store: SqlStore, listen: str | None = None, *,
                   connected: Callable[[], bool] | None = None,
                   dead_letters: Callable[[], int | None] | None = None,
                   holds: Callable[[], HoldState] | None = None) -> DashboardServer:
    """A dashboard server (not started) on ``listen`` or ``[dashboard] listen``.

    ``connected``, ``dead_letters``, ``holds``: the consumer's state beside it, for
    ``/healthz``, ``/metrics`` and the page's banner.
    """
    try:
        host, port = parse_listen(listen or config.dashboard_listen or DEFAULT_LISTEN)
    except ConfigError as exc:
        raise wrapped(f"dashboard listen {listen!r}", exc,
                     where_zh=f"看板监听地址 {listen!r}") from exc
    source = StatusSource(store, config.division, config.status,
                          registry_path=config.registry_path, cache_s=REPORT_CACHE_S)
    try:
        return DashboardServer(source, host, port, refresh_s=config.dashboard_refresh_s,
                               connected=connected, dead_letters=dead_letters,
                               holds=holds, lang=config.lang)
    except OSError as exc:
        raise ListenError(f"dashboard cannot listen on {host}:{port}: {exc.strerror}",
                          zh=f"看板无法监听 {host}:{port}：{exc.strerror}") from exc


def run_dashboard(config_path: Path, listen: str | None = None) -> int:
    """``exgate dashboard``: serve until SIGTERM/SIGINT; 0 clean stop, 2 config error.
    It logs in ``[gateway] lang``."""
    try:
        config = load_config(config_path)
        store = SqlStore(config.store_url, create=False)  # it only reads: never a new one
    except ConfigError as exc:
        log.error("%s", exc.message(lang_setting(config_path, "gateway")))
        return 2
    try:
        server = open_dashboard(config, store, listen)
    except ConfigError as exc:
        store.close()
        log.error("%s", exc.message(config.lang))
        return 2
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"exgate dashboard: {server.url}/", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        store.close()
    return 0

"""The read-only dashboard server: stdlib ``ThreadingHTTPServer``, GET and HEAD only.

Routes: ``/`` (the page; ``?lang=en`` for English), ``/status.json`` (the shape of
``gateway.status_json``), ``/metrics`` (Prometheus), ``/healthz`` and ``/static/<file>``
(the packaged files only; uPlot is served from here, never from a CDN). Any other
method is answered 405. It binds loopback unless ``[dashboard] listen`` says otherwise,
and has no login of its own: expose it through the site's reverse proxy if needed.

When there is no report to show, every request still gets an answer: 503 while the
store cannot be read, 500 (the traceback in the log) for anything else, as a small page
in the reader's language that reloads itself, as JSON on ``/status.json``. ``/metrics``
answers 200 with ``exgate_store_up`` 0 while the store is away. Connection details go
to the log only. ``/healthz`` is 200 ``ok`` or 503 with a short reason: the
broker not consumed (inside ``gateway run``), deliveries held through failures for
``gateway.holds.HOLD_ALERT_S`` or more (the store refuses writes: the page shows a banner too), or
the store not answering. A client idle for ``REQUEST_TIMEOUT_S`` is let go, and past
``MAX_CONNECTIONS`` at once new ones are closed unanswered.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.dashboard.page import render_page, render_trouble
from gateway.holds import HoldState
from gateway.log_text import say
from gateway.metrics import CONTENT_TYPE, metrics_registry, render_metrics
from gateway.status_json import JSON_SCHEMA, report_text
from gateway.status_source import StatusSource
from gateway.status_text import LANGS
from schemas.errors import ExgateError

__all__ = ["DashboardServer", "load_static"]

log = logging.getLogger("exgate.dashboard")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".LICENSE": "text/plain; charset=utf-8"}
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"
_PAGES = ("/", "/index.html")
_SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def load_static() -> dict[str, tuple[bytes, str]]:
    """The packaged static files by name, with their content types."""
    folder = files("gateway.dashboard") / "static"
    found = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _TYPES:
            found[item.name] = (item.read_bytes(), _TYPES[suffix])
    return found


@dataclass(frozen=True)
class _Response:
    status: HTTPStatus
    body: bytes
    content_type: str
    cache: str = "no-store"
    headers: tuple[tuple[str, str], ...] = ()


# A client that sends nothing for this long is let go, and at most this many are
# served at once (a thread each); the others are closed at once. A page is one request
# and a few static files: a slow or idle client otherwise holds a thread for good, and
# a few hundred of them exhaust the gateway process the dashboard runs in.
REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 32


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "exgate-dashboard"
    timeout = REQUEST_TIMEOUT_S

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._send(self._route(), head=False)

    def do_HEAD(self) -> None:
        self._send(self._route(), head=True)

    def __getattr__(self, name: str) -> Any:
        # Every other method (POST, PUT, DELETE, OPTIONS, …): read-only server.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(_Response(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n",
                             _TEXT, headers=(("Allow", "GET, HEAD"),)), head=False)

    def _route(self) -> _Response:
        url = urlsplit(self.path)
        lang = (parse_qs(url.query).get("lang") or ["zh"])[0]
        lang = lang if lang in LANGS else "zh"
        try:
            return self._answer(url.path, lang)
        except ExgateError as exc:  # the store is away or is not one
            log.warning(say("dashboard-unanswered", self.server.app.lang, path=url.path,
                            error=exc))
            return self._trouble(url.path, lang, HTTPStatus.SERVICE_UNAVAILABLE,
                                 "store-unavailable")
        except Exception:  # a wallboard left without an answer would hang there for good
            log.exception(say("dashboard-failed", self.server.app.lang, path=url.path))
            return self._trouble(url.path, lang, HTTPStatus.INTERNAL_SERVER_ERROR,
                                 "internal-error")

    def _answer(self, path: str, lang: str) -> _Response:
        app = self.server.app
        if path in _PAGES:
            page = render_page(app.source.report(), lang, app.refresh_s, app.holds())
            return _Response(HTTPStatus.OK, page.encode(), _HTML)
        if path == "/status.json":
            return _Response(HTTPStatus.OK, report_text(app.source.report(),
                                                        holds=app.holds()).encode(), _JSON)
        if path == "/metrics":
            return _Response(HTTPStatus.OK, render_metrics(app.registry), CONTENT_TYPE)
        if path == "/healthz":
            problem = app.health()
            if problem is None:
                return _Response(HTTPStatus.OK, b"ok\n", _TEXT)
            return _Response(HTTPStatus.SERVICE_UNAVAILABLE, f"{problem}\n".encode(), _TEXT)
        name = path.removeprefix("/static/")
        if path.startswith("/static/") and name in app.static:
            body, kind = app.static[name]
            return _Response(HTTPStatus.OK, body, kind, "public, max-age=3600")
        return _Response(HTTPStatus.NOT_FOUND, b"not found\n", _TEXT)

    def _trouble(self, path: str, lang: str, status: HTTPStatus, reason: str) -> _Response:
        refresh_s = self.server.app.refresh_s
        if path in _PAGES:
            page = render_trouble(reason, lang, refresh_s)
            return _Response(status, page.encode(), _HTML,
                             headers=(("Refresh", str(int(refresh_s))),))
        if path == "/status.json":
            body = json.dumps({"schema": JSON_SCHEMA, "error": reason})
            return _Response(status, body.encode(), _JSON)
        return _Response(status, f"{reason}\n".encode(), _TEXT)

    def _send(self, response: _Response, *, head: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", response.cache)
        for name, value in response.headers:
            self.send_header(name, value)
        for name, value in _SECURITY.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


@dataclass(frozen=True)
class _App:
    source: StatusSource
    refresh_s: int
    static: dict[str, tuple[bytes, str]]
    registry: Any
    health: Callable[[], str | None]      # None when healthy, else why not
    holds: Callable[[], HoldState | None]  # None: no consumer beside the dashboard
    lang: str                              # of the log ([gateway] lang)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: _App
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: refused, never queued on a thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


def _health(source: StatusSource, connected: Callable[[], bool] | None,
            holds: Callable[[], HoldState] | None, lang: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if connected is not None and not connected():
            return "broker not connected"
        held = holds() if holds is not None else None
        if held is not None and held.alarming and held.since is not None:
            return (f"store refuses writes: {held.held} deliveries held, failing since "
                    f"{held.since:%Y-%m-%d %H:%M:%S}")
        try:
            source.check_store()
        except ExgateError as exc:
            log.warning(say("healthz-failed", lang, error=exc))
            return "store unreachable"
        return None
    return check


class DashboardServer:
    """The dashboard on ``host:port`` in a background thread; ``with`` stops it.

    ``connected`` tells whether the consumer beside it is consuming (``gateway run``),
    ``holds`` what it holds through failures; without one (``exgate dashboard``) health
    is the store's alone. It logs in ``lang``; each page is in its reader's language.
    """

    def __init__(self, source: StatusSource, host: str = "127.0.0.1", port: int = 8430, *,
                 refresh_s: int = 30, connected: Callable[[], bool] | None = None,
                 dead_letters: Callable[[], int | None] | None = None,
                 holds: Callable[[], HoldState] | None = None, lang: str = "zh") -> None:
        self._httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self._httpd.app = _App(source, refresh_s, load_static(),
                               metrics_registry(source.report, source.level, connected,
                                                dead_letters, holds, lang),
                               _health(source, connected, holds, lang),
                               holds or (lambda: None), lang)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        address = self._httpd.server_address
        host, port = str(address[0]), int(address[1])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="exgate-dashboard", daemon=True)
        self._thread.start()
        log.info(say("dashboard-on", self._httpd.app.lang, url=self.url))
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def shutdown(self) -> None:
        """Ask a ``serve_forever`` running in another thread to return."""
        self._httpd.shutdown()

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

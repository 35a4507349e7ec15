"""The read-only dashboard server: stdlib ``ThreadingHTTPServer``, GET and HEAD only.

Routes: ``/`` (the page; ``?lang=en`` for English), ``/status.json`` (the shape of
``gateway.status_json``), ``/metrics`` (Prometheus), ``/healthz`` and ``/static/<file>``
(the packaged files only; uPlot is served from here, never from a CDN). Any other
method is answered 405. It binds loopback unless ``[dashboard] listen`` says otherwise,
and has no login of its own: expose it through the site's reverse proxy if needed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.dashboard.page import render_page
from gateway.metrics import CONTENT_TYPE, metrics_registry, render_metrics
from gateway.status_json import report_json
from gateway.status_source import StatusSource
from gateway.status_text import LANGS
from schemas.errors import ExgateError

__all__ = ["DashboardServer", "load_static"]

log = logging.getLogger("exgate.dashboard")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".LICENSE": "text/plain; charset=utf-8"}
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


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "exgate-dashboard"

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
                             "text/plain; charset=utf-8"), head=False, allow=True)

    def _route(self) -> _Response:
        url = urlsplit(self.path)
        app = self.server.app
        try:
            if url.path in ("/", "/index.html"):
                lang = (parse_qs(url.query).get("lang") or ["zh"])[0]
                page = render_page(app.source.report(), lang if lang in LANGS else "zh",
                                   app.refresh_s)
                return _Response(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            if url.path == "/status.json":
                text = json.dumps(report_json(app.source.report()), ensure_ascii=False)
                return _Response(HTTPStatus.OK, text.encode(), "application/json")
            if url.path == "/metrics":
                return _Response(HTTPStatus.OK, render_metrics(app.registry), CONTENT_TYPE)
        except ExgateError as exc:
            log.warning("dashboard: %s", exc)
            return _Response(HTTPStatus.SERVICE_UNAVAILABLE, f"store unavailable: {exc}\n"
                             .encode(), "text/plain; charset=utf-8")
        if url.path == "/healthz":
            return _Response(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        name = url.path.removeprefix("/static/")
        if url.path.startswith("/static/") and name in app.static:
            body, kind = app.static[name]
            return _Response(HTTPStatus.OK, body, kind, "public, max-age=3600")
        return _Response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, response: _Response, *, head: bool, allow: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", response.cache)
        if allow:
            self.send_header("Allow", "GET, HEAD")
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: _App


class _Server6(_Server):
    address_family = socket.AF_INET6


class DashboardServer:
    """The dashboard on ``host:port`` in a background thread; ``with`` stops it."""

    def __init__(self, source: StatusSource, host: str = "127.0.0.1", port: int = 8430, *,
                 refresh_s: int = 30) -> None:
        self._httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self._httpd.app = _App(source, refresh_s, load_static(),
                               metrics_registry(source.report))
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
        log.info("dashboard on %s", self.url)
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

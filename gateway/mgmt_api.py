"""The RabbitMQ management HTTP API, for provisioning: users, permissions, declarations.

Milliseconds per call where ``rabbitmqctl`` takes a second, and passwords travel in
request bodies, never on a command line. ``HttpChannel`` lets the shared topology code
(``declare_topology``) declare through the API without AMQP credentials.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from gateway.broker_node import LocalBroker
from gateway.log_text import say
from schemas.errors import ConfigError, FatalError, RetriableError

__all__ = ["HttpChannel", "ManagementApi", "ManagementError", "exactly", "segment"]

log = logging.getLogger("exgate.broker")


class ManagementError(FatalError):
    """The API answered with an error status; ``reason`` is the broker's own words."""

    def __init__(self, message: str, *, status: int, reason: str = "") -> None:
        # The broker's answer stays as it is; the Chinese names who answered and how.
        super().__init__(message, zh=f"管理 API 返回错误（HTTP {status}）：{message}")
        self.status = status
        self.reason = reason


class ManagementApi:
    """``root`` is ``http://host:port``; the user needs the administrator tag."""

    def __init__(self, root: str, user: str, password: str, timeout: float = 30.0) -> None:
        self.root = root.rstrip("/") + "/api/"
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ManagementApi({self.root!r})"

    @classmethod
    def from_url(cls, url: str) -> ManagementApi:
        """``http://admin@127.0.0.1:15672``; the password from ``EXGATE_ADMIN_PASSWORD``
        (kept out of the command line, ``ps`` and shell history) or, failing that, the URL."""
        try:
            parts = urlsplit(url)
            port = parts.port  # a port that is no number raises only here
        except ValueError:  # "[::1" or ":port": said like any other malformed URL
            parts, port = urlsplit(""), None
        if parts.scheme not in ("http", "https") or not parts.username or not parts.hostname:
            raise ConfigError("--admin-url must look like http://USER@HOST:PORT (the management "
                              "plugin's address); put the password in EXGATE_ADMIN_PASSWORD",
                              zh="--admin-url 应形如 http://USER@HOST:PORT（管理插件的地址）；"
                                 "密码请放在 EXGATE_ADMIN_PASSWORD 中")
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        if port:
            netloc += f":{port}"
        root = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        password = os.environ.get("EXGATE_ADMIN_PASSWORD") or unquote(parts.password or "")
        return cls(root, unquote(parts.username), password)

    @classmethod
    def from_broker(cls, broker: LocalBroker) -> ManagementApi:
        if broker.management_url is None:
            raise ConfigError(f"the broker in {broker.base_dir} runs without the management "
                              "plugin; start it with management enabled",
                              zh=f"{broker.base_dir} 中的消息服务器未启用管理插件；"
                                 "请在启用管理插件的情况下启动它")
        return cls(broker.management_url, broker.admin_user, broker.admin_password)

    def get(self, path: str) -> Any:
        return self._send("GET", path, None)

    def find(self, path: str) -> Any:
        """``get``, or None where the broker has nothing at ``path`` (404)."""
        try:
            return self.get(path)
        except ManagementError as exc:
            if exc.status != 404:
                raise
            return None

    def put(self, path: str, body: Mapping[str, Any]) -> None:
        self._send("PUT", path, body)

    def post(self, path: str, body: Mapping[str, Any]) -> None:
        self._send("POST", path, body)

    def delete(self, path: str, *, missing_ok: bool = True,
               headers: Mapping[str, str] | None = None) -> None:
        try:
            self._send("DELETE", path, None, headers)
        except ManagementError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None,
              headers: Mapping[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.root + path, data=data, method=method,
            headers={"Authorization": self._auth, "Content-Type": "application/json",
                     **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                text = answer.read()
        except urllib.error.HTTPError as exc:
            answer_text = exc.read().decode(errors="replace")
            exc.close()
            detail = answer_text[:300]
            if exc.code == 401:
                raise ConfigError(f"management API {self.root}: login refused",
                                  zh=f"管理 API {self.root}：登录被拒绝") from exc
            raise ManagementError(f"{method} {path}: HTTP {exc.code} {detail}",
                                  status=exc.code, reason=_reason(answer_text)) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RetriableError(f"management API {self.root} unreachable: {exc}",
                                 zh=f"无法连接管理 API {self.root}：{exc}") from exc
        return json.loads(text) if text else None


def _reason(detail: str) -> str:
    """The ``reason`` of the API's JSON error body, or "" when it has none."""
    try:
        body = json.loads(detail)
    except ValueError:
        return ""
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else ""


def segment(name: str) -> str:
    """``name`` as one segment of a management API path (a vhost, a user, an object)."""
    return quote(name, safe="")


def exactly(*names: str) -> str:
    """A permission or policy pattern matching these names and nothing else (RabbitMQ
    matches its patterns unanchored)."""
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


class HttpChannel:
    """The declaring part of a pika channel, over the management API (one vhost).

    Where a pika channel is closed by a queue that exists with other arguments (an older
    exgate declared it), this one keeps the queue as it is and says so, as the gateway
    does (``gateway.consumer``): provisioning goes on against a broker set up earlier.
    It says so in ``lang``, the command's.
    """

    def __init__(self, api: ManagementApi, vhost: str = "/", lang: str = "zh") -> None:
        self.api = api
        self.vhost = vhost
        self.lang = lang

    def exchange_declare(self, exchange: str, exchange_type: Any = "direct",
                         passive: bool = False, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         arguments: Mapping[str, Any] | None = None) -> None:
        self.api.put(f"exchanges/{segment(self.vhost)}/{segment(exchange)}",
                     {"type": str(exchange_type), "durable": durable,
                      "auto_delete": auto_delete, "internal": internal,
                      "arguments": dict(arguments or {})})

    def queue_declare(self, queue: str, passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: Mapping[str, Any] | None = None) -> None:
        path = f"queues/{segment(self.vhost)}/{segment(queue)}"
        if passive:
            self.api.get(path)  # ManagementError 404 when it does not exist
            return
        try:
            self.api.put(path, {"durable": durable, "auto_delete": auto_delete,
                                "arguments": dict(arguments or {})})
        except ManagementError as exc:
            if exc.status != 400 or "inequivalent arg" not in exc.reason:
                raise
            log.warning(say("queue-kept", self.lang, reason=exc.reason))

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None,
                   arguments: Mapping[str, Any] | None = None) -> None:
        self.api.post(f"bindings/{segment(self.vhost)}/e/{segment(exchange)}/q/{segment(queue)}",
                      {"routing_key": routing_key or "", "arguments": dict(arguments or {})})

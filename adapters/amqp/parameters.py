"""A broker URL turned into pika's connection parameters, or told why it cannot be.

pika reads more than host and port from a URL: its query sets the heartbeat, timeouts
and ``ssl_options``, whose CA and certificate files are loaded right away. A URL pika
refuses (a missing CA file, an unknown query key, a bad port) is a configuration error,
found when the configuration is loaded rather than at each connection attempt, and said
without the URL itself: its query may hold a key's password.
"""

from __future__ import annotations

import ast
import os
from urllib.parse import parse_qs, urlsplit

import pika

from schemas.errors import ConfigError
from schemas.messages import Localized

__all__ = ["UnusableBrokerURL", "broker_parameters"]

# The ssl_options keys that name a file or folder pika loads (see pika's URLParameters).
_SSL_FILE_KEYS = ("ca_certs", "cafile", "ca_path", "capath", "certfile", "keyfile")


class UnusableBrokerURL(ConfigError):
    """pika refuses a broker URL; ``why`` says so in both languages."""

    def __init__(self, why: Localized) -> None:
        super().__init__(f"the broker URL cannot be used: {why.en}",
                         zh=f"消息服务器 URL 无法使用：{why.zh}")
        self.why = why


def broker_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for ``url``; ``UnusableBrokerURL`` when pika refuses it."""
    try:
        return pika.URLParameters(url)
    except OSError as exc:  # ssl_options: a file missing, unreadable or not PEM
        raise UnusableBrokerURL(_unloadable(url, exc)) from None
    except (ValueError, TypeError, SyntaxError) as exc:
        said = f"{exc}".strip() or type(exc).__name__
        # "Expected exactly one value ... but got 2 values: [...]" lists them: not said.
        said = said.partition(" values: ")[0]
        raise UnusableBrokerURL(Localized(f"pika 不接受它：{said}",
                                          f"pika refuses it: {said}")) from None


def _unloadable(url: str, exc: OSError) -> Localized:
    """Why ssl_options' files did not load, naming the first one that cannot be read."""
    reason = exc.strerror or f"{exc}".strip() or type(exc).__name__
    for path in _ssl_files(url):
        if not os.path.exists(path):
            return Localized(f"ssl_options 指定的文件不存在：{path}",
                             f"a file its ssl_options names does not exist: {path}")
        if not os.access(path, os.R_OK):
            return Localized(f"ssl_options 指定的文件不可读：{path}",
                             f"a file its ssl_options names cannot be read: {path}")
    return Localized(f"无法载入 ssl_options 指定的 TLS 文件（{reason}）",
                     f"the TLS files its ssl_options names cannot be loaded ({reason})")


def _ssl_files(url: str) -> list[str]:
    """The files ssl_options names, read as pika reads them; none if it does not parse."""
    values = parse_qs(urlsplit(url).query).get("ssl_options")
    try:
        options = ast.literal_eval(values[-1]) if values else None
    except (ValueError, SyntaxError):
        return []
    if not isinstance(options, dict):
        return []
    return [value for key in _SSL_FILE_KEYS
            if isinstance(value := options.get(key), str) and value]

"""A broker URL turned into pika's connection parameters, or told why it cannot be.

pika reads more than host and port from a URL: its query sets the heartbeat, timeouts
and ``ssl_options``, whose CA and certificate files are loaded right away. A URL pika
refuses (a missing CA file, an unknown query key, a bad port) is a configuration error,
found when the configuration is loaded rather than at each connection attempt, and said
without the URL itself: its query may hold a key's password. A password written with an
unencoded '@', '/', '?' or '#' is refused before pika sees it: pika would take part of it
for the host (and dial it) or quote it in its error.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pika

from adapters.config_files import redact, resolve_path
from schemas.errors import ConfigError
from schemas.messages import Localized

__all__ = ["UnusableBrokerURL", "broker_parameters", "split_broker_url", "ssl_files_under"]

# The ssl_options keys that name a file or folder pika loads (see pika's URLParameters).
_SSL_FILE_KEYS = ("ca_certs", "cafile", "ca_path", "capath", "certfile", "keyfile")


class UnusableBrokerURL(ConfigError):
    """pika refuses a broker URL; ``why`` says so in both languages."""

    def __init__(self, why: Localized) -> None:
        super().__init__(f"the broker URL cannot be used: {why.en}",
                         zh=f"消息服务器 URL 无法使用：{why.zh}")
        self.why = why


def split_broker_url(url: str) -> SplitResult:
    """``url`` split as pika splits it, once it is sure that no part of a password can
    be taken for the host, port or virtual host (and dialled, or printed in an error)."""
    try:
        masked = _host_and_port(redact(url))
    except ValueError as exc:  # said of the masked URL: no password in these words
        raise UnusableBrokerURL(Localized(f"其主机或端口无法解析：{exc}",
                                          f"its host or port does not parse: {exc}")) from None
    try:
        written = _host_and_port(url)
    except ValueError:  # its words would repeat the netloc, password and all
        written = None
    if written != masked:
        raise UnusableBrokerURL(Localized(
            "口令中含有未编码的 '@'、'/'、'?'、'#' 或全角字符：请分别写作 %40、%2F、%3F、%23，"
            "全角字符请改为半角或按 UTF-8 百分号编码",
            "its password holds an unencoded '@', '/', '?' or '#', or a full-width character: "
            "write them as %40, %2F, %3F and %23, and a full-width one percent-encoded in "
            "UTF-8"))
    return urlsplit(url)


def _host_and_port(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def broker_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for ``url``; ``UnusableBrokerURL`` when pika refuses it."""
    split_broker_url(url)
    try:
        return pika.URLParameters(url)
    except OSError as exc:  # ssl_options: a file missing, unreadable or not PEM
        raise UnusableBrokerURL(_unloadable(url, exc)) from None
    except (ValueError, TypeError, SyntaxError, AttributeError) as exc:
        # AttributeError: an ssl_options that is no {...} dict ("'list' object has no
        # attribute 'get'").
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


def ssl_files_under(url: str, config: Path) -> str:
    """``url`` with the relative files of its ``ssl_options`` taken from the folder of
    the config file ``config``, as every path in a config is (the working directory is
    ``/`` under systemd); the URL as written when it names none, or does not parse."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options = _ssl_options(pairs)
    if options is None:
        return url
    relative: dict[object, object] = {
        key: str(resolve_path(config, value)) for key in _SSL_FILE_KEYS
        if isinstance(value := options.get(key), str) and value
        and not Path(value).expanduser().is_absolute()}
    if not relative:
        return url
    resolved = repr(options | relative)
    query = urlencode([(key, resolved if key == "ssl_options" else value)
                       for key, value in pairs], quote_via=quote)
    return urlunsplit(parts._replace(query=query))


def _ssl_options(pairs: list[tuple[str, str]]) -> dict[object, object] | None:
    """The last ``ssl_options`` of a query, as pika reads it; None if none or no dict."""
    values = [value for key, value in pairs if key == "ssl_options"]
    try:
        options = ast.literal_eval(values[-1]) if values else None
    except (ValueError, SyntaxError):
        return None
    return options if isinstance(options, dict) else None


def _ssl_files(url: str) -> list[str]:
    """The files ssl_options names, read as pika reads them; none if it does not parse."""
    options = _ssl_options(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if options is None:
        return []
    return [value for key in _SSL_FILE_KEYS
            if isinstance(value := options.get(key), str) and value]

"""The upstream URI of a link between brokers, checked as RabbitMQ's links will read it.

Federation and shovel connect with RabbitMQ's Erlang client, which reads the URI's query
as its "URI Query Parameters" page says: TLS as ``cacertfile``, ``certfile``,
``keyfile``, ``verify=verify_peer``, ``server_name_indication``…, not pika's
``ssl_options``. That client ignores what it does not know, so a mistyped key, pika's
``ssl_options`` or a TLS key under ``amqp://`` would give a link that runs unencrypted or
without checking whom it talks to, and says nothing. ``parse_upstream`` refuses all of
them before anything is declared, naming the key.

The URI goes to RabbitMQ as written. A shovel's source queue is declared on the upstream
by exgate itself, over pika: ``LinkUpstream.pika_parameters`` makes the same demands
there (the same CA, client certificate and server name), from files on this machine.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from adapters.amqp.parameters import UnusableBrokerURL, broker_parameters, split_broker_url
from adapters.config_files import redact
from schemas.errors import ConfigError

if TYPE_CHECKING:
    import pika

__all__ = ["LinkUpstream", "mask_key_password", "parse_upstream", "shown_uri"]

# The Erlang client's query keys (amqp_uri), by what their values must be.
_INTEGERS = frozenset({"heartbeat", "connection_timeout", "channel_max", "frame_max", "depth"})
_CHOICES = {"verify": ("verify_peer", "verify_none"),
            "fail_if_no_peer_cert": ("true", "false"),
            "auth_mechanism": ("plain", "amqplain", "external")}
_PATHS = frozenset({"cacertfile", "certfile", "keyfile"})
_TLS = _PATHS | {"verify", "fail_if_no_peer_cert", "password", "server_name_indication",
                 "depth"}
_KNOWN = _INTEGERS | _TLS | set(_CHOICES)
_REPEATABLE = frozenset({"auth_mechanism"})
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s\"]*")


@dataclass(frozen=True, slots=True)
class LinkUpstream:
    """An upstream URI RabbitMQ's links can use as the operator meant it."""

    uri: str                       # as given: what the federation upstream or shovel gets
    tls: dict[str, str] | None     # the TLS keys of an amqps:// URI; None for amqp://

    @property
    def verified(self) -> bool:
        """Whether the link checks the upstream's certificate (else it only encrypts)."""
        return self.tls is not None and self.tls.get("verify") == "verify_peer"

    def pika_parameters(self) -> pika.ConnectionParameters:
        """pika's parameters for the upstream, with the URI's TLS demands; the files
        are read here, so they must be on this machine too (a ConfigError if not)."""
        import pika

        parts = urlsplit(self.uri)
        parameters = broker_parameters(urlunsplit(parts._replace(query="")))
        if self.tls is not None:
            server = self.tls.get("server_name_indication", "disable")
            parameters.ssl_options = pika.SSLOptions(
                _context(self.tls), parts.hostname if server == "disable" else server)
        return parameters


def parse_upstream(uri: str) -> LinkUpstream:
    """``uri`` checked as RabbitMQ's Erlang client reads it; ConfigError naming what it
    would have ignored or refused."""
    try:
        parts = split_broker_url(uri)
    except UnusableBrokerURL as exc:
        _refuse(exc.why.en, exc.why.zh)
    if parts.path.count("/") > 1:
        _refuse(f"its virtual host {unquote(parts.path[1:])!r} holds a '/': write it as %2F",
                f"其虚拟主机 {unquote(parts.path[1:])!r} 含有 '/'：请写作 %2F")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        _check_pair(key, value, key in query)
        query[key] = value
    tls = {key: value for key, value in query.items() if key in _TLS}
    if parts.scheme == "amqp":
        if tls:
            _refuse(f"{', '.join(sorted(tls))} apply to amqps:// only: with amqp:// RabbitMQ "
                    "ignores them and the link runs unencrypted",
                    f"{', '.join(sorted(tls))} 只适用于 amqps://：使用 amqp:// 时 RabbitMQ "
                    "会忽略它们，链路将不加密")
        return LinkUpstream(uri, None)
    if tls.get("verify") == "verify_peer" and "cacertfile" not in tls:
        _refuse("verify=verify_peer needs cacertfile=, the CA that signed the upstream's "
                "certificate", "verify=verify_peer 需要 cacertfile=，即签发上游证书的 CA")
    if ("certfile" in tls) != ("keyfile" in tls):
        _refuse("a client certificate needs both certfile= and keyfile=",
                "客户端证书需要同时给出 certfile= 和 keyfile=")
    return LinkUpstream(uri, tls)


def shown_uri(uri: str) -> str:
    """The URI with its login password and its key's ``password=`` masked."""
    return mask_key_password(redact(uri))


def mask_key_password(text: str) -> str:
    """``text`` with the value of every ``password=`` of a URI query in it masked."""
    return _QUERY_PASSWORD.sub(r"\1***", text)


def _check_pair(key: str, value: str, repeated: bool) -> None:
    if key == "ssl_options":
        _refuse("ssl_options is pika's form, which RabbitMQ's links ignore (the link would "
                "not check the upstream's certificate): write cacertfile=/path/ca.pem"
                "&verify=verify_peer&server_name_indication=HOST",
                "ssl_options 是 pika 的写法，RabbitMQ 的链路会忽略它（链路将不校验上游证书）："
                "请写作 cacertfile=/path/ca.pem&verify=verify_peer&server_name_indication=HOST")
    if key not in _KNOWN:
        known = ", ".join(sorted(_KNOWN))
        _refuse(f"RabbitMQ's links do not read {key!r} (they read {known})",
                f"RabbitMQ 的链路不读取 {key!r}（可用：{known}）")
    if repeated and key not in _REPEATABLE:
        _refuse(f"{key} is given twice", f"{key} 出现了两次")
    if key in _INTEGERS and not (value.isascii() and value.isdigit()):
        _refuse(f"{key}={value!r} is not a whole number", f"{key}={value!r} 不是整数")
    if key in _CHOICES and value not in _CHOICES[key]:
        choices = " | ".join(_CHOICES[key])
        _refuse(f"{key}={value!r}: choose {choices}", f"{key}={value!r}：请选择 {choices}")
    if key in _PATHS and not value.startswith("/"):
        _refuse(f"{key}={value!r} must be an absolute path (RabbitMQ resolves it on its host)",
                f"{key}={value!r} 必须是绝对路径（RabbitMQ 在其所在主机上解析它）")
    if key == "server_name_indication" and not value:
        _refuse("server_name_indication= is empty: name the upstream's host, or disable",
                "server_name_indication= 为空：请填写上游主机名，或 disable")


def _context(tls: dict[str, str]) -> ssl.SSLContext:
    """A client TLS context making the URI's demands, its files read now."""
    try:
        context = ssl.create_default_context(cafile=tls.get("cacertfile"))
        if tls.get("verify") != "verify_peer":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if "certfile" in tls:
            context.load_cert_chain(tls["certfile"], tls["keyfile"], tls.get("password"))
    except (OSError, ssl.SSLError) as exc:
        named = next((tls[key] for key in ("cacertfile", "certfile", "keyfile")
                      if key in tls and not _readable(tls[key])), None)
        if named is not None:
            _refuse(f"{named} cannot be read here; exgate declares the shovel's source queue "
                    "itself and needs the same files on this machine",
                    f"本机无法读取 {named}；exgate 需亲自在上游声明 shovel 的源队列，本机上也须有"
                    "这些文件")
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        _refuse(f"its TLS files do not load ({reason}): PEM files, the key matching the "
                "certificate, and password= if the key has one",
                f"其 TLS 文件无法载入（{reason}）：须为 PEM 文件，私钥须与证书匹配，"
                "私钥有口令时请给出 password=")
    return context


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _refuse(en: str, zh: str) -> NoReturn:
    raise ConfigError(f"--upstream: {en}", zh=f"--upstream：{zh}")

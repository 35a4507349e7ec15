"""The upstream URI of a link between brokers, checked as RabbitMQ's links will read it.

Federation and shovel connect with RabbitMQ's Erlang client (``amqp_uri``), which reads
the URI's query as its "URI Query Parameters" page says: TLS as ``cacertfile``,
``certfile``, ``keyfile``, ``verify=verify_peer``, ``server_name_indication``, not pika's
``ssl_options``. It splits the query on ``&`` and the first ``=``, decodes ``%XX`` in
paths and in the server name only, never decodes a key, and ignores a key it does not
know. So a mistyped or encoded key, or a TLS key under ``amqp://``, would leave a link
unencrypted or unchecked without a word, and other slips fail only at RabbitMQ.
``parse_upstream`` reads the query the same way and refuses each of them before anything
is declared, naming the key.

What a TLS link checks, as the Erlang client does it: with ``verify=verify_peer``, the
chain up to ``cacertfile``, and the certificate's name only through the server name it
sends, the one ``server_name_indication`` gives or else the URI's host when that is a
name, not an address. ``LinkUpstream.tls`` says which of these holds, so the command can
warn of a link that only encrypts, or that takes any certificate of the CA.

The URI goes to RabbitMQ as written. A shovel's source queue is declared on the upstream
by exgate itself, over pika: ``LinkUpstream.pika_parameters`` makes the same demands
there (the same CA, client certificate and server name), from files on this machine.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

from adapters.amqp.parameters import UnusableBrokerURL, broker_parameters, split_broker_url
from adapters.config_files import redact
from schemas.errors import ConfigError

if TYPE_CHECKING:
    import pika

__all__ = ["LinkUpstream", "TlsCheck", "mask_key_password", "parse_upstream", "shown_uri"]

# none: plain AMQP; unverified: encrypted, any certificate taken; chain: a certificate
# of the CA, whatever its name; verified: the CA's, for the upstream's name.
TlsCheck = Literal["none", "unverified", "chain", "verified"]

# The Erlang client's query keys (amqp_uri of RabbitMQ 3.10), by what their values must be.
_NUMBERS = frozenset({"heartbeat", "connection_timeout", "channel_max", "frame_max", "depth"})
_CHOICES = {"verify": ("verify_peer", "verify_none"),
            "auth_mechanism": ("plain", "amqplain", "external")}
_PATHS = frozenset({"cacertfile", "certfile", "keyfile"})
_TLS = _PATHS | {"verify", "server_name_indication", "depth"}
_KNOWN = _NUMBERS | _TLS | set(_CHOICES)
_REPEATABLE = frozenset({"auth_mechanism"})
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a '%' amqp_uri cannot decode
# A password in a URI's query, as written, HTML-escaped by the management API, or in the
# Erlang terms of its errors ({"password","…"}, invalid_ssl_parameter,password,"…").
_KEY_PASSWORD = re.compile(
    r"""(?i)((?:[?&;]|&amp;)password=|"password",\s*"|password,\s*")[^&#\s"'<]*""")


@dataclass(frozen=True, slots=True, repr=False)
class LinkUpstream:
    """An upstream URI RabbitMQ's links read as the operator meant it."""

    uri: str                # as given: what the federation upstream or shovel gets
    host: str
    query: dict[str, list[str]]  # each key's values, as amqp_uri reads them

    def __repr__(self) -> str:
        return f"LinkUpstream({shown_uri(self.uri)!r})"

    @property
    def tls(self) -> TlsCheck:
        if urlsplit(self.uri).scheme.lower() != "amqps":
            return "none"
        if self._one("verify") != "verify_peer":
            return "unverified"
        return "chain" if self.server_name is None else "verified"

    @property
    def server_name(self) -> str | None:
        """The name the Erlang client sends, and so the one the certificate must hold."""
        given = self._one("server_name_indication")
        if given is not None:
            return None if given == "disable" else given
        return None if _is_address(self.host) else self.host

    def pika_parameters(self) -> pika.ConnectionParameters:
        """pika's parameters for the upstream, making the URI's demands; the files are
        read here, so they must be on this machine too (a ConfigError if not)."""
        import pika

        parameters = broker_parameters(urlunsplit(urlsplit(self.uri)._replace(query="")))
        if self.tls != "none":
            parameters.ssl_options = pika.SSLOptions(self._context(), self.server_name)
        if set(self.query.get("auth_mechanism", ())) == {"external"}:
            parameters.credentials = pika.credentials.ExternalCredentials()
        return parameters

    def _one(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None

    def _context(self) -> ssl.SSLContext:
        """A client TLS context checking what the link checks, its files read now."""
        try:
            context = ssl.create_default_context(cafile=self._one("cacertfile"))
            context.check_hostname = self.tls == "verified"
            if self.tls == "unverified":
                context.verify_mode = ssl.CERT_NONE
            if (certificate := self._one("certfile")) is not None:
                context.load_cert_chain(certificate, self._one("keyfile"))
        except OSError as exc:  # ssl.SSLError among them
            named = next((path for key in ("cacertfile", "certfile", "keyfile")
                          if (path := self._one(key)) is not None and not _readable(path)),
                         None)
            if named is not None:
                _refuse(f"{named} cannot be read here; exgate declares the shovel's source "
                        "queue itself and needs the same files on this machine",
                        f"本机无法读取 {named}；exgate 需自行在上游声明 shovel 的源队列，本机上"
                        "也须有这些文件")
            reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
            _refuse(f"its TLS files do not load ({reason}): PEM files, and the key matching "
                    "the certificate", f"其 TLS 文件无法载入（{reason}）：须为 PEM 文件，且私钥"
                    "须与证书匹配")
        return context


def parse_upstream(uri: str) -> LinkUpstream:
    """``uri`` checked as RabbitMQ's Erlang client reads it; ConfigError naming what it
    would have ignored or refused."""
    try:
        parts = split_broker_url(uri)
    except UnusableBrokerURL as exc:
        _refuse(exc.why.en, exc.why.zh)
    if parts.scheme.lower() not in ("amqp", "amqps") or not parts.hostname:
        _refuse("it must look like amqps://USER@HOST:PORT/VHOST",
                "应形如 amqps://USER@HOST:PORT/VHOST")
    if parts.password is not None and ":" in parts.password:
        _refuse("its password holds an unencoded ':', which RabbitMQ reads as its end: "
                "write it as %3A",
                "口令中含有未编码的 ':'，RabbitMQ 会将其视为口令结尾：请写作 %3A")
    if parts.path == "/" or parts.path.count("/") > 1:
        _refuse("its virtual host is empty or holds a '/': name it, writing '/' as %2F (the "
                "default virtual host is %2F)",
                "其虚拟主机为空或含有 '/'：请写明虚拟主机，'/' 写作 %2F（默认虚拟主机为 %2F）")
    query = _query(parts.query)
    if parts.scheme.lower() == "amqp" and (tls := sorted(_TLS & query.keys())):
        _refuse(f"{', '.join(tls)} apply only to amqps://: with amqp:// RabbitMQ ignores "
                "them and the link runs unencrypted",
                f"{', '.join(tls)} 只适用于 amqps://：使用 amqp:// 时 RabbitMQ 会忽略它们，链路"
                "将不加密")
    if query.get("verify") == ["verify_peer"] and "cacertfile" not in query:
        _refuse("verify=verify_peer needs cacertfile=, the CA that signed the upstream's "
                "certificate", "verify=verify_peer 需要 cacertfile=，即签发上游证书的 CA")
    if ("certfile" in query) != ("keyfile" in query):
        _refuse("a client certificate needs both certfile= and keyfile=",
                "客户端证书需要同时给出 certfile= 和 keyfile=")
    return LinkUpstream(uri, str(parts.hostname), query)


def shown_uri(uri: str) -> str:
    """The URI with its login password, and any ``password=`` of its query, masked."""
    return mask_key_password(redact(uri))


def mask_key_password(text: str) -> str:
    """``text`` with every ``password=`` value of a URI query in it masked, as written
    or as the management API and RabbitMQ's errors quote it."""
    return _KEY_PASSWORD.sub(r"\1***", text)


def _query(text: str) -> dict[str, list[str]]:
    """The query as amqp_uri reads it: pairs split on '&' and the first '=', keys as
    written, paths and the server name with ``%XX`` decoded (and '+' kept)."""
    query: dict[str, list[str]] = {}
    for pair in text.split("&") if text else ():
        key, equals, value = pair.partition("=")
        _check_pair(key, value, bool(equals), key in query)
        if key in _PATHS or key == "server_name_indication":
            value = unquote(value)
        query.setdefault(key, []).append(value)
    return query


def _check_pair(key: str, value: str, has_value: bool, repeated: bool) -> None:
    if key == "ssl_options":
        _refuse("ssl_options is pika's form, which RabbitMQ's links refuse: write "
                "cacertfile=/path/ca.pem&verify=verify_peer&server_name_indication=HOST",
                "ssl_options 是 pika 的写法，RabbitMQ 的链路不接受：请写作 "
                "cacertfile=/path/ca.pem&verify=verify_peer&server_name_indication=HOST")
    if key == "password":
        _refuse("password= (a client key's passphrase) also replaces the login password "
                "in RabbitMQ 3.10's links: use a key without a passphrase, readable by the "
                "broker's user only",
                "RabbitMQ 3.10 的链路会把 password=（客户端私钥口令）同时当作登录口令："
                "请使用无口令的私钥，并只允许消息服务器的运行用户读取")
    if key == "fail_if_no_peer_cert":
        _refuse("fail_if_no_peer_cert is a server's option: a link (a client) that gets it "
                "never connects",
                "fail_if_no_peer_cert 是服务端选项：链路作为客户端使用它将无法连接")
    if key not in _KNOWN:
        known = ", ".join(sorted(_KNOWN))
        _refuse(f"RabbitMQ's links do not read {key!r} (they read {known}; a key is never "
                "percent-decoded)", f"RabbitMQ 的链路不读取 {key!r}（可用：{known}；键名不做"
                "百分号解码）")
    if not has_value or not value:
        _refuse(f"{key} has no value", f"{key} 没有值")
    if repeated and key not in _REPEATABLE:
        _refuse(f"{key} is given twice", f"{key} 出现了两次")
    if key in _NUMBERS and not (value.isascii() and value.isdigit()):
        _refuse(f"{key}={value!r} is not a non-negative whole number written in digits",
                f"{key}={value!r} 不是用数字写出的非负整数")
    if key in _CHOICES and value not in _CHOICES[key]:
        choices = " | ".join(_CHOICES[key])
        _refuse(f"{key}={value!r}: choose {choices} (written as is)",
                f"{key}={value!r}：请选择 {choices}（原样书写）")
    if _ESCAPE.search(value):
        _refuse(f"{key}={value!r} holds a '%' that is not %XX",
                f"{key}={value!r} 中的 '%' 不是 %XX 形式")
    if key in _PATHS and not unquote(value).startswith("/"):
        _refuse(f"{key}={value!r} must be an absolute path (RabbitMQ resolves it on its host)",
                f"{key}={value!r} 必须是绝对路径（RabbitMQ 在其所在主机上解析它）")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _refuse(en: str, zh: str) -> NoReturn:
    raise ConfigError(f"--upstream: {en}", zh=f"--upstream：{zh}")

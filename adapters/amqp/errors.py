"""pika exceptions mapped to exgate errors, at the boundary, grouped by what to do.

- ``Unroutable``: the broker returned a mandatory message (no queue bound for its key).
- ``Nacked``: the broker refused to take responsibility (e.g. a full queue).
- ``BrokerRefused``: the broker closed the channel or the connection: a permission
  (topic permission 403, ``user_id`` mismatch 406), a missing exchange or queue (404),
  the centre disabling the node. An operator must act; we keep everything and retry
  slowly.
- ``LoginRefused`` (a ``BrokerRefused``): the broker refused the login itself or the
  access to the virtual host (ACCESS_REFUSED). Only the centre's current credentials
  file cures it, so ``agent once`` stops on it as a configuration error.
- ``BrokerUnavailable``: the connection is gone or cannot be made; retry with backoff.

All are ``RetriableError``: nothing is ever dropped because the broker said no. Given
the broker's ``BrokerAddress``, every message names it (host:port and virtual host,
never a user's password), and a connection that cannot be made says why in words
(refused, a host name that does not resolve, no answer in time, TLS that fails or gets no
answer, lost), in Chinese too.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions as px
from pika.adapters.utils.connection_workflow import (
    AMQPConnectorException,
    AMQPConnectorPhaseErrorBase,
    AMQPConnectorStackTimeout,
)

from adapters.config_files import redact
from schemas.errors import RetriableError
from schemas.messages import Localized

__all__ = ["CONNECT_ERRORS", "GATEWAY_LOGIN", "NODE_DISABLED_REASON", "BrokerAddress",
           "BrokerRefused", "BrokerUnavailable", "LoginRefused", "Nacked", "Unroutable",
           "mapped", "url_user"]

# What pika raises where a connection is made or used: its own errors, the socket's, and
# its connection workflow's, which are neither (a listener that accepts and never speaks
# AMQP ends in ``AMQPConnectorStackTimeout``).
CONNECT_ERRORS = (px.AMQPError, OSError, AMQPConnectorException)

# The reason `exgate node disable` gives the broker when it closes the node's connections.
NODE_DISABLED_REASON = "exgate: node disabled"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker is, as a message names it: host, port and virtual host only.

    ``port`` is None when the host could not be read apart from it: ``host`` is then
    as written (its port, if any, with it).
    """

    host: str
    port: int | None
    vhost: str

    @classmethod
    def of(cls, parameters: pika.ConnectionParameters) -> BrokerAddress:
        return cls(str(parameters.host), int(parameters.port), str(parameters.virtual_host))

    @classmethod
    def of_url(cls, url: str) -> BrokerAddress:
        """From a URL as written, without raising: its password is masked before its host
        is read, for an unencoded '@' or '/' in a password would be taken for the host
        and virtual host (and printed); what does not parse takes pika's defaults, and a
        host urlsplit refuses (an unclosed '[', a full-width '：') is shown as written."""
        written = redact(url)
        default_port = 5671 if written.partition("://")[0].strip().lower() == "amqps" else 5672
        try:
            parts = urlsplit(written)
        except ValueError:
            netloc, path = _netloc_and_path(written)
            host = netloc.rpartition("@")[2]
            return cls(host, None, _vhost(path)) if host \
                else cls("localhost", default_port, _vhost(path))
        try:
            port = parts.port
        except ValueError:  # no number, or out of range: pika refuses the URL anyway
            port = None
        return cls(parts.hostname or "localhost",
                   default_port if port is None else port, _vhost(parts.path))

    @property
    def said(self) -> Localized:
        """``127.0.0.1:5672 (vhost /)`` and ``127.0.0.1:5672（虚拟主机 /）``."""
        if self.port is None:
            where = self.host
        else:
            where = f"[{self.host}]:{self.port}" if ":" in self.host \
                else f"{self.host}:{self.port}"
        return Localized(f"{where}（虚拟主机 {self.vhost}）", f"{where} (vhost {self.vhost})")


def _netloc_and_path(url: str) -> tuple[str, str]:
    """The netloc and path of a URL whose netloc urlsplit refuses, cut where it cuts
    them (the netloc ends at the first '/', '?' or '#' after "//")."""
    after = url.partition("//")[2]
    netloc = re.split(r"[/?#]", after, maxsplit=1)[0]
    return netloc, re.split(r"[?#]", after[len(netloc):], maxsplit=1)[0]


def _vhost(path: str) -> str:
    """The virtual host as pika reads it: the first segment of the path only."""
    return unquote(path.split("/")[1]) if len(path) > 1 else "/"


def url_user(url: str) -> str | None:
    """The user a broker URL logs in as, read past its masked password; None if none."""
    written = redact(url)
    try:
        user = urlsplit(written).username
    except ValueError:  # a host urlsplit refuses: the user is still before '@'
        userinfo, at, _ = _netloc_and_path(written)[0].rpartition("@")
        user = userinfo.partition(":")[0] if at else None
    return unquote(user) if user else None


class BrokerUnavailable(RetriableError):
    """The broker cannot be reached or the connection was lost."""


class Unroutable(RetriableError):
    """A mandatory message was returned: no queue is bound for its routing key."""


class Nacked(RetriableError):
    """The broker nacked a confirmed publish."""


class BrokerRefused(RetriableError):
    """The broker refused an operation (AMQP reply code and text kept)."""

    def __init__(self, message: str, *, reply_code: int | None = None,
                 reply_text: str = "", zh: str | None = None) -> None:
        super().__init__(message, zh=zh)
        self.reply_code = reply_code
        self.reply_text = reply_text


class LoginRefused(BrokerRefused):
    """The broker refused the login of ``user``, or its access to the virtual host.

    Not transient: the password was replaced (``node enable`` writes a new one into the
    node's credentials file, ``node disable`` sets a random one) or the permissions were
    withdrawn, and retrying with the same credentials never logs in.
    """

    def __init__(self, user: str | None, *, vhost: bool, broker: BrokerAddress | None = None,
                 remedy: Localized | None = None) -> None:
        who = f"user {user!r}" if user else "the broker user"
        who_zh = f"用户 {user!r} " if user else "消息服务器用户"
        at, at_zh = (f"the broker {broker.said.en}", f"消息服务器 {broker.said.zh}") \
            if broker else ("the broker", "消息服务器")
        what, what_zh = (
            (f"{at} refused {who} access to its virtual host",
             f"{at_zh}拒绝{who_zh}访问其虚拟主机") if vhost else
            (f"{at} refused the login of {who}", f"{at_zh}拒绝了{who_zh}的登录"))
        remedy = remedy or _NODE_CREDENTIALS
        super().__init__(f"{what} (ACCESS_REFUSED): {remedy.en}",
                         reply_code=403, reply_text="ACCESS_REFUSED",
                         zh=f"{what_zh}（ACCESS_REFUSED）：{remedy.zh}")
        self.user = user
        self.broker = broker


# What a refused login means to a node (the default remedy of ``LoginRefused``).
_NODE_CREDENTIALS = Localized(
    "本节点的凭据文件（[node] key_file）已过期，或节点已被停用；请向省级中心索取当前的凭据"
    "文件并替换（运行中的 agent run 会在下次重试时读取）",
    "this node's credentials file ([node] key_file) is outdated or the node was disabled; "
    "get the current credentials file from the provincial centre and put it in place (a "
    "running `agent run` reads it at its next try)")

# What a refused login means to a gateway (``exgate gateway run``, ``batches replay``).
GATEWAY_LOGIN = Localized(
    "请核对 [broker] url 中的用户及其口令（[broker] password_file 或环境变量 "
    "EXGATE_BROKER_PASSWORD），以及该用户对虚拟主机的权限",
    "check the user of [broker] url and its password ([broker] password_file or "
    "EXGATE_BROKER_PASSWORD), and that user's permissions on the virtual host")


def _lost_while_logging_in(exc: px.AMQPConnectionError) -> bool:
    """pika calls any connection that ends during the login a "probable" refusal; one
    whose stream was merely lost (a broker going down) is no refusal at all."""
    return any("StreamLostError" in str(arg) for arg in exc.args)


def mapped(exc: BaseException, doing: str, doing_zh: str | None = None, *,
           user: str | None = None, broker: BrokerAddress | None = None,
           login_remedy: Localized | None = None) -> RetriableError:
    """The exgate error for a pika (or socket) exception raised while ``doing``.

    With ``doing_zh`` the error also carries its Chinese text (``message("zh")``), for the
    agent's logs; pika's own words stay as they are in both languages. ``user``: the
    broker user logging in, named by a refused login, with ``login_remedy`` (default: the
    node's credentials file). ``broker``: named by every message but a return or a nack.
    """
    def both(en: str, zh: str) -> tuple[str, str | None]:
        return f"{doing}: {en}", None if doing_zh is None else f"{doing_zh}：{zh}"

    at, at_zh = (f"broker {broker.said.en}", f"消息服务器 {broker.said.zh}") if broker \
        else ("broker", "消息服务器")
    if isinstance(exc, px.UnroutableError):
        text, text_zh = both(
            "returned by the broker as unroutable (no level queue is bound for this routing "
            "key; has `exgate broker start` or the gateway declared the level queues?)",
            "被消息服务器作为无法路由的消息退回（该路由键没有绑定任何层级队列；是否已运行 "
            "`exgate broker start`，或网关是否已声明层级队列？）")
        return Unroutable(text, zh=text_zh)
    if isinstance(exc, px.NackError):
        text, text_zh = both("nacked by the broker (a level queue may be full)",
                             "消息服务器拒绝接收（nack，某个层级队列可能已满）")
        return Nacked(text, zh=text_zh)
    if isinstance(exc, px.ChannelClosedByBroker | px.ConnectionClosedByBroker):
        reply = f"{exc.reply_code} {exc.reply_text}"
        if NODE_DISABLED_REASON in str(exc.reply_text):
            text, text_zh = both(f"the provincial centre disabled this node and closed its "
                                 f"connection to {at} ({reply})",
                                 f"省级中心已停用本节点并断开了它与{at_zh}的连接（{reply}）")
        else:
            text, text_zh = both(f"{at} closed the channel: {reply}",
                                 f"{at_zh}关闭了通道：{reply}")
        return BrokerRefused(text, reply_code=exc.reply_code, reply_text=exc.reply_text,
                             zh=text_zh)
    if isinstance(exc, px.AuthenticationError):
        return LoginRefused(user, vhost=False, broker=broker, remedy=login_remedy)
    if (isinstance(exc, px.ProbableAuthenticationError | px.ProbableAccessDeniedError)
            and not _lost_while_logging_in(exc)):
        return LoginRefused(user, vhost=isinstance(exc, px.ProbableAccessDeniedError),
                            broker=broker, remedy=login_remedy)
    cause = _cause(exc)
    text, text_zh = both(f"{at} unavailable: {cause.en}", f"{at_zh}不可用：{cause.zh}")
    return BrokerUnavailable(text, zh=text_zh)


def _cause(exc: BaseException) -> Localized:
    """Why a connection cannot be made or was lost, in words, with pika's or the
    system's own where they add to them."""
    inner = _innermost(exc)
    raw = f"{type(inner).__name__} {inner}".rstrip()
    if isinstance(inner, ConnectionRefusedError):
        return Localized("连接被拒绝（该地址上没有服务在监听：RabbitMQ 是否在运行？主机和端口是否"
                         "正确？）",
                         "connection refused (nothing listens there: is RabbitMQ running? are "
                         "the host and port right?)")
    if isinstance(inner, socket.gaierror):
        return Localized(f"主机名无法解析（{raw}）", f"the host name does not resolve ({raw})")
    # BlockingConnection unwraps all pika's phase errors but the TCP connect's: what it
    # raises for a TLS set-up or AMQP handshake that timed out says the phase in words only.
    if isinstance(inner, AMQPConnectorStackTimeout) and str(inner).startswith(
            "Timeout while setting up transport"):  # only TLS waits on the peer there
        return Localized(f"已连上该端口，但在超时前没有完成 TLS 握手（{_TLS_PORT.zh}）",
                         f"connected, but the TLS set-up got no answer in time "
                         f"({_TLS_PORT.en})")
    if isinstance(inner, AMQPConnectorStackTimeout) and str(inner).startswith(
            "Timeout during AMQP handshake"):
        return Localized("已连上该端口，但在超时前没有得到 AMQP 应答（这是 RabbitMQ 的 AMQP "
                         "端口吗？）",
                         "connected, but no AMQP answer came in time (is this RabbitMQ's "
                         "AMQP port?)")
    if isinstance(inner, ssl.SSLCertVerificationError):
        return Localized(f"消息服务器的 TLS 证书未通过验证（{raw}）（签发它的 CA 是否就是 URL "
                         f"所指定的：ssl_options 中的 ca_certs，或消息服务器之间链路的 "
                         f"cacertfile=？证书是否签发给这个主机名？）",
                         f"the broker's TLS certificate was not accepted ({raw}) (is the CA "
                         f"that signed it the one the URL names: ca_certs in its ssl_options, "
                         f"or cacertfile= for a link between brokers? is the certificate "
                         f"issued for this host name?)")
    if isinstance(inner, ssl.SSLError):
        return Localized(f"无法建立 TLS 连接（{raw}）（{_TLS_PORT.zh}）",
                         f"TLS could not be set up ({raw}) ({_TLS_PORT.en})")
    if isinstance(inner, TimeoutError | AMQPConnectorStackTimeout):
        return Localized("连接超时，对方没有应答（主机是否在线？是否被防火墙拦截？）",
                         "no answer in time (is the host up? does a firewall drop the "
                         "connection?)")
    if isinstance(inner, px.IncompatibleProtocolError):
        return Localized(f"已连上该端口，但对方没有以 AMQP 0-9-1 应答，断开了连接（这是消息服务器"
                         f"的 TLS 端口吗？那就请用 amqps://；或是另一个服务的端口？）（{raw}）",
                         f"connected, but the other end did not answer in AMQP 0-9-1 and "
                         f"hung up (is this the broker's TLS port? then use amqps://; or "
                         f"another service's port?) ({raw})")
    if isinstance(inner, px.StreamLostError | ConnectionResetError | BrokenPipeError):
        return Localized(f"连接中断（{raw}）", f"the connection was lost ({raw})")
    if isinstance(inner, px.ProbableAuthenticationError | px.ProbableAccessDeniedError):
        return Localized(f"登录过程中连接中断（{raw}）",
                         f"the connection was lost while logging in ({raw})")
    return Localized(raw, raw)


# What a TLS set-up that fails or gets no answer suggests first: a port of the other kind.
_TLS_PORT = Localized(
    "该端口是否使用 TLS？amqps:// 应连接消息服务器的 TLS 端口，通常为 5671；amqp:// 应连接其"
    "普通 AMQP 端口，通常为 5672",
    "does this port speak TLS? amqps:// wants the broker's TLS port, usually 5671; amqp:// "
    "its plain AMQP port, usually 5672")


def _innermost(exc: BaseException) -> BaseException:
    """The error inside pika's wrappers, down to the socket's (``AMQPConnectionError``
    around an ``AMQPConnectorSocketConnectError`` around a ``ConnectionRefusedError``)."""
    while True:
        if (isinstance(exc, px.AMQPConnectionError) and len(exc.args) == 1
                and isinstance(exc.args[0], BaseException)):
            exc = exc.args[0]
        elif (isinstance(exc, AMQPConnectorPhaseErrorBase)
                and isinstance(exc.exception, BaseException)):
            exc = exc.exception
        else:
            return exc

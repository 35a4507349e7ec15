"""pika's exceptions as exgate's: a refused login is told apart from a broker away, and
every broker failure names the broker and says why."""

from __future__ import annotations

import socket
import ssl

import pika.exceptions as px
import pytest
from pika.adapters.blocking_connection import BlockingConnection
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
    AMQPConnectorTransportSetupError,
)

from adapters.amqp.errors import (
    GATEWAY_LOGIN,
    BrokerAddress,
    BrokerRefused,
    BrokerUnavailable,
    LoginRefused,
    mapped,
    url_user,
)
from frontend_machine.link import BrokerLink, LinkSettings

USER = "exgate-node-furong-01"
REFUSED = px.ConnectionClosedByBroker(
    403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")


@pytest.mark.parametrize(("exc", "vhost"), [
    (px.ProbableAuthenticationError(repr(REFUSED)), False),
    (px.AuthenticationError("PLAIN"), False),
    (px.ProbableAccessDeniedError(repr(px.ConnectionClosedByBroker(
        403, "ACCESS_REFUSED - access to vhost '/' refused for user"))), True),
])
def test_a_refused_login_names_the_user_and_what_to_do_in_both_languages(
        exc: Exception, vhost: bool) -> None:
    error = mapped(exc, "connecting to the broker", "连接消息服务器", user=USER)
    assert isinstance(error, LoginRefused) and error.reply_code == 403
    en, zh = error.message("en"), error.message("zh")
    assert USER in en and USER in zh
    assert ("virtual host" in en) is vhost and ("虚拟主机" in zh) is vhost
    assert "get the current credentials file from the provincial centre" in en
    assert "请向省级中心索取当前的凭据文件" in zh and "下次重试时读取" in zh
    assert "password?" not in en and "密码错误？" not in zh  # no guess: it says what is so


def test_a_stream_lost_while_logging_in_is_a_broker_away_not_a_refusal() -> None:
    # pika calls any connection ending during the login a "probable" refusal.
    lost = px.ProbableAuthenticationError(repr(px.StreamLostError("Transport indicated EOF")))
    assert isinstance(mapped(lost, "connecting to the broker", user=USER), BrokerUnavailable)


def test_the_centre_disabling_the_node_is_said_in_chinese() -> None:
    closed = px.ConnectionClosedByBroker(320, "CONNECTION_FORCED - exgate: node disabled")
    error = mapped(closed, "waiting for broker events", "等待消息服务器事件")
    assert isinstance(error, BrokerRefused) and not isinstance(error, LoginRefused)
    assert "省级中心已停用本节点" in error.message("zh")
    assert "disabled this node" in error.message("en")


# -- which broker, and why in words -------------------------------------------------------------

BROKER = BrokerAddress.of_url("amqp://exgate-node-furong-01:s3cret@mq.hn.gov:5673/exgate")


def _socket_failed(error: OSError) -> px.AMQPConnectionError:
    """What ``BlockingConnection`` raises when the TCP connect fails."""
    return px.AMQPConnectionError(AMQPConnectorSocketConnectError(error))


def _raised(error: BaseException) -> BaseException:
    """What ``BlockingConnection`` raises when its one connection attempt ends in ``error``
    (one of pika's phase errors): it unwraps all of them but the TCP connect's."""
    return BlockingConnection._reap_last_connection_workflow_error(
        AMQPConnectionWorkflowFailed([error]))


# How pika's connector names the address it dialled, after the host, in its timeouts.
_DIALLED = ("'mq.hn.gov'/(<AddressFamily.AF_INET: 2>, <SocketKind.SOCK_STREAM: 1>, 6, '', "
            "('10.0.0.7', 5673)); ssl=True")


@pytest.mark.parametrize(("exc", "en", "zh"), [
    (_socket_failed(ConnectionRefusedError(111, "Connection refused")),
     "connection refused (nothing listens there: is RabbitMQ running?",
     "连接被拒绝（该地址上没有服务在监听：RabbitMQ 是否在运行？"),
    (socket.gaierror(-2, "Name or service not known"),
     "the host name does not resolve (gaierror [Errno -2] Name or service not known)",
     "主机名无法解析（gaierror [Errno -2] Name or service not known）"),
    (_socket_failed(TimeoutError("timed out")), "no answer in time", "连接超时，对方没有应答"),
    (AMQPConnectorStackTimeout("Timeout during AMQP handshake'mq.hn.gov'"),
     "connected, but no AMQP answer came in time", "已连上该端口，但在超时前没有得到 AMQP 应答"),
    # pika's stack timeout while the TCP connect still waits: no answer at all.
    (_socket_failed(AMQPConnectorStackTimeout("Timeout while connecting socket")),  # type: ignore[arg-type]
     "no answer in time", "连接超时，对方没有应答"),
    (px.StreamLostError("Transport indicated EOF"),
     "the connection was lost (StreamLostError Transport indicated EOF)",
     "连接中断（StreamLostError Transport indicated EOF）"),
    # amqp:// dialling a TLS port (or another service's): the peer hangs up on AMQP's header.
    (px.IncompatibleProtocolError('StreamLostError: ("Stream connection lost: '
                                  'ConnectionResetError(104, \'Connection reset by peer\')",)'),
     "connected, but the other end did not answer in AMQP 0-9-1 and hung up (is this the "
     "broker's TLS port? then use amqps://; or another service's port?) (IncompatibleProtocolError"
     " StreamLostError",
     "已连上该端口，但对方没有以 AMQP 0-9-1 应答，断开了连接（这是消息服务器的 TLS 端口吗？"),
    # TLS set-up that stalls (a listener that takes TCP and never answers the TLS hello)
    # is told apart from an AMQP handshake that stalls by pika's words only.
    (_raised(AMQPConnectorTransportSetupError(AMQPConnectorStackTimeout(
        f"Timeout while setting up transport to {_DIALLED}"))),
     "connected, but the TLS set-up got no answer in time (does this port speak TLS? "
     "amqps:// wants the broker's TLS port, usually 5671; amqp:// its plain AMQP port, "
     "usually 5672)",
     "已连上该端口，但在超时前没有完成 TLS 握手（该端口是否使用 TLS？amqps:// 应连接消息服务器的 "
     "TLS 端口，通常为 5671；amqp:// 应连接其普通 AMQP 端口，通常为 5672）"),
    (_raised(AMQPConnectorAMQPHandshakeError(AMQPConnectorStackTimeout(
        f"Timeout during AMQP handshake{_DIALLED}"))),
     "connected, but no AMQP answer came in time", "已连上该端口，但在超时前没有得到 AMQP 应答"),
    # amqps:// dialling RabbitMQ's plain port, which answers the TLS hello with AMQP's header.
    (_raised(AMQPConnectorTransportSetupError(ssl.SSLError(
        1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"))),
     "TLS could not be set up (SSLError [SSL: WRONG_VERSION_NUMBER] wrong version number "
     "(_ssl.c:1006)) (does this port speak TLS?",
     "无法建立 TLS 连接（SSLError [SSL: WRONG_VERSION_NUMBER] wrong version number "
     "(_ssl.c:1006)）（该端口是否使用 TLS？"),
    (_raised(AMQPConnectorTransportSetupError(ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
           "certificate (_ssl.c:1006)"))),
     "the broker's TLS certificate was not accepted (SSLCertVerificationError [SSL: "
     "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
     "(_ssl.c:1006)) (is the CA that signed it the one the URL names: ca_certs in its "
     "ssl_options, or cacertfile= for a link between brokers?",
     "消息服务器的 TLS 证书未通过验证（SSLCertVerificationError [SSL: CERTIFICATE_VERIFY_FAILED] "
     "certificate verify failed: self-signed certificate (_ssl.c:1006)）（签发它的 CA 是否就是 "
     "URL 所指定的：ssl_options 中的 ca_certs，或消息服务器之间链路的 cacertfile=？"),
])
def test_a_broker_out_of_reach_is_named_with_why_in_both_languages(
        exc: Exception, en: str, zh: str) -> None:
    error = mapped(exc, "connecting to the broker", "连接消息服务器", user=USER, broker=BROKER)
    assert isinstance(error, BrokerUnavailable)
    assert error.message("en").startswith(
        "connecting to the broker: broker mq.hn.gov:5673 (vhost exgate) unavailable: " + en)
    assert error.message("zh").startswith(
        "连接消息服务器：消息服务器 mq.hn.gov:5673（虚拟主机 exgate）不可用：" + zh)
    assert "s3cret" not in error.message("en") + error.message("zh")


@pytest.mark.parametrize("vhost", [False, True])
def test_a_refused_login_names_the_broker_and_for_a_gateway_its_own_remedy(vhost: bool) -> None:
    refusal = px.ProbableAccessDeniedError if vhost else px.ProbableAuthenticationError
    exc = refusal(repr(REFUSED))
    node = mapped(exc, "connecting to the broker", "连接消息服务器", user=USER, broker=BROKER)
    assert isinstance(node, LoginRefused) and node.broker == BROKER
    assert node.message("en").startswith(
        f"the broker mq.hn.gov:5673 (vhost exgate) refused "
        f"{'user ' + repr(USER) + ' access' if vhost else 'the login of user ' + repr(USER)}")
    assert node.message("zh").startswith("消息服务器 mq.hn.gov:5673（虚拟主机 exgate）拒绝")
    assert "s3cret" not in node.message("en") + node.message("zh")
    gateway = mapped(exc, "connecting to the broker", user="gateway", broker=BROKER,
                     login_remedy=GATEWAY_LOGIN)
    assert "user 'gateway'" in str(gateway) and "EXGATE_BROKER_PASSWORD" in str(gateway)
    assert "key_file" not in str(gateway) and "key_file" in str(node)


def test_a_channel_the_broker_closes_names_the_broker() -> None:
    closed = px.ChannelClosedByBroker(403, "ACCESS_REFUSED - access to exchange denied")
    error = mapped(closed, "publishing batch B1", "发送批次 B1", broker=BROKER)
    assert isinstance(error, BrokerRefused)
    assert "broker mq.hn.gov:5673 (vhost exgate) closed the channel: 403" in str(error)
    assert "消息服务器 mq.hn.gov:5673（虚拟主机 exgate）关闭了通道：403" in error.message("zh")


@pytest.mark.parametrize(("url", "en"), [
    ("amqp://u:p@127.0.0.1/", "127.0.0.1:5672 (vhost /)"),
    ("amqps://u:p@mq/%2Fexgate", "mq:5671 (vhost /exgate)"),
    ("amqp://u:p@[::1]:5673/v", "[::1]:5673 (vhost v)"),
    # pika reads the first segment of the path only.
    ("amqp://u:p@mq/exgate/extra", "mq:5672 (vhost exgate)"),
    ("amqp://u:p@mq//", "mq:5672 (vhost )"),
    # A password typed unencoded: never taken for the host or the vhost (and printed).
    ("amqp://gw:p@ss/word@mq.hn.gov:5672/exgate", "mq.hn.gov:5672 (vhost exgate)"),
    # A port pika refuses (no number, out of range) is shown as pika's default; 0 as is.
    ("amqp://gw@mq:port/x", "mq:5672 (vhost x)"),
    ("amqp://gw@mq:99999/x", "mq:5672 (vhost x)"),
    ("amqps://gw@mq:-1/x", "mq:5671 (vhost x)"),
    ("amqp://gw@mq:0/x", "mq:0 (vhost x)"),
    # A host urlsplit refuses is shown as written, with no port made up for it.
    ("amqp://u:s3cret@[::1/", "[::1 (vhost /)"),
    ("amqp://u:s3cret@[::1:5673/exgate?heartbeat=5", "[::1:5673 (vhost exgate)"),
    ("amqp://gw:p@ss/w[rd@[::1/x", "[::1 (vhost x)"),
    ("amqps://u:s3cret@[mq.hn.gov]:5671/exgate", "[mq.hn.gov]:5671 (vhost exgate)"),
    ("amqps://u:s3cret@mq.hn.gov：5671/exgate", "mq.hn.gov：5671 (vhost exgate)"),
    ("amqp://us]er@/x", "localhost:5672 (vhost x)"),
])
def test_a_broker_address_is_host_port_and_virtual_host_only(url: str, en: str) -> None:
    said = BrokerAddress.of_url(url).said
    assert said.en == en and said.zh == en.replace(" (vhost ", "（虚拟主机 ")[:-1] + "）"


def test_a_listener_that_never_speaks_amqp_is_a_broker_away_for_the_agent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pika's handshake timeout is no ``AMQPError``: it escaped the link, and killed the
    publisher's step (and a gateway's consumer) instead of being retried."""
    def silent(parameters: object) -> None:
        raise AMQPConnectorStackTimeout("Timeout during AMQP handshake")

    monkeypatch.setattr("frontend_machine.link.BlockingConnection", silent)
    with pytest.raises(BrokerUnavailable, match=r"broker 127\.0\.0\.1:5672 \(vhost /\)"):
        BrokerLink.open(LinkSettings("amqp://u:p@127.0.0.1/", "n1"), None)


@pytest.mark.parametrize(("url", "user"), [
    ("amqp://gw:p@ss/word@mq:5672/x", "gw"), ("amqp://exgate%2Dgw@mq/", "exgate-gw"),
    ("amqp://mq/", None), ("amqp://gw:p@ss/w[rd@[::1/x", "gw"), ("amqp://us]er@mq/", "us]er"),
    ("amqp://[::1/", None)])
def test_the_user_of_a_url_is_read_past_its_password(url: str, user: str | None) -> None:
    assert url_user(url) == user

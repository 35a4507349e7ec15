"""pika's exceptions as exgate's: a refused login is told apart from a broker away."""

from __future__ import annotations

import pika.exceptions as px
import pytest

from adapters.amqp.errors import BrokerRefused, BrokerUnavailable, LoginRefused, mapped

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

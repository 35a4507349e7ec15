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

All are ``RetriableError``: nothing is ever dropped because the broker said no.
"""

from __future__ import annotations

import pika.exceptions as px

from schemas.errors import RetriableError

__all__ = ["NODE_DISABLED_REASON", "BrokerRefused", "BrokerUnavailable", "LoginRefused",
           "Nacked", "Unroutable", "mapped"]

# The reason `exgate node disable` gives the broker when it closes the node's connections.
NODE_DISABLED_REASON = "exgate: node disabled"


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

    def __init__(self, user: str | None, *, vhost: bool) -> None:
        who = f"user {user!r}" if user else "the broker user"
        who_zh = f"用户 {user!r} " if user else "消息服务器用户"
        what, what_zh = (
            (f"the broker refused {who} access to its virtual host",
             f"消息服务器拒绝{who_zh}访问其虚拟主机") if vhost else
            (f"the broker refused the login of {who}", f"消息服务器拒绝了{who_zh}的登录"))
        super().__init__(
            f"{what} (ACCESS_REFUSED): this node's credentials file ([node] key_file) is "
            "outdated or the node was disabled; get the current credentials file from the "
            "provincial centre and put it in place (a running `agent run` reads it at its "
            "next try)",
            reply_code=403, reply_text="ACCESS_REFUSED",
            zh=f"{what_zh}（ACCESS_REFUSED）：本节点的凭据文件（[node] key_file）已过期，"
               "或节点已被停用；请向省级中心索取当前的凭据文件并替换（运行中的 agent run "
               "会在下次重试时读取）")
        self.user = user


def _lost_while_logging_in(exc: px.AMQPConnectionError) -> bool:
    """pika calls any connection that ends during the login a "probable" refusal; one
    whose stream was merely lost (a broker going down) is no refusal at all."""
    return any("StreamLostError" in str(arg) for arg in exc.args)


def mapped(exc: BaseException, doing: str, doing_zh: str | None = None, *,
           user: str | None = None) -> RetriableError:
    """The exgate error for a pika (or socket) exception raised while ``doing``.

    With ``doing_zh`` the error also carries its Chinese text (``message("zh")``), for the
    agent's logs; pika's own words stay as they are in both languages. ``user``: the
    broker user logging in, named by a refused login.
    """
    def both(en: str, zh: str) -> tuple[str, str | None]:
        return f"{doing}: {en}", None if doing_zh is None else f"{doing_zh}：{zh}"

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
                                 f"connection ({reply})",
                                 f"省级中心已停用本节点并断开了它的连接（{reply}）")
        else:
            text, text_zh = both(f"broker closed the channel: {reply}",
                                 f"消息服务器关闭了通道：{reply}")
        return BrokerRefused(text, reply_code=exc.reply_code, reply_text=exc.reply_text,
                             zh=text_zh)
    if isinstance(exc, px.AuthenticationError):
        return LoginRefused(user, vhost=False)
    if (isinstance(exc, px.ProbableAuthenticationError | px.ProbableAccessDeniedError)
            and not _lost_while_logging_in(exc)):
        return LoginRefused(user, vhost=isinstance(exc, px.ProbableAccessDeniedError))
    name = f"{type(exc).__name__} {exc}".rstrip()
    text, text_zh = both(f"broker unavailable: {name}", f"消息服务器不可用：{name}")
    return BrokerUnavailable(text, zh=text_zh)

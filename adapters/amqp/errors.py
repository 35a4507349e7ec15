"""pika exceptions mapped to exgate errors, at the boundary, grouped by what to do.

- ``Unroutable``: the broker returned a mandatory message (no queue bound for its key).
- ``Nacked``: the broker refused to take responsibility (e.g. a full queue).
- ``BrokerRefused``: the broker closed the channel or refused the login: a permission
  (topic permission 403, ``user_id`` mismatch 406), a missing exchange or queue (404),
  wrong credentials. An operator must act; we keep everything and retry slowly.
- ``BrokerUnavailable``: the connection is gone or cannot be made; retry with backoff.

All are ``RetriableError``: nothing is ever dropped because the broker said no.
"""

from __future__ import annotations

import pika.exceptions as px

from schemas.errors import RetriableError

__all__ = ["BrokerRefused", "BrokerUnavailable", "Nacked", "Unroutable", "mapped"]


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


def mapped(exc: BaseException, doing: str, doing_zh: str | None = None) -> RetriableError:
    """The exgate error for a pika (or socket) exception raised while ``doing``.

    With ``doing_zh`` the error also carries its Chinese text (``message("zh")``), for the
    agent's logs; pika's own words stay as they are in both languages.
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
        text, text_zh = both(f"broker closed the channel: {reply}",
                             f"消息服务器关闭了通道：{reply}")
        return BrokerRefused(text, reply_code=exc.reply_code, reply_text=exc.reply_text,
                             zh=text_zh)
    if isinstance(exc, px.ProbableAuthenticationError | px.AuthenticationError):
        text, text_zh = both("login refused (wrong broker user or password?)",
                             "登录被拒绝（消息服务器用户名或密码错误？）")
        return BrokerRefused(text, reply_code=403, zh=text_zh)
    if isinstance(exc, px.ProbableAccessDeniedError):
        text, text_zh = both("access to the virtual host refused", "访问虚拟主机被拒绝")
        return BrokerRefused(text, reply_code=403, zh=text_zh)
    name = f"{type(exc).__name__} {exc}".rstrip()
    text, text_zh = both(f"broker unavailable: {name}", f"消息服务器不可用：{name}")
    return BrokerUnavailable(text, zh=text_zh)

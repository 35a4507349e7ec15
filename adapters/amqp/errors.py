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
                 reply_text: str = "") -> None:
        super().__init__(message)
        self.reply_code = reply_code
        self.reply_text = reply_text


def mapped(exc: BaseException, doing: str) -> RetriableError:
    """The exgate error for a pika (or socket) exception raised while ``doing``."""
    if isinstance(exc, px.UnroutableError):
        return Unroutable(f"{doing}: returned by the broker as unroutable (no level queue is "
                          "bound for this routing key; has `exgate broker start` or the "
                          "gateway declared the level queues?)")
    if isinstance(exc, px.NackError):
        return Nacked(f"{doing}: nacked by the broker (a level queue may be full)")
    if isinstance(exc, px.ChannelClosedByBroker | px.ConnectionClosedByBroker):
        return BrokerRefused(f"{doing}: broker closed the channel: {exc.reply_code} "
                             f"{exc.reply_text}", reply_code=exc.reply_code,
                             reply_text=exc.reply_text)
    if isinstance(exc, px.ProbableAuthenticationError | px.AuthenticationError):
        return BrokerRefused(f"{doing}: login refused (wrong broker user or password?)",
                             reply_code=403)
    if isinstance(exc, px.ProbableAccessDeniedError):
        return BrokerRefused(f"{doing}: access to the virtual host refused", reply_code=403)
    return BrokerUnavailable(f"{doing}: broker unavailable: {type(exc).__name__} {exc}")

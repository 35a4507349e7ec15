"""Up links by shovel (``exgate broker link --via shovel``): records and heartbeats of a
lower division moved by RabbitMQ's shovel plugin instead of federation. The rest of the
link (its intakes, the wrong-way guard) is in ``gateway.federation``.

A shovel moves messages from a durable queue that ``shovels_up`` declares and binds on
the upstream broker with the lower level's prefix (``exgate.uplink.<kind>.<receiver>``)
to this broker's intake (the lower broker's administrator could bind that queue to
anything), keeping routing keys and ``user_id`` (it publishes over the broker's internal
connection), with ``ack-mode on-confirm``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from adapters.amqp.errors import CONNECT_ERRORS, BrokerAddress, mapped, url_user
from adapters.amqp.parameters import UnusableBrokerURL
from adapters.amqp.topology import binding_key
from gateway.link_uri import LinkUpstream, shown_uri
from gateway.mgmt_api import ManagementApi, segment
from schemas.errors import ConfigError
from schemas.messages import Localized

if TYPE_CHECKING:
    from pika import ConnectionParameters

__all__ = ["shovel_upstream", "shovels_up"]


def shovel_upstream(upstream: LinkUpstream) -> ConnectionParameters:
    """pika's parameters for the upstream, on which exgate declares the shovels' source
    queues; a ConfigError, before anything is changed, when pika refuses the URL."""
    try:
        return upstream.pika_parameters()
    except UnusableBrokerURL as exc:
        raise ConfigError(f"--upstream cannot be used to declare the shovels' source queues: "
                          f"{exc.why.en}",
                          zh=f"--upstream 无法用于声明 shovel 的源队列：{exc.why.zh}") from None


def shovels_up(api: ManagementApi, vhost: str, upstream_url: str, upstream: ConnectionParameters,
               division: str, intakes: Mapping[str, str],
               reconnect_delay: int) -> tuple[str, ...]:
    """One shovel per upstream exchange in ``intakes``, into its intake here; their names.
    ``upstream``: ``shovel_upstream(upstream_url)``."""
    receiver = _cluster_name(api)
    names = []
    for exchange, intake in intakes.items():
        kind = exchange.rsplit(".", 1)[1]
        queue = f"exgate.uplink.{kind}.{receiver}"
        _declare_uplink_queue(upstream_url, upstream, queue, exchange, binding_key(division))
        name = f"exgate-up-{division}-{kind}"
        path = f"parameters/shovel/{segment(vhost)}/{segment(name)}"
        api.put(path, {"value": {
            "src-protocol": "amqp091", "src-uri": upstream_url, "src-queue": queue,
            "dest-protocol": "amqp091", "dest-uri": _local_uri(vhost),
            # into the intake, which lets on only the division's keys; no
            # dest-exchange-key: routing keys are kept
            "dest-exchange": intake,
            "ack-mode": "on-confirm", "src-delete-after": "never",
            "prefetch-count": 1000, "reconnect-delay": reconnect_delay,
            "dest-add-forward-headers": False}})
        names.append(name)
    return tuple(names)


# What a refused login of the link user on the upstream means.
_LINK_LOGIN = Localized(
    "请核对 --upstream 中的链路用户及其口令（$EXGATE_UPSTREAM_PASSWORD），以及它在上游的权限"
    "（grant_link_user）",
    "check the link user of --upstream and its password ($EXGATE_UPSTREAM_PASSWORD), and its "
    "permissions on the upstream (grant_link_user)")


def _declare_uplink_queue(url: str, upstream: ConnectionParameters, queue: str, exchange: str,
                          key: str) -> None:
    """The shovel's durable source queue on the upstream, bound with the lower prefix.

    A classic durable queue, declared exactly as the 3.x shovel re-declares its
    ``src-queue`` (a quorum queue there would fail that declaration).
    """
    import pika
    import pika.exceptions as px

    try:
        connection = pika.BlockingConnection(upstream)
    except CONNECT_ERRORS as exc:  # a silent listener too (pika's connector timeout)
        raise mapped(exc, "reaching the upstream", "连接上游", user=url_user(url),
                     broker=BrokerAddress.of_url(url), login_remedy=_LINK_LOGIN) from exc
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, key)
    except px.ChannelClosedByBroker as exc:
        raise ConfigError(f"the upstream {shown_uri(url)} refused to declare {queue}: "
                          f"{exc.reply_text}; start the lower level's broker with its "
                          f"topology and give the link user configure and write on {queue} "
                          f"and read on {exchange} (grant_link_user)",
                          zh=f"上游 {shown_uri(url)} 拒绝声明 {queue}：{exc.reply_text}；请先启动"
                             f"下级的消息服务器并声明其拓扑，再给链路用户 {queue} 的 configure 和 "
                             f"write 权限以及 {exchange} 的 read 权限（grant_link_user）") from exc
    finally:
        with contextlib.suppress(px.AMQPError, OSError):
            connection.close()


def _cluster_name(api: ManagementApi) -> str:
    name = str((api.get("cluster-name") or {}).get("name") or "exgate")
    return re.sub(r"[^0-9A-Za-z_\-]", "-", name)


def _local_uri(vhost: str) -> str:
    return "amqp://" if vhost == "/" else f"amqp:///{quote(vhost, safe='')}"

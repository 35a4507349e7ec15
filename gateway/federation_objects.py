"""The objects a link declares on the receiving broker, through its management API.

Each up link's *intake* exchanges (``intake_exchange``: ``exgate.records.from.<division>``
and ``exgate.status.from.<division>``, bound into their exchange by the division's prefix
alone), the federation upstreams, the upstream sets that name what they federate, and the
policies that apply a set to exchanges. Why links are built this way is told in
``gateway.federation``, which declares them.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.amqp.topology import RECORDS_EXCHANGE, STATUS_EXCHANGE, binding_key, check_division
from gateway.mgmt_api import HttpChannel, ManagementApi, exactly, segment

__all__ = [
    "POLICY_PRIORITY",
    "UP_EXCHANGES",
    "add_to_set",
    "declare_intake",
    "federate_intakes",
    "intake_exchange",
    "put_policy",
    "put_upstream",
]

POLICY_PRIORITY = 10
UP_EXCHANGES = (RECORDS_EXCHANGE, STATUS_EXCHANGE)


def intake_exchange(exchange: str, division: str) -> str:
    """``exgate.records.from.430102``: where ``division``'s traffic enters this broker."""
    return f"{exchange}.from.{check_division(division)}"


def declare_intake(api: ManagementApi, vhost: str, exchange: str, division: str) -> None:
    """The link's own topic exchange, bound into ``exchange`` with the division's prefix.

    Whatever the lower broker sends over the link lands here first; only keys under
    ``binding_key(division)`` go on into ``exchange``, the rest is routed nowhere. Not
    ``internal``: RabbitMQ does not federate internal exchanges, nor lets a shovel
    publish to one.
    """
    intake = intake_exchange(exchange, division)
    HttpChannel(api, vhost).exchange_declare(intake, exchange_type="topic", durable=True)
    api.post(f"bindings/{segment(vhost)}/e/{segment(intake)}/e/{segment(exchange)}",
             {"routing_key": binding_key(division), "arguments": {}})


def federate_intakes(api: ManagementApi, vhost: str, upstream: str, division: str) -> None:
    """Federate each intake from the upstream's exchange of the same kind.

    One upstream set per intake names the upstream exchange (``exchange``), and the
    policy matches that intake alone: the upstream's ``exgate.records`` never federates
    into this broker's ``exgate.records`` directly. The intake's one binding (the
    division's prefix) is what federation propagates up, so only that is pulled.
    """
    for exchange in UP_EXCHANGES:
        intake = intake_exchange(exchange, division)
        name = f"{upstream}-{exchange.rsplit('.', 1)[1]}"
        api.put(f"parameters/federation-upstream-set/{segment(vhost)}/{segment(name)}",
                {"value": [{"upstream": upstream, "exchange": exchange}]})
        put_policy(api, vhost, name, (intake,), name)


def put_upstream(api: ManagementApi, vhost: str, name: str, uri: str, max_hops: int,
                 reconnect_delay: int, *, trust_user: bool) -> None:
    # No expires and no message-ttl: the upstream queue keeps messages through any outage.
    api.put(f"parameters/federation-upstream/{segment(vhost)}/{segment(name)}", {"value": {
        "uri": uri, "ack-mode": "on-confirm", "trust-user-id": trust_user,
        "max-hops": max_hops, "prefetch-count": 1000, "reconnect-delay": reconnect_delay}})


def add_to_set(api: ManagementApi, vhost: str, set_name: str, upstream: str) -> None:
    path = f"parameters/federation-upstream-set/{segment(vhost)}/{segment(set_name)}"
    found = api.find(path)
    members = list(found.get("value") or []) if found is not None else []
    if all(m.get("upstream") != upstream for m in members):
        api.put(path, {"value": [*members, {"upstream": upstream}]})


def put_policy(api: ManagementApi, vhost: str, name: str, exchanges: Sequence[str],
               set_name: str) -> None:
    api.put(f"policies/{segment(vhost)}/{segment(name)}", {
        "pattern": exactly(*exchanges), "apply-to": "exchanges", "priority": POLICY_PRIORITY,
        "definition": {"federation-upstream-set": set_name}})

"""Levels on separate brokers, linked by RabbitMQ itself: federation or shovel.

A county node talks only to its county broker. The city and province gateways consume
their own brokers. RabbitMQ moves the traffic between them; exgate only declares the
links, through the management API of the broker that receives (``exgate broker link``
in ``gateway.federation_command``):

- **up** (``--direction up``, run on the city broker, ``--upstream`` = the county
  broker, ``--division 430102``): records (``exgate.records``) and heartbeats
  (``exgate.status``) of the lower level come up. The same on the province broker with
  ``--upstream`` = the city broker and ``--division 430100`` brings up the city's own
  traffic *and* what the city received from its counties.
- **down** (``--direction down``, run on the county broker, ``--upstream`` = the city
  broker, ``--division 430100``): receipts (``exgate.receipts``) of the upper levels
  come down, so a county node gets the city's and the province's receipts on its own
  ``exgate.receipts.<node>`` queue, from its own broker.

**A lower broker speaks for its own division only.** Its administrator can create any
user and publish any routing key and ``user_id`` there, so the receiving broker decides
what comes in: an up link never federates this broker's ``exgate.records`` or
``exgate.status``. It declares an *intake* per exchange and link,
``exgate.records.from.<division>`` and ``exgate.status.from.<division>`` (topic),
bound into the exchange of the same kind with the division's prefix alone
(``430000.430100.430102.#`` for a county). Federation or shovel delivers into the
intake; a message under another key (another county's node, forged on the county
broker) is routed nowhere there and never reaches a queue of this level or the levels
above.

**Why exchange federation by default.** A federated exchange pulls from the upstream
exchange only what its own bindings ask for, and the intake's only binding is the
division's prefix: the upstream sends nothing else over the link (and should it, the
intake drops it). The intake is federated from the upstream's ``exgate.records``
(``exgate.status``) through its own upstream set, which names that exchange, and its
own policy (``exgate-up-<division>-records``, ``-status``), so a link re-run replaces
exactly its own objects. For receipts federation is what makes the link work at all:
``exgate.receipts`` is a direct exchange keyed by node ID, and the county's
``exgate.receipts.<node>`` bindings are propagated up the link, so the city (and
through it the province) sends down exactly the receipts of nodes that have a queue on
that county broker; a node provisioned later needs no new link. Messages wait in a
durable queue on the upstream while the link or the receiving broker is down; the link
acks them only after the receiving broker confirms (``ack-mode on-confirm``), so
nothing is lost, and a redelivery after a cut is harmless (the stores are idempotent).
``trust-user-id`` keeps ``user_id`` across the link (without it RabbitMQ clears it):
the lower broker has checked it against the node's login, and the gateways refuse a
batch whose ``user_id`` is not the node's broker user (its Ed25519 signature is checked
as well); the intake has already refused any key outside the lower division.

Up links of earlier versions federated ``exgate.records`` and ``exgate.status``
themselves (policy ``exgate-federate-up``), pulling whatever this broker's queues were
bound with, the whole city and through it the province: any lower broker could speak
for the others. An up link run here moves every such federation upstream to intakes
and deletes that policy. A shovel of an earlier version still publishes into the bare
exchange: it moves to its intake only when ``broker link --via shovel`` runs again for
its own division.

**Shovel** (``--via shovel``, records and heartbeats only, ``gateway.shovel_links``)
moves messages from a queue on the lower broker into this broker's intake. It suits a
receiving side that may not create objects on the lower broker at run time, or a
firewall that only lets one queue through. Receipts stay federated in both modes: a
shovel would need every node ID bound by hand.

**TLS.** Federation and shovel dial the upstream with RabbitMQ's Erlang client, which
reads TLS from the URI's query (``cacertfile``, ``verify=verify_peer``,
``server_name_indication``…) and ignores what it does not know. ``gateway.link_uri``
checks the URI as that client reads it, so a slip in the query does not leave a link
unencrypted or unchecked without a word; ``LinkResult.tls`` says what the link checks of
the upstream's certificate, and ``broker link`` warns when it is not both its CA and
its name.

**Loops.** Records only ever flow up and receipts only down, on different exchanges,
so a tree of links has no cycle. Federation adds two guards: a message is never sent
back to a broker already in its ``x-received-from`` path (so cluster names must be
unique: ``rabbitmqctl set_cluster_name``), and ``max-hops`` caps how far it travels.
exgate sets ``max-hops`` to 2 when the upstream is a city (county traffic passes
through the city up to the province; province receipts pass through the city down to
the county) and to 1 otherwise. Receipt bindings propagate up by the same count; an
intake's binding goes one link up and no further. Shovels have no such guard, so
``link`` refuses a link whose direction contradicts the levels already declared on the
receiving broker (records going down, receipts going up).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from adapters.amqp.topology import (
    RECEIPTS_EXCHANGE,
    binding_key,
    check_division,
    declare_exchanges,
)
from adapters.config_files import with_url_password
from gateway.federation_objects import (
    UP_EXCHANGES,
    add_to_set,
    declare_intake,
    federate_intakes,
    intake_exchange,
    put_policy,
    put_upstream,
)
from gateway.link_uri import TlsCheck, parse_upstream, shown_uri
from gateway.log_text import say
from gateway.mgmt_api import HttpChannel, ManagementApi, ManagementError, segment
from gateway.shovel_links import shovel_upstream, shovels_up
from schemas.divisions import Level, level_of
from schemas.errors import ConfigError, RetriableError

__all__ = [
    "PASSWORD_ENV",
    "LinkResult",
    "grant_link_user",
    "link_down",
    "link_states",
    "link_up",
    "max_hops_for",
    "wait_running",
    "with_password",
]

log = logging.getLogger("exgate.federation")
UP_SET = "exgate-up"        # older links: the set federating exgate.records/status
DOWN_SET = "exgate-down"    # federation-upstream-set of receipts
UP_POLICY = "exgate-federate-up"  # older links: replaced by one policy per intake
DOWN_POLICY = "exgate-federate-down"
PASSWORD_ENV = "EXGATE_UPSTREAM_PASSWORD"
_LEVEL_QUEUE = re.compile(r"^exgate\.level\.([1-9]\d{5})$")
_OLD_UPSTREAM = re.compile(r"^exgate-up-([1-9]\d{5})$")


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What ``link`` declared on the receiving broker (names only, never the URI)."""

    direction: str            # up | down
    via: str                  # federation | shovel
    division: str
    upstream: str             # URI with its passwords masked (link_uri.shown_uri)
    names: tuple[str, ...]    # federation upstreams or shovels
    max_hops: int
    tls: TlsCheck = "none"    # what the link checks of the upstream (link_uri)


def max_hops_for(upstream_division: str) -> int:
    """2 when the upstream is a city: traffic passes through it; else 1."""
    return 2 if level_of(check_division(upstream_division)) is Level.CITY else 1


def with_password(url: str) -> str:
    """The upstream URI, with ``$EXGATE_UPSTREAM_PASSWORD`` filled in when it has none."""
    try:
        parts = urlsplit(url)
        understood = parts.scheme in ("amqp", "amqps") and bool(parts.hostname) \
            and (parts.port or 0) >= 0  # .port raises for one that is no number
    except ValueError:  # a broken IPv6 host, a port out of range
        understood = False
    if not understood:
        raise ConfigError(f"--upstream {shown_uri(url)!r} must look like "
                          "amqp://USER@HOST:PORT/VHOST, the password in the URI or in "
                          f"${PASSWORD_ENV}",
                          zh=f"--upstream {shown_uri(url)!r} 应形如 amqp://USER@HOST:PORT/VHOST，"
                             f"密码写在 URI 中或放在 ${PASSWORD_ENV}")
    secret = os.environ.get(PASSWORD_ENV)
    if parts.username and parts.password is None and not secret:
        raise ConfigError(f"--upstream {shown_uri(url)!r} names user {parts.username!r} without "
                          f"a password: set ${PASSWORD_ENV} (or put it in the URI)",
                          zh=f"--upstream {shown_uri(url)!r} 指定了用户 {parts.username!r} 但没有"
                             f"密码：请设置 ${PASSWORD_ENV}（或写在 URI 中）")
    if parts.username and parts.password is None and secret:
        return with_url_password(url, secret)
    return url


# -- up: records and heartbeats ---------------------------------------------------------------

def link_up(api: ManagementApi, upstream_url: str, division: str, *, via: str = "federation",
            vhost: str = "/", max_hops: int | None = None,
            reconnect_delay: int = 5, lang: str = "zh") -> LinkResult:
    """Bring ``division``'s records and heartbeats from the broker at ``upstream_url``;
    what it logs is in ``lang``."""
    check_division(division)
    if via not in ("federation", "shovel"):
        raise ConfigError(f"--via {via!r}: choose federation or shovel",
                          zh=f"--via {via!r}：请选择 federation 或 shovel")
    upstream = parse_upstream(upstream_url)
    parameters = shovel_upstream(upstream) if via == "shovel" else None
    _refuse_wrong_way(api, vhost, division, "up")
    declare_exchanges(HttpChannel(api, vhost, lang))
    hops = max_hops or max_hops_for(division)
    for exchange in UP_EXCHANGES:
        declare_intake(api, vhost, exchange, division)
    if via == "federation":
        name = f"exgate-up-{division}"
        put_upstream(api, vhost, name, upstream_url, hops, reconnect_delay, trust_user=True)
        federate_intakes(api, vhost, name, division)
        names: tuple[str, ...] = (name,)
    else:
        intakes = {x: intake_exchange(x, division) for x in UP_EXCHANGES}
        assert parameters is not None
        names = shovels_up(api, vhost, upstream_url, parameters, division, intakes,
                           reconnect_delay)
    _retire_whole_exchange_links(api, vhost, lang)
    return LinkResult("up", via, division, shown_uri(upstream_url), names, hops, upstream.tls)



def _retire_whole_exchange_links(api: ManagementApi, vhost: str, lang: str,
                                 settle: float = 30.0) -> None:
    """Replace the up links of earlier exgate versions, which federated
    ``exgate.records`` and ``exgate.status`` themselves (policy ``exgate-federate-up``,
    set ``exgate-up``).

    Those pulled whatever the receiving broker's own bindings asked for, the city's whole
    prefix and further up, so a lower broker could speak for its neighbours. Each of
    their upstreams named ``exgate-up-<division>`` is moved to intakes for that division
    (its URI, password and max-hops stay as they are), then the old policy and set go.
    RabbitMQ deletes the old link's queue on the lower broker as it stops it: the old
    policy goes once the new links of each old link that runs run too (up to
    ``settle`` seconds), so what is published meanwhile takes one way or both (the
    stores are idempotent), none is left in a queue nobody reads.
    """
    policy = f"policies/{segment(vhost)}/{segment(UP_POLICY)}"
    members_path = f"parameters/federation-upstream-set/{segment(vhost)}/{segment(UP_SET)}"
    members = api.find(members_path)
    if api.find(policy) is None and members is None:
        return
    moved = []
    for member in (members or {}).get("value") or []:
        found = _OLD_UPSTREAM.match(str(member.get("upstream")))
        if found is None:  # not one exgate made: no division to restrict it to
            log.warning(say("old-upstream", lang, upstream=member.get("upstream"), set=UP_SET))
            continue
        division = found.group(1)
        for exchange in UP_EXCHANGES:
            declare_intake(api, vhost, exchange, division)
        federate_intakes(api, vhost, found.group(0), division)
        moved.append(division)
    _settle(api, vhost, moved, settle)
    api.delete(policy)
    api.delete(members_path)


def _settle(api: ManagementApi, vhost: str, divisions: Sequence[str], timeout: float) -> None:
    """Wait until the intake links of each old link that runs are running as well."""
    try:
        before = link_states(api, vhost)
    except ManagementError:
        return  # no link states without rabbitmq_federation_management: nothing to wait on
    waiting = [f"exgate-up-{d}:{intake_exchange(x, d)}" for d in divisions
               for x in UP_EXCHANGES if before.get(f"exgate-up-{d}:{x}") == "running"]
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            states = link_states(api, vhost)
        except ManagementError:
            continue  # a blip of the API: ask again until the deadline
        waiting = [name for name in waiting if states.get(name) != "running"]


# -- down: receipts -----------------------------------------------------------------------------

def link_down(api: ManagementApi, upstream_url: str, division: str, *, vhost: str = "/",
              max_hops: int | None = None, reconnect_delay: int = 5,
              lang: str = "zh") -> LinkResult:
    """Bring the receipts of the upper level ``division`` (at ``upstream_url``) down here;
    what it logs is in ``lang``."""
    check_division(division)
    upstream = parse_upstream(upstream_url)
    _refuse_wrong_way(api, vhost, division, "down")
    declare_exchanges(HttpChannel(api, vhost, lang))
    hops = max_hops or max_hops_for(division)
    name = f"exgate-down-{division}"
    put_upstream(api, vhost, name, upstream_url, hops, reconnect_delay, trust_user=False)
    add_to_set(api, vhost, DOWN_SET, name)
    put_policy(api, vhost, DOWN_POLICY, (RECEIPTS_EXCHANGE,), DOWN_SET)
    return LinkResult("down", "federation", division, shown_uri(upstream_url), (name,), hops,
                      upstream.tls)


# -- the link user on the upstream ------------------------------------------------------

def grant_link_user(api: ManagementApi, user: str, password: str, *, direction: str,
                    vhost: str = "/") -> None:
    """On the *upstream* broker: a user that may serve one link direction and no more.

    Federation declares ``federation: <exchange> -> <receiver>`` objects there and reads
    the exchange; a shovel reads its ``exgate.uplink.*`` queue. Nobody with this login
    can publish records or read another node's receipts queue.
    """
    exchanges = "exgate\\.(records|status)" if direction == "up" else "exgate\\.receipts"
    own = "federation: .*|exgate\\.uplink\\..*"
    api.put(f"users/{segment(user)}", {"password": password, "tags": ""})
    api.put(f"permissions/{segment(vhost)}/{segment(user)}", {
        "configure": f"^({own})$", "write": f"^({own})$", "read": f"^({exchanges}|{own})$"})


# -- the direction guard ----------------------------------------------------------------------

# direction → (where the level is, who should link), and in Chinese (where, which way,
# who should link).
_WRONG_WAY = {"up": (("at or below", "upper"), ("等于或低于", "上行", "上级")),
              "down": (("at or above", "lower"), ("等于或高于", "下行", "下级"))}


def _refuse_wrong_way(api: ManagementApi, vhost: str, division: str, direction: str) -> None:
    """Records must go to a higher level, receipts to a lower one: no loop by mistake."""
    for level in _levels_here(api, vhost):
        below = _at_or_below(level, division)
        above = _at_or_below(division, level)
        if (direction == "up" and below) or (direction == "down" and above):
            where, where_zh = _WRONG_WAY[direction]
            raise ConfigError(
                f"this broker serves level {level}, {where[0]} {division}: linking "
                f"{direction} would send traffic the wrong way (a loop with the reverse "
                f"link). Run it on the broker of the {where[1]} level instead",
                zh=f"本消息服务器服务于层级 {level}，{where_zh[0]} {division}：建立"
                   f"{where_zh[1]}链路会让数据走错方向（与反向链路形成环路）。请改在"
                   f"{where_zh[2]}的消息服务器上执行")


def _levels_here(api: ManagementApi, vhost: str) -> list[str]:
    queues = api.get(f"queues/{segment(vhost)}?columns=name") or []
    return [m.group(1) for q in queues if (m := _LEVEL_QUEUE.match(str(q.get("name"))))]


def _at_or_below(lower: str, upper: str) -> bool:
    return binding_key(lower)[:-1].startswith(binding_key(upper)[:-1])


# -- state ------------------------------------------------------------------------------------

def link_states(api: ManagementApi, vhost: str = "/") -> dict[str, str]:
    """``{upstream or shovel name: state}`` for the federation links and shovels here."""
    states: dict[str, str] = {}
    for link in api.get(f"federation-links/{segment(vhost)}") or []:
        name = str(link.get("upstream"))
        exchange = str(link.get("exchange", ""))
        states[f"{name}:{exchange}"] = _state(link.get("status"), link.get("error"))
    for shovel in api.get(f"shovels/{segment(vhost)}") or []:
        states[str(shovel.get("name"))] = _state(shovel.get("state"), shovel.get("reason"))
    return states


def _state(state: object, why: object) -> str:
    """``running``, or e.g. ``error (econnrefused)``: the reason a link is not up."""
    return f"{state} ({why})" if why and state != "running" else str(state)


def wait_running(api: ManagementApi, result: LinkResult, vhost: str = "/",
                 timeout: float = 60.0) -> dict[str, str]:
    """Wait until every link of ``result`` runs; RetriableError with their states if not."""
    deadline = time.monotonic() + timeout
    expected = ([f"{n}:{x}" for n in result.names for x in _exchanges(result)]
                if result.via == "federation" else list(result.names))
    while True:
        states = link_states(api, vhost)
        mine = {name: states.get(name, "absent") for name in expected}
        if all(state == "running" for state in mine.values()):
            return mine
        if time.monotonic() > deadline:
            raise RetriableError(f"links not running after {timeout:.0f} s: {mine}")
        time.sleep(0.2)


def _exchanges(result: LinkResult) -> tuple[str, ...]:
    """The federated exchanges of a link: the intakes up, ``exgate.receipts`` down."""
    if result.direction == "up":
        return tuple(intake_exchange(x, result.division) for x in UP_EXCHANGES)
    return (RECEIPTS_EXCHANGE,)


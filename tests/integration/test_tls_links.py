"""Links and a node over TLS, against a real RabbitMQ TLS listener.

The county broker serves AMQP over TLS too, with a certificate for ``localhost`` signed by
the test's own CA; the city broker links up from it with the URI form RabbitMQ's links
read (``cacertfile=…&verify=verify_peer&server_name_indication=…``), by federation and
by shovel. The tests show that the link and the node's publisher really speak TLS to the
listener (the county broker's own list of connections says so), that the county's
batches come up, and that a link given another CA never runs: the federation link stays
in error, and a shovel is never declared, nor its source queue on the county broker.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from adapters.amqp.errors import BrokerUnavailable
from adapters.amqp.topology import level_queue
from gateway.broker_node import LocalBroker
from gateway.federation import link_states, link_up, wait_running
from gateway.loopback import LOOPBACK, free_ports
from tests.integration.amqp_helpers import wait_for
from tests.integration.levels import (
    Level,
    fresh_levels,
    provision_node,
    publish,
    started_brokers,
)
from tests.tls_files import TlsFiles, make_authority

COUNTY, CITY = "430102", "430100"
BATCHES, PER_BATCH = 3, 10


@dataclass(frozen=True)
class Listener:
    port: int
    files: TlsFiles        # the CA that signed the county's certificate, and that pair
    stranger_ca: Path      # a CA that signed nothing the brokers show

    def url(self, plain: str, query: str = "") -> str:
        """``plain`` (an ``amqp://`` URL of the county broker) at the TLS listener."""
        parts = urlsplit(plain)
        netloc = f"{parts.netloc.rpartition('@')[0]}@{LOOPBACK}:{self.port}"
        return urlunsplit(parts._replace(scheme="amqps", netloc=netloc, query=query))

    def verified(self, ca: Path) -> str:
        return f"cacertfile={ca}&verify=verify_peer&server_name_indication=localhost"


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    folder = Path(tempfile.mkdtemp(prefix="exgate-tls-"))
    folder.chmod(0o755)  # the brokers run as their own user
    try:
        files = make_authority().sign_server(folder / "county")
        stranger = make_authority("another CA").sign_server(folder / "stranger").ca
        yield Listener(free_ports(1)[0], files, stranger)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def brokers(listener: Listener) -> Iterator[dict[str, LocalBroker]]:
    """The county broker with a TLS listener beside its plain one, and the city's."""
    tls = {"listeners.ssl.default": f"{LOOPBACK}:{listener.port}",
           "ssl_options.cacertfile": str(listener.files.ca),
           "ssl_options.certfile": str(listener.files.certificate),
           "ssl_options.keyfile": str(listener.files.key),
           "ssl_options.verify": "verify_none",
           "ssl_options.fail_if_no_peer_cert": "false"}
    with started_brokers({COUNTY: tls, CITY: None}) as started:
        yield started


@pytest.fixture
def levels(brokers: dict[str, LocalBroker]) -> Iterator[dict[str, Level]]:
    with fresh_levels(brokers) as made:
        yield made


def connections_of(level: Level, user: str) -> list[dict[str, object]]:
    return [c for c in level.api.get("connections?columns=user,ssl,ssl_protocol,peer_port")
            or [] if c.get("user") == user]


def user_of(url: str) -> str:
    return str(urlsplit(url).username)


@pytest.mark.parametrize("via", ["federation", "shovel"])
def test_a_link_over_tls_checks_the_upstream_and_brings_its_batches_up(
        levels: dict[str, Level], listener: Listener, tmp_path: Path, via: str) -> None:
    county, city = levels[COUNTY], levels[CITY]
    login = county.link_login("up")
    upstream = listener.url(login, listener.verified(listener.files.ca))
    result = link_up(city.api, upstream, COUNTY, via=via, vhost=city.vhost, reconnect_delay=1)
    assert result.tls == "verified" and "cacertfile=" in result.upstream
    wait_running(city.api, result, city.vhost)
    wait_for("the link's connection in the county broker's list",
             lambda: connections_of(county, user_of(login)))
    assert all(c["ssl"] and c["ssl_protocol"] for c in connections_of(county, user_of(login)))

    node = provision_node(county, tmp_path)
    # The node publishes over TLS as well, its CA given in pika's form (the agent's): the
    # listener's port speaks nothing else.
    ssl_options = f"ssl_options={{'ca_certs':'{listener.files.ca}','server_hostname':'localhost'}}"
    node = replace(node, url=listener.url(node.url, quote(ssl_options, safe="=")))
    publish(node, tmp_path, BATCHES, PER_BATCH)

    wait_for(f"{BATCHES} batches in the city's queue",
             lambda: city.message_count(level_queue(CITY)) >= BATCHES)
    assert county.message_count(level_queue(COUNTY)) == BATCHES
    assert city.message_count(level_queue(CITY)) == BATCHES


def test_a_federation_link_given_another_ca_never_runs(
        levels: dict[str, Level], listener: Listener) -> None:
    county, city = levels[COUNTY], levels[CITY]
    upstream = listener.url(county.link_login("up"), listener.verified(listener.stranger_ca))
    result = link_up(city.api, upstream, COUNTY, vhost=city.vhost, reconnect_delay=1)

    def refused_by_name() -> list[str]:
        states = link_states(city.api, city.vhost)
        return [state for name, state in states.items() if name.startswith(result.names[0])]

    # The client side refuses the certificate, each attempt: the link checks whom it talks
    # to. (Between attempts a link shows "starting": waited out, never taken for running.)
    wait_for("both intake links to fail on the certificate",
             lambda: len(states := refused_by_name()) == 2
             and all("unknown_ca" in state for state in states))
    assert not any(state == "running" for state in refused_by_name())


def test_a_shovel_given_another_ca_declares_nothing(
        levels: dict[str, Level], listener: Listener) -> None:
    county, city = levels[COUNTY], levels[CITY]
    upstream = listener.url(county.link_login("up"), listener.verified(listener.stranger_ca))
    with pytest.raises(BrokerUnavailable) as refused:
        link_up(city.api, upstream, COUNTY, via="shovel", vhost=city.vhost)
    assert "certificate was not accepted" in str(refused.value)
    assert "cacertfile= for a link between brokers" in str(refused.value)  # the hint fits
    vhost = quote(city.vhost, safe="")
    assert city.api.get(f"parameters/shovel/{vhost}") == []
    queues = [q["name"] for q in county.api.get(f"queues/{quote(county.vhost, safe='')}") or []]
    assert not any(str(name).startswith("exgate.uplink.") for name in queues)

"""Three levels on three brokers, linked by ``gateway.federation``: county → city → province.

Three private RabbitMQ nodes (county 430102, city 430100, province 430000) are
started in parallel once for the module; each test works in a fresh vhost on all
three. A county node publishes sealed batches with the real publisher to its county
broker only; the links are declared with the command's functions and least-privilege
link users; each level's gateway drains its own broker into its own SQLite store.
The tests check that every record reaches all three stores exactly once, that nothing
is refused (``user_id`` and routing keys survive the links), that heartbeats come up,
that the receipts of all three levels reach the node's queue on the county broker, and
that a county broker's administrator cannot speak for another county (nor can a link of
the old shape, which is replaced when the link is run again).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pytest
import sqlalchemy as sa

from adapters.amqp.topology import level_queue, receipts_queue, status_queue
from adapters.stores.sql import SqlStore
from gateway.broker_node import LocalBroker
from gateway.federation import (
    LinkResult,
    grant_link_user,
    link_down,
    link_up,
    max_hops_for,
    wait_running,
)
from gateway.federation_command import run_link
from gateway.federation_objects import intake_exchange
from gateway.run import run_gateway
from schemas.errors import ConfigError
from tests.integration.amqp_helpers import Node, wait_for
from tests.integration.levels import (
    Level,
    fresh_levels,
    provision_node,
    publish,
    started_brokers,
)
from tests.servers import fresh_name

COUNTY, CITY, PROVINCE = "430102", "430100", "430000"
LEVELS = (COUNTY, CITY, PROVINCE)
BATCHES, PER_BATCH = 6, 25


@pytest.fixture(scope="module")
def brokers() -> Iterator[dict[str, LocalBroker]]:
    """One private node per level; stopped by PID afterwards."""
    with started_brokers(dict.fromkeys(LEVELS)) as started:
        yield started


@pytest.fixture
def levels(brokers: dict[str, LocalBroker]) -> Iterator[dict[str, Level]]:
    """A fresh vhost on each broker, with that level's exchanges and queues."""
    with fresh_levels(brokers) as made:
        yield made


def link_all(levels: dict[str, Level], via: str) -> list[tuple[Level, LinkResult]]:
    """Records up county → city → province, receipts down province → city → county."""
    county, city, province = (levels[d] for d in LEVELS)
    done = [
        (city, link_up(city.api, county.link_login("up"), COUNTY, via=via,
                       vhost=city.vhost, reconnect_delay=1)),
        (province, link_up(province.api, city.link_login("up"), CITY, via=via,
                           vhost=province.vhost, reconnect_delay=1)),
        (county, link_down(county.api, city.link_login("down"), CITY, vhost=county.vhost,
                           reconnect_delay=1)),
        (city, link_down(city.api, province.link_login("down"), PROVINCE,
                         vhost=city.vhost, reconnect_delay=1)),
    ]
    for level, result in done:
        wait_running(level.api, result, level.vhost)
    return done


def run_gateways(levels: dict[str, Level], tmp_path: Path, registry: Path) -> dict[str, Path]:
    stores, threads, codes = {}, [], []
    for division, level in levels.items():
        stores[division] = tmp_path / f"store-{division}.db"
        config = tmp_path / f"gateway-{division}.toml"
        config.write_text(
            f'[level]\ndivision = "{division}"\n[broker]\nurl = "{level.url()}"\n'
            f'[store]\nurl = "sqlite:///{stores[division]}"\n'
            f'[registry]\npath = "{registry}"\n'
            "[gateway]\nworkers = 2\ndrain_idle_seconds = 1.0\n")
        threads.append(threading.Thread(
            target=lambda c=config: codes.append(run_gateway(c, drain=True))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert codes == [0, 0, 0]
    return stores


def store_counts(path: Path) -> dict[str, int]:
    store = SqlStore(f"sqlite:///{path}")
    try:
        schema = store.schema
        tables = {"records": schema.elements["SBXX"].table, "batches": schema.batch,
                  "failed": schema.failed, "heartbeats": schema.heartbeat}
        with store.engine.connect() as conn:
            return {name: int(conn.execute(sa.select(sa.func.count()).select_from(t))
                              .scalar_one()) for name, t in tables.items()}
    finally:
        store.close()


def node_receipts(county: Level, node: Node) -> list[tuple[str, str, str]]:
    import json

    got = []
    connection = pika.BlockingConnection(pika.URLParameters(node.url))  # the node's login
    try:
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get(receipts_queue(node.node_id), auto_ack=True)
            if method is None:
                return got
            receipt = json.loads(body)
            got.append((receipt["batch_id"], receipt["level"], receipt["status"]))
    finally:
        connection.close()


@pytest.mark.parametrize("via", ["federation", "shovel"])
def test_a_county_batch_reaches_all_three_levels_once_and_every_receipt_comes_back(
        levels: dict[str, Level], tmp_path: Path, via: str) -> None:
    county = levels[COUNTY]
    link_all(levels, via)
    node = provision_node(county, tmp_path)
    batch_ids = publish(node, tmp_path, BATCHES, PER_BATCH)

    # Every level queue holds each batch exactly once before any gateway runs.
    for division, level in levels.items():
        wait_for(f"{BATCHES} batches in {level_queue(division)}",
                 lambda lv=level, d=division: lv.message_count(level_queue(d)) >= BATCHES)
        wait_for(f"a heartbeat in {status_queue(division)}",
                 lambda lv=level, d=division: lv.message_count(status_queue(d)) >= 1)
    time.sleep(1.0)  # a duplicate, if the links made one, would have arrived by now
    assert {d: lv.message_count(level_queue(d)) for d, lv in levels.items()} == \
        dict.fromkeys(LEVELS, BATCHES)

    stores = run_gateways(levels, tmp_path, tmp_path / "registry")
    for division in LEVELS:
        counts = store_counts(stores[division])
        assert counts == {"records": BATCHES * PER_BATCH, "batches": BATCHES, "failed": 0,
                          "heartbeats": counts["heartbeats"]}, (division, counts)
        assert counts["heartbeats"] >= 1, division

    expected = {(b, lv, "stored") for b in batch_ids for lv in ("county", "city", "province")}
    wait_for("receipts of all three levels on the county broker",
             lambda: county.message_count(receipts_queue(node.node_id)) >= len(expected))
    time.sleep(0.5)
    receipts = node_receipts(county, node)
    assert sorted(receipts) == sorted(expected)  # each once: none lost, none doubled


def test_links_are_idempotent_and_refuse_the_wrong_direction(levels: dict[str, Level]) -> None:
    county, city, province = (levels[d] for d in LEVELS)
    first = link_up(city.api, county.url(), COUNTY, vhost=city.vhost)
    again = link_up(city.api, county.url(), COUNTY, vhost=city.vhost)
    assert first == again and first.max_hops == max_hops_for(COUNTY) == 1
    vhost = quote(city.vhost, safe="")
    sets = {s["name"]: s["value"] for s in
            city.api.get(f"parameters/federation-upstream-set/{vhost}")}
    assert sets == {f"exgate-up-{COUNTY}-{kind}": [{"upstream": f"exgate-up-{COUNTY}",
                                                    "exchange": f"exgate.{kind}"}]
                    for kind in ("records", "status")}
    policies = {p["name"]: (p["pattern"], p["definition"]) for p in
                city.api.get(f"policies/{vhost}")}
    assert policies == {
        f"exgate-up-{COUNTY}-{kind}": (
            f"^(exgate\\.{kind}\\.from\\.{COUNTY})$",
            {"federation-upstream-set": f"exgate-up-{COUNTY}-{kind}"})
        for kind in ("records", "status")}
    for kind in ("records", "status"):
        intake = intake_exchange(f"exgate.{kind}", COUNTY)
        bindings = city.api.get(f"exchanges/{vhost}/{quote(intake, safe='')}"
                                "/bindings/source")
        assert [(b["destination"], b["routing_key"]) for b in bindings] == \
            [(f"exgate.{kind}", "430000.430100.430102.#")]
    assert max_hops_for(CITY) == 2 and max_hops_for(PROVINCE) == 1
    with pytest.raises(ConfigError, match="wrong way"):
        link_up(county.api, city.url(), CITY, vhost=county.vhost)  # records going down
    with pytest.raises(ConfigError, match="wrong way"):
        link_down(province.api, city.url(), CITY, vhost=province.vhost)  # receipts going up
    assert county.broker.admin_password not in repr(first)


def test_the_command_links_and_never_prints_the_password(
        levels: dict[str, Level], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    county, city = levels[COUNTY], levels[CITY]
    user, password = fresh_name("link"), secrets.token_urlsafe(12)
    grant_link_user(county.api, user, password, direction="up", vhost=county.vhost)
    monkeypatch.setenv("EXGATE_UPSTREAM_PASSWORD", password)
    admin = (f"http://{city.broker.admin_user}:{city.broker.admin_password}@"
             f"{(city.broker.management_url or '').removeprefix('http://')}")
    code = run_link(upstream=county.url(user, "").replace(":@", "@"), division=COUNTY,
                    via="shovel", admin_url=admin, vhost=city.vhost, lang="en")
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert "linked up (shovel)" in out and password not in out
    shovels = city.api.get(f"parameters/shovel/{quote(city.vhost, safe='')}")
    assert {s["name"] for s in shovels} == {f"exgate-up-{COUNTY}-records",
                                           f"exgate-up-{COUNTY}-status"}
    assert all(s["value"]["ack-mode"] == "on-confirm" for s in shovels)
    assert run_link(upstream="http://nowhere", division=COUNTY, admin_url=admin,
                    vhost=city.vhost, lang="en") == 2


@pytest.mark.parametrize("upstream", ["wrong password", "unreachable"])
def test_a_link_that_cannot_run_exits_1_and_stays_declared(
        levels: dict[str, Level], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, upstream: str) -> None:
    county, city = levels[COUNTY], levels[CITY]
    user = fresh_name("link")
    grant_link_user(county.api, user, secrets.token_urlsafe(12), direction="up",
                    vhost=county.vhost)
    url = county.url(user, "").replace(":@", "@")
    if upstream == "unreachable":
        url = url.replace(f":{county.broker.ports.amqp}/", ":1/")
    monkeypatch.setenv("EXGATE_UPSTREAM_PASSWORD", "wrong-password")
    admin = (f"http://{city.broker.admin_user}:{city.broker.admin_password}@"
             f"{(city.broker.management_url or '').removeprefix('http://')}")
    reason = "auth_failure" if upstream == "wrong password" else "econnrefused"
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while True:
        code = run_link(upstream=url, division=COUNTY, admin_url=admin, vhost=city.vhost,
                        lang="en", wait=5)
        out, err = capsys.readouterr()
        assert code == 1 and "linked up" not in out
        assert "not running" in err and "wrong-password" not in err
        if reason in err:
            break
        # The states were read before the link's first failure showed (links not made
        # yet on a slow broker) or while it was starting again after its reconnect
        # delay. Declaring the same link again is idempotent: ask once more.
        assert time.monotonic() < deadline, err
    upstreams = city.api.get(f"parameters/federation-upstream/{quote(city.vhost, safe='')}")
    assert [u["name"] for u in upstreams] == [f"exgate-up-{COUNTY}"]  # it keeps retrying
    monkeypatch.delenv("EXGATE_UPSTREAM_PASSWORD")
    assert run_link(upstream=url, division=COUNTY, admin_url=admin, vhost=city.vhost,
                    lang="en", wait=5) == 2


# -- a lower broker speaks for its own division only ---------------------------------------

FORGER = "exgate-node-nodeC"  # a node of county 430103, forged on the county 430102 broker
OWN_KEY = "430000.430100.430102.furong-01"
FORGED_KEYS = ("430000.430100.430103.nodeC",   # a neighbouring county of the same city
               "430000.430200.430202.nodeD")   # a county of another city


def forge_on(county: Level) -> None:
    """What the county broker's administrator can do: make a user named like another
    county's node, bind every link queue on the county broker to everything, and
    publish that node's heartbeat and batch (``user_id`` and routing key), then one of
    its own county's. On each link queue the forged messages are ahead of the own one."""
    vhost = quote(county.vhost, safe="")
    password = secrets.token_urlsafe(12)
    county.api.put(f"users/{FORGER}", {"password": password, "tags": ""})
    county.api.put(f"permissions/{vhost}/{FORGER}",
                   {"configure": "", "write": ".*", "read": ""})
    bound = []
    for queue in county.api.get(f"queues/{vhost}?columns=name"):
        name = str(queue["name"])
        for kind in ("records", "status"):
            if name.startswith((f"federation: exgate.{kind} ", f"exgate.uplink.{kind}.")):
                county.api.post(f"bindings/{vhost}/e/exgate.{kind}/q/{quote(name, safe='')}",
                                {"routing_key": "#", "arguments": {}})
                bound.append(kind)
    # The city's link has one queue of each kind here; without them nothing is forged.
    assert sorted(bound) == ["records", "status"], bound
    connection = pika.BlockingConnection(pika.URLParameters(county.url(FORGER, password)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for key, what in [*((k, "FORGED") for k in FORGED_KEYS), (OWN_KEY, "OWN")]:
            for exchange in ("exgate.status", "exgate.records"):
                channel.basic_publish(exchange, key, f"{what} {key}".encode(),
                                      pika.BasicProperties(user_id=FORGER, message_id=what))
    finally:
        connection.close()


def wait_for_own(level: Level, queue: str, timeout: float = 60.0) -> list[tuple[str, str]]:
    """``(message_id, routing key)`` of what ``queue`` got, once the own message is in."""
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    connection = pika.BlockingConnection(pika.URLParameters(level.url()))
    try:
        channel = connection.channel()
        while True:
            method, properties, _ = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                assert properties.user_id == FORGER  # trust-user-id kept it
                got.append((str(properties.message_id), str(method.routing_key)))
                continue
            if ("OWN", OWN_KEY) in got:
                return got
            assert time.monotonic() < deadline, f"timed out waiting for {OWN_KEY} in {queue}"
            time.sleep(0.2)
    finally:
        connection.close()


def assert_only_own_division_came_up(levels: dict[str, Level]) -> None:
    for division in (CITY, PROVINCE):
        level = levels[division]
        for queue in (level_queue(division), status_queue(division)):
            got = wait_for_own(level, queue)
            assert {key for what, key in got if what == "FORGED"} == set(), (queue, got)


@pytest.mark.parametrize("via", ["federation", "shovel"])
def test_a_county_broker_cannot_speak_for_another_county(
        levels: dict[str, Level], via: str) -> None:
    county, city, province = (levels[d] for d in LEVELS)
    for level, result in [
            (city, link_up(city.api, county.link_login("up"), COUNTY, via=via,
                           vhost=city.vhost, reconnect_delay=1)),
            (province, link_up(province.api, city.link_login("up"), CITY, via=via,
                               vhost=province.vhost, reconnect_delay=1))]:
        wait_running(level.api, result, level.vhost)
    forge_on(county)
    assert_only_own_division_came_up(levels)


def test_a_link_of_the_old_shape_is_replaced_not_left_pulling_everything(
        levels: dict[str, Level]) -> None:
    """Earlier versions federated ``exgate.records`` and ``exgate.status`` themselves
    (set ``exgate-up``, policy ``exgate-federate-up``). Linking again moves each of that
    set's upstreams to intakes, the one re-run and the others alike, and drops the rest."""
    county, city, province = (levels[d] for d in LEVELS)
    vhost = quote(city.vhost, safe="")
    old = {f"exgate-up-{COUNTY}": county.link_login("up"),
           "exgate-up-430104": county.url().replace(f":{county.broker.ports.amqp}/", ":1/")}
    for name, uri in old.items():
        city.api.put(f"parameters/federation-upstream/{vhost}/{name}", {"value": {
            "uri": uri, "ack-mode": "on-confirm", "trust-user-id": True, "max-hops": 1,
            "reconnect-delay": 1}})
    city.api.put(f"parameters/federation-upstream-set/{vhost}/exgate-up",
                 {"value": [{"upstream": name} for name in old]})
    city.api.put(f"policies/{vhost}/exgate-federate-up", {
        "pattern": "^(exgate\\.records|exgate\\.status)$", "apply-to": "exchanges",
        "priority": 10, "definition": {"federation-upstream-set": "exgate-up"}})
    def old_links() -> dict[str, str]:
        return {str(link["exchange"]): str(link["status"])
                for link in city.api.get(f"federation-links/{vhost}")
                if link["upstream"] == f"exgate-up-{COUNTY}"}

    wait_for("the old links to run", lambda: old_links() == {
        "exgate.records": "running", "exgate.status": "running"})

    done = link_up(city.api, county.link_login("up"), COUNTY, vhost=city.vhost,
                   reconnect_delay=1)
    wait_running(city.api, done, city.vhost)
    policies = {p["name"] for p in city.api.get(f"policies/{vhost}")}
    assert policies == {f"exgate-up-{d}-{kind}" for d in (COUNTY, "430104")
                        for kind in ("records", "status")}
    sets = {s["name"] for s in city.api.get(f"parameters/federation-upstream-set/{vhost}")}
    assert sets == policies  # "exgate-up" is gone
    wait_for("no link on exgate.records or exgate.status", lambda: not [
        link for link in city.api.get(f"federation-links/{vhost}")
        if link.get("exchange") in ("exgate.records", "exgate.status")])

    province_link = link_up(province.api, city.link_login("up"), CITY,
                            vhost=province.vhost, reconnect_delay=1)
    wait_running(province.api, province_link, province.vhost)
    forge_on(county)
    assert_only_own_division_came_up(levels)

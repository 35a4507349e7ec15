"""``exgate gateway user`` against a real RabbitMQ: the level's gateway runs with the user
it makes, which the broker refuses everything else."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions as px
import pytest
from click.testing import CliRunner
from pika.adapters.blocking_connection import BlockingChannel

from adapters.amqp.topology import (
    DEAD_EXCHANGE,
    RECORDS_EXCHANGE,
    STATUS_EXCHANGE,
    binding_key,
    dead_queue,
    level_queue,
    receipts_queue,
    routing_key,
    status_queue,
)
from adapters.sealing import load_broker_login, load_node_keys
from adapters.stores.sql import SqlStore
from cli import main
from frontend_machine.envelope import NodeIdentity, build_envelope
from gateway.broker_node import LocalBroker
from gateway.demo_world import gateway_config
from gateway.mgmt_api import ManagementApi
from schemas.writer import record_xml
from tests.integration.amqp_helpers import (
    declare_levels,
    delete_user,
    drain_gateway,
    drain_queue,
    provision,
    sb_record,
    vhost_of,
)

USER = "exgate-gw-430100"


@dataclass
class Login:
    url: str  # as printed for the gateway config: no password
    password_file: Path
    full_url: str  # with the password, for pika


def make_user(broker: LocalBroker, vhost: str, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [
        "gateway", "user", "430100", "--password-file", str(out), "--broker-base",
        str(broker.base_dir), "--vhost", vhost, "--lang", "en", *extra])
    return result.exit_code, result.output


@pytest.fixture
def login(rabbitmq_server: LocalBroker, amqp_url: str, tmp_path: Path) -> Iterator[Login]:
    declare_levels(amqp_url)  # 430000, 430100, 430102
    vhost = vhost_of(amqp_url)
    out = tmp_path / "secrets" / "gw.password"
    code, output = make_user(rabbitmq_server, vhost, out)
    assert code == 0, output
    password = out.read_text(encoding="utf-8")
    assert password.count("\n") == 1 and password.strip() not in output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    printed = re.search(r'^url = "(.*)"$', output, re.MULTILINE)
    assert printed is not None and f'password_file = "{out}"' in output
    yield Login(printed.group(1), out,
                rabbitmq_server.amqp_url(USER, password.strip(), vhost))
    delete_user(rabbitmq_server, USER)


def test_a_gateway_with_its_own_user_stores_a_batch_and_the_node_gets_its_receipt(
        rabbitmq_server: LocalBroker, amqp_url: str, login: Login, tmp_path: Path) -> None:
    node = provision(rabbitmq_server, vhost_of(amqp_url), tmp_path, "furong-01")
    try:
        broker_login = load_broker_login(node.key_file)
        assert broker_login is not None
        identity = NodeIdentity("furong-01", "430102", broker_login.user,
                                load_node_keys(node.key_file))
        envelope = build_envelope("B1", [record_xml(sb_record(1))], identity)
        connection = pika.BlockingConnection(pika.URLParameters(node.url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(RECORDS_EXCHANGE, routing_key("430102", "furong-01"),
                                  envelope.body, envelope.properties, mandatory=True)
        finally:
            connection.close()
        config = gateway_config(tmp_path / "gw" / "gateway.toml", "430100",
                                broker_url=login.url, password_file=login.password_file,
                                store_url="sqlite:///store.db", registry=node.registry.path)
        drain_gateway(config)
        store = SqlStore(f"sqlite:///{tmp_path / 'gw' / 'store.db'}")
        try:
            assert store.batch_state("B1") == "stored"
        finally:
            store.close()
        receipts = [json.loads(body)
                    for _, _, body in drain_queue(node.url, receipts_queue("furong-01"))]
        assert [(r["batch_id"], r["status"], r["level"]) for r in receipts] == \
            [("B1", "stored", "city")]
    finally:
        delete_user(rabbitmq_server, "exgate-node-furong-01")


def _publish(exchange: str, key: str) -> Callable[[BlockingChannel], object]:
    return lambda channel: channel.basic_publish(exchange, key, b"x")


@pytest.mark.parametrize("attempt", [
    pytest.param(_publish(RECORDS_EXCHANGE, "430000.430100.430102.furong-01"), id="records"),
    pytest.param(_publish(STATUS_EXCHANGE, "430000.430100.430102.furong-01"), id="status"),
    pytest.param(_publish(DEAD_EXCHANGE, level_queue("430100")), id="dead"),
    pytest.param(_publish(DEAD_EXCHANGE, ""), id="dead-empty-key"),
    pytest.param(_publish("", level_queue("430100")), id="default-exchange"),
    pytest.param(lambda ch: ch.basic_get(level_queue("430000")), id="get-province"),
    pytest.param(lambda ch: ch.basic_consume(level_queue("430102"), lambda *a: None),
                 id="consume-county"),
    pytest.param(lambda ch: ch.basic_get(dead_queue("430000")), id="get-province-dead"),
    pytest.param(lambda ch: ch.basic_get(receipts_queue("furong-01")), id="get-receipts"),
    pytest.param(lambda ch: ch.queue_bind(level_queue("430100"), RECORDS_EXCHANGE, "#"),
                 id="bind-all-records"),
    pytest.param(lambda ch: ch.queue_bind(status_queue("430100"), STATUS_EXCHANGE,
                                          binding_key("430000")), id="bind-province-status"),
    pytest.param(lambda ch: ch.queue_declare("exgate.level.4301001", durable=True),
                 id="declare-other-queue"),
    pytest.param(lambda ch: ch.exchange_delete(RECORDS_EXCHANGE), id="delete-records"),
    pytest.param(lambda ch: ch.exchange_declare(RECORDS_EXCHANGE, "topic", durable=True),
                 id="declare-records"),
])
def test_the_broker_refuses_the_gateway_user_everything_else(
        login: Login, amqp_url: str, attempt: Callable[[BlockingChannel], object]) -> None:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as admin:
        admin.channel().queue_declare(receipts_queue("furong-01"), durable=True)
    connection = pika.BlockingConnection(pika.URLParameters(login.full_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(px.ChannelClosedByBroker) as refused:
            attempt(channel)
        assert refused.value.reply_code == 403
        # The same connection still consumes its own level: only the attempt was refused.
        channel = connection.channel()
        channel.basic_get(level_queue("430100"))
    finally:
        connection.close()


def test_the_gateway_user_recreates_its_levels_queues(rabbitmq_server: LocalBroker,
                                                      login: Login, amqp_url: str,
                                                      tmp_path: Path) -> None:
    """A broker that lost the level's queues: the gateway declares them again itself
    (the level queue's dead-letter exchange needs write on exgate.dead), finding the
    exchanges, on which it has no configure permission, where they are."""
    api = ManagementApi.from_broker(rabbitmq_server)
    vhost = quote(vhost_of(amqp_url), safe="")
    for queue in (level_queue("430100"), status_queue("430100"), dead_queue("430100")):
        api.delete(f"queues/{vhost}/{queue}")
    (tmp_path / "registry").mkdir()
    drain_gateway(gateway_config(tmp_path / "gateway.toml", "430100", broker_url=login.url,
                                 password_file=login.password_file,
                                 store_url="sqlite:///store.db",
                                 registry=tmp_path / "registry"))
    queue = api.get(f"queues/{vhost}/{level_queue('430100')}")
    assert queue["arguments"]["x-dead-letter-exchange"] == DEAD_EXCHANGE
    bound = api.get(f"queues/{vhost}/{level_queue('430100')}/bindings")
    assert {(b["source"], b["routing_key"]) for b in bound if b["source"]} == \
        {(RECORDS_EXCHANGE, binding_key("430100"))}


def test_running_again_gives_a_new_password_and_never_overwrites_a_file(
        rabbitmq_server: LocalBroker, login: Login, amqp_url: str, tmp_path: Path) -> None:
    vhost = vhost_of(amqp_url)
    before = login.password_file.read_bytes()
    code, output = make_user(rabbitmq_server, vhost, login.password_file)
    assert code == 2 and "already exists" in output
    assert login.password_file.read_bytes() == before
    pika.BlockingConnection(pika.URLParameters(login.full_url)).close()  # still logs in

    again = tmp_path / "secrets" / "gw-2.password"
    code, output = make_user(rabbitmq_server, vhost, again)
    assert code == 0 and "already existed" in output, output
    with pytest.raises(px.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(login.full_url))
    password = again.read_text(encoding="utf-8").strip()
    pika.BlockingConnection(pika.URLParameters(
        rabbitmq_server.amqp_url(USER, password, vhost))).close()

    # Another level's gateway user (or an administrator) is never taken over.
    code, output = make_user(rabbitmq_server, vhost, tmp_path / "x.password",
                             "--user", rabbitmq_server.admin_user)
    assert code == 2 and "tags (administrator)" in output
    assert not (tmp_path / "x.password").exists()


def test_a_user_of_another_virtual_host_is_never_taken_over(
        rabbitmq_server: LocalBroker, login: Login, amqp_url: str, tmp_path: Path) -> None:
    """Its password would change, locking out whoever uses it there, and it would keep
    its rights there: the command refuses it, and changes nothing."""
    api = ManagementApi.from_broker(rabbitmq_server)
    other = f"{vhost_of(amqp_url)}-other"
    api.put(f"vhosts/{quote(other, safe='')}", {})
    try:
        api.put("users/appuser", {"password": "app-pw", "tags": ""})
        api.put(f"permissions/{quote(other, safe='')}/appuser",
                {"configure": ".*", "write": ".*", "read": ".*"})
        code, output = make_user(rabbitmq_server, vhost_of(amqp_url),
                                 tmp_path / "app.password", "--user", "appuser")
        assert code == 2 and f"permissions in another virtual host ({other})" in output
        pika.BlockingConnection(pika.URLParameters(
            rabbitmq_server.amqp_url("appuser", "app-pw", other))).close()  # unchanged
        assert not (tmp_path / "app.password").exists()
        # A virtual host that is not there is named before anything changes.
        code, output = make_user(rabbitmq_server, f"{other}-typo", tmp_path / "gw2.password")
        assert code == 2 and "has no virtual host" in output
        pika.BlockingConnection(pika.URLParameters(login.full_url)).close()  # still logs in
    finally:
        delete_user(rabbitmq_server, "appuser")
        api.delete(f"vhosts/{quote(other, safe='')}")

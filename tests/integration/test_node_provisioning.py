"""Provisioning against a real RabbitMQ: what a node's broker user may and may not do."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions as px
import pytest
from click.testing import CliRunner

from adapters.amqp.topology import RECORDS_EXCHANGE, STATUS_EXCHANGE
from adapters.sealing import load_broker_login, load_node_keys
from cli import main
from gateway.broker_node import LocalBroker
from gateway.mgmt_api import ManagementApi
from gateway.provisioning import disable_node, enable_node
from schemas.errors import ConfigError
from tests.integration.amqp_helpers import (
    Node,
    declare_levels,
    delete_user,
    provision,
    vhost_of,
)

KEY = "430000.430100.430102.furong-01"


@pytest.fixture
def api(rabbitmq_server: LocalBroker) -> ManagementApi:
    return ManagementApi.from_broker(rabbitmq_server)


@pytest.fixture
def node(rabbitmq_server: LocalBroker, amqp_url: str, tmp_path: Path) -> Iterator[Node]:
    declare_levels(amqp_url)
    yield provision(rabbitmq_server, vhost_of(amqp_url), tmp_path, "furong-01")
    delete_user(rabbitmq_server, "exgate-node-furong-01")


def _publish(url: str, exchange: str, key: str, user_id: str | None = None) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, key, b"x", pika.BasicProperties(user_id=user_id))
    finally:
        if connection.is_open:
            connection.close()


def test_add_node_writes_registry_credentials_and_permissions(
        node: Node, api: ManagementApi, amqp_url: str) -> None:
    entry = node.registry.get("furong-01")
    assert entry is not None and entry.active and entry.broker_user == "exgate-node-furong-01"
    assert stat.S_IMODE(node.key_file.stat().st_mode) == 0o600
    assert load_node_keys(node.key_file).key_version == 1
    vhost = quote(vhost_of(amqp_url), safe="")
    perms = api.get(f"permissions/{vhost}/exgate-node-furong-01")
    assert (perms["configure"], perms["write"], perms["read"]) == (
        r"^exgate\.receipts\.furong\-01$", r"^exgate\.(records|status)$",
        r"^exgate\.receipts\.furong\-01$")
    topic = {p["exchange"]: p["write"]
             for p in api.get(f"topic-permissions/{vhost}/exgate-node-furong-01")}
    expected = r"^430000\.430100\.430102\.furong\-01$"
    assert topic == {RECORDS_EXCHANGE: expected, STATUS_EXCHANGE: expected}
    queue = api.get(f"queues/{vhost}/exgate.receipts.furong-01")
    assert queue["type"] == "quorum" and queue["durable"]


def test_node_publishes_with_its_own_key_only(node: Node) -> None:
    user = "exgate-node-furong-01"
    _publish(node.url, RECORDS_EXCHANGE, KEY, user)
    _publish(node.url, STATUS_EXCHANGE, KEY, user)
    for key in ("430000.430100.430102.furong-02", "430000.430100.430103.furong-01",
                "430000.#", KEY + ".x"):
        with pytest.raises(px.ChannelClosedByBroker) as refused:
            _publish(node.url, RECORDS_EXCHANGE, key, user)
        assert refused.value.reply_code == 403
    with pytest.raises(px.ChannelClosedByBroker) as refused:
        _publish(node.url, "exgate.dead", KEY, user)
    assert refused.value.reply_code == 403


def test_user_id_must_be_the_nodes_own(node: Node) -> None:
    with pytest.raises(px.ChannelClosedByBroker) as refused:
        _publish(node.url, RECORDS_EXCHANGE, KEY, "exgate-node-furong-02")
    assert refused.value.reply_code == 406


def test_node_reads_only_its_own_receipts(rabbitmq_server: LocalBroker, node: Node,
                                          amqp_url: str, tmp_path: Path) -> None:
    other = provision(rabbitmq_server, vhost_of(amqp_url), tmp_path / "o", "furong-02")
    try:
        connection = pika.BlockingConnection(pika.URLParameters(node.url))
        try:
            channel = connection.channel()
            channel.basic_get("exgate.receipts.furong-01")
            for queue in ("exgate.receipts.furong-02", "exgate.level.430102"):
                channel = connection.channel()
                with pytest.raises(px.ChannelClosedByBroker) as refused:
                    channel.basic_get(queue)
                assert refused.value.reply_code == 403
            channel = connection.channel()
            with pytest.raises(px.ChannelClosedByBroker):
                channel.queue_declare("exgate.mine", durable=True)
        finally:
            connection.close()
    finally:
        delete_user(rabbitmq_server, other.registry.get("furong-02").broker_user)


def test_disabled_node_can_no_longer_log_in(node: Node, api: ManagementApi,
                                           amqp_url: str) -> None:
    disable_node(api, node.registry, "furong-01", vhost=vhost_of(amqp_url))
    assert node.registry.verifier("furong-01", 1) is None
    with pytest.raises(px.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(node.url))


def test_an_enabled_node_logs_in_again_with_the_password_written_to_its_file(
        rabbitmq_server: LocalBroker, node: Node, api: ManagementApi, amqp_url: str) -> None:
    # Disabling replaced the node's password and nothing could undo it: its refused
    # batches could never be replayed without editing the registry and the broker by hand.
    vhost = vhost_of(amqp_url)
    disable_node(api, node.registry, "furong-01", vhost=vhost)
    before = load_broker_login(node.key_file)
    entry = enable_node(api, node.registry, "furong-01", node.key_file, vhost=vhost)
    assert entry.active and node.registry.verifier("furong-01", 1) is not None
    login = load_broker_login(node.key_file)
    assert login is not None and before is not None
    assert login.user == before.user and login.password != before.password
    assert load_node_keys(node.key_file).key_version == 1  # the keys stay
    assert stat.S_IMODE(node.key_file.stat().st_mode) == 0o600
    url = rabbitmq_server.amqp_url(login.user, login.password, vhost)
    _publish(url, RECORDS_EXCHANGE, KEY, login.user)  # permissions are back
    with pytest.raises(px.AMQPConnectionError):  # the password before is still refused
        pika.BlockingConnection(pika.URLParameters(node.url))


def test_cli_node_add_list_rotate_disable(rabbitmq_server: LocalBroker, amqp_url: str,
                                          tmp_path: Path) -> None:
    declare_levels(amqp_url)
    admin = (f"http://{rabbitmq_server.admin_user}:{quote(rabbitmq_server.admin_password)}"
             f"@127.0.0.1:{rabbitmq_server.ports.management}")
    registry, out = tmp_path / "reg", tmp_path / "n9.key"
    common = ["--registry", str(registry)]
    admin_args = ["--admin-url", admin, "--vhost", vhost_of(amqp_url)]
    runner = CliRunner()
    try:
        added = runner.invoke(main, ["node", "add", "n9", "--division", "430102", *common,
                                     *admin_args, "--out", str(out)])
        assert added.exit_code == 0, added.output
        assert "节点 n9 已开通" in added.output and "430000.430100.430102.n9" in added.output
        password = load_broker_login(out).password
        assert password not in added.output and rabbitmq_server.admin_password not in added.output
        again = runner.invoke(main, ["node", "add", "n9", "--division", "430102", *common,
                                     *admin_args, "--out", str(out), "--lang", "en"])
        assert again.exit_code == 2 and "already registered" in again.output
        listed = runner.invoke(main, ["node", "list", *common, "--lang", "en"])
        assert "n9\t430102\tactive\tkey version 1" in listed.output
        rotated = runner.invoke(main, ["node", "rotate-key", "n9", *common, "--out", str(out)])
        assert rotated.exit_code == 0, rotated.output
        assert load_node_keys(out).key_version == 2
        assert load_broker_login(out).password == password  # the login is kept
        disabled = runner.invoke(main, ["node", "disable", "n9", *common, *admin_args,
                                        "--lang", "en"])
        assert disabled.exit_code == 0 and "disabled" in disabled.output
        bad = runner.invoke(main, ["node", "add", "x", "--division", "43", *common,
                                   *admin_args])
        assert bad.exit_code == 2
    finally:
        delete_user(rabbitmq_server, "exgate-node-n9")


def test_cli_broker_status_of_an_empty_folder(tmp_path: Path) -> None:
    # A folder without a broker is a mistyped --base, not a stopped node.
    result = CliRunner().invoke(main, ["broker", "status", "--base", str(tmp_path / "b"),
                                       "--lang", "en"])
    assert result.exit_code == 2 and "no private broker in" in result.output


def test_cli_broker_status_of_a_stopped_broker(rabbitmq_server: LocalBroker,
                                               tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "exgate-broker.json").write_bytes(
        (rabbitmq_server.base_dir / "exgate-broker.json").read_bytes())
    result = CliRunner().invoke(main, ["broker", "status", "--base", str(stopped),
                                       "--lang", "en"])
    assert result.exit_code == 3 and "not running" in result.output


def test_the_admin_password_is_private_and_the_node_reads_it(
        rabbitmq_server: LocalBroker, api: ManagementApi) -> None:
    conf = rabbitmq_server.base_dir / "rabbitmq.conf"
    assert stat.S_IMODE(rabbitmq_server.base_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert api.get("whoami")["name"] == rabbitmq_server.admin_user  # the node read it
    assert api.get("federation-links/%2F") == []  # link states: plugins on by default


def test_node_add_refuses_an_existing_credentials_file(
        rabbitmq_server: LocalBroker, api: ManagementApi, amqp_url: str,
        tmp_path: Path) -> None:
    declare_levels(amqp_url)
    existing = tmp_path / "other.key"
    existing.write_text("another node's credentials\n")
    result = CliRunner().invoke(main, [
        "node", "add", "n8", "--division", "430102", "--registry", str(tmp_path / "reg"),
        "--broker-base", str(rabbitmq_server.base_dir), "--vhost", vhost_of(amqp_url),
        "--out", str(existing), "--lang", "en"])
    assert result.exit_code == 2 and "already exists" in result.output
    assert existing.read_text() == "another node's credentials\n"
    assert "exgate-node-n8" not in {u["name"] for u in api.get("users")}
    assert not (tmp_path / "reg").exists() or list((tmp_path / "reg").iterdir()) == []


def test_disable_on_another_broker_creates_no_user(node: Node, api: ManagementApi,
                                                    amqp_url: str) -> None:
    delete_user_later = "exgate-node-furong-01"
    api.delete(f"users/{delete_user_later}")  # as if this were another level's broker
    before = (node.registry.path / "furong-01.json").read_bytes()
    with pytest.raises(ConfigError, match="does not exist on the broker at"):
        disable_node(api, node.registry, "furong-01", vhost=vhost_of(amqp_url))
    assert delete_user_later not in {u["name"] for u in api.get("users")}
    assert (node.registry.path / "furong-01.json").read_bytes() == before

"""Smoke tests: the fixture servers really store, route and keep data."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
import sqlalchemy as sa
from pika.adapters.blocking_connection import BlockingChannel

from gateway.broker_node import LocalBroker
from schemas.errors import ConfigError
from tests.servers import fresh_name

# A CJK Extension B character takes 4 bytes in UTF-8: it fails on MySQL's 3-byte utf8.
TEXT = "电子监察 𠀀"


def _round_trip(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name VARCHAR(40))"))
            conn.execute(sa.text("INSERT INTO probe VALUES (1, :name)"), {"name": TEXT})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM probe WHERE id = 1")).scalar_one() == TEXT
    finally:
        engine.dispose()


def test_postgres_round_trip(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    _round_trip(pg_url)


def test_mariadb_round_trip(mariadb_url: str) -> None:
    assert mariadb_url.startswith("mysql+pymysql://")
    _round_trip(mariadb_url)


@pytest.fixture
def channel(amqp_url: str) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        connection.close()


def _declare_quorum(channel: BlockingChannel, name: str) -> None:
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})


def _publish(channel: BlockingChannel, queue: str, body: bytes) -> None:
    # With confirms on, basic_publish raises if the broker nacks or cannot route.
    channel.basic_publish(
        "",
        queue,
        body,
        mandatory=True,
        properties=pika.BasicProperties(delivery_mode=2, message_id="b-1"),
    )


def test_rabbitmq_quorum_publish_confirm_consume(channel: BlockingChannel) -> None:
    _declare_quorum(channel, "probe")
    _publish(channel, "probe", b"hello")
    for method, properties, body in channel.consume("probe", inactivity_timeout=30):
        assert method is not None, "no message within 30 s"
        channel.basic_ack(method.delivery_tag)
        assert (body, properties.message_id) == (b"hello", "b-1")
        break
    channel.cancel()


def test_fresh_vhost_per_test(channel: BlockingChannel) -> None:
    """The queue declared by the previous test lives in another vhost."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised:
        channel.queue_declare("probe", passive=True)
    assert raised.value.reply_code == 404


def test_status_and_ctl_from_another_instance(rabbitmq_server: LocalBroker, amqp_url: str) -> None:
    """As the CLI does: a second LocalBroker on the same folder reads the state file."""
    other = LocalBroker(rabbitmq_server.base_dir)
    status = other.status()
    assert status.running
    assert (status.pid, status.node_name, status.ports) == (
        rabbitmq_server.status().pid,
        rabbitmq_server.node_name,
        rabbitmq_server.ports,
    )
    vhost = amqp_url.rsplit("/", 1)[1]
    assert vhost in other.ctl("list_vhosts", "--silent").split()


def test_restart_keeps_persistent_message(rabbitmq_server: LocalBroker, amqp_url: str) -> None:
    queue = fresh_name("q")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        _declare_quorum(channel, queue)
        _publish(channel, queue, b"survives")
    finally:
        connection.close()
    pid_before = rabbitmq_server.status().pid

    rabbitmq_server.restart()

    assert rabbitmq_server.status().pid != pid_before
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        method, _, body = next(channel.consume(queue, auto_ack=True, inactivity_timeout=30))
        channel.cancel()
    finally:
        connection.close()
    assert method is not None, "the message did not come back within 30 s"
    assert body == b"survives"


def test_busy_port_is_a_config_error(
    rabbitmq_server: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    clash = LocalBroker(tmp_path_factory.mktemp("clash"), amqp_port=rabbitmq_server.ports.amqp)
    with pytest.raises(ConfigError, match=f"port {rabbitmq_server.ports.amqp}"):
        clash.start()

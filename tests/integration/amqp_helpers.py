"""Shared set-up for the publisher, provisioning and gateway tests: topology, nodes,
outboxes, and a bounded wait."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pika

from adapters.amqp.topology import declare_topology
from adapters.sealing import load_broker_login, load_node_keys
from adapters.sources.base import Chunk, Origin
from frontend_machine.envelope import NodeIdentity
from frontend_machine.link import LinkSettings
from frontend_machine.outbox import Outbox
from frontend_machine.publisher_settings import PublisherSettings
from gateway.broker_node import LocalBroker
from gateway.mgmt_api import ManagementApi
from gateway.provisioning import add_node
from gateway.registry import Registry
from gateway.run import run_gateway
from schemas.record_check import RecordCheck
from schemas.records import Record
from tests.unit.schemas.documents import record

LEVELS = ("430000", "430100", "430102")


def drain_gateway(config: Path) -> None:
    """``exgate gateway run --drain`` in a thread of its own (a hang guard of 120 s); it
    must end with exit code 0."""
    done: list[int] = []
    runner = threading.Thread(target=lambda: done.append(run_gateway(config, drain=True)),
                              daemon=True)  # a hung gateway must not keep pytest alive
    runner.start()
    runner.join(timeout=120)
    assert not runner.is_alive(), "the gateway did not drain within 120 s"
    assert done == [0]


def wait_for(what: str, condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; ``timeout`` is a hang guard, not a timing check."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path[1:]) or "/"


@contextlib.contextmanager
def admin_channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def declare_levels(url: str, levels: tuple[str, ...] = LEVELS) -> None:
    with admin_channel(url) as channel:
        declare_topology(channel, levels)


def drain_queue(url: str, queue: str) -> list[tuple[object, object, bytes]]:
    """Every message now in ``queue``, consumed."""
    got = []
    with admin_channel(url) as channel:
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append((method, properties, body))


@dataclass
class Node:
    node_id: str
    division: str
    key_file: Path
    url: str  # amqp URL with the node's own credentials
    registry: Registry

    def settings(self, *, node_id: str | None = None, broker_user: str | None = None,
                 backoff_max: float = 1.0, heartbeat_seconds: float = 30.0) -> PublisherSettings:
        """Publisher settings as the agent builds them; ``node_id`` / ``broker_user``
        override what the node claims to be (to test the broker's refusals)."""
        keys = load_node_keys(self.key_file)
        login = load_broker_login(self.key_file)
        assert login is not None
        identity = NodeIdentity(node_id or self.node_id, self.division,
                                broker_user or login.user, keys)
        return PublisherSettings(LinkSettings(self.url, self.node_id, heartbeat=10), identity,
                                 heartbeat_seconds=heartbeat_seconds, backoff_initial=0.1,
                                 backoff_max=backoff_max)


def provision(broker: LocalBroker, vhost: str, tmp_path: Path, node_id: str,
              division: str = "430102") -> Node:
    registry = Registry(tmp_path / "registry")
    key_file = tmp_path / f"{node_id}.key"
    add_node(lambda: ManagementApi.from_broker(broker), registry, node_id, division, key_file,
             vhost=vhost)
    login = load_broker_login(key_file)
    assert login is not None
    return Node(node_id, division, key_file, broker.amqp_url(login.user, login.password, vhost),
                registry)


def delete_user(broker: LocalBroker, user: str) -> None:
    ManagementApi.from_broker(broker).delete(f"users/{quote(user, safe='')}")


def sb_record(n: int) -> Record:
    element, fields = record("SBXX", SBLSH=f"SB{n:06d}")
    return Record(element, fields, (fields["SBLSH"],), 1, n)


def fill(outbox: Outbox, first: int, count: int, per_batch: int) -> list[str]:
    """Journal ``count`` records and seal them into batches of ``per_batch``."""
    checks = tuple((Origin("src", f"EX_SBXX#{n}", n), RecordCheck("SBXX", n, sb_record(n), ()))
                   for n in range(first, first + count))
    outbox.journal("src", Chunk(checks))
    return outbox.seal_batches(per_batch, 1 << 30, 0.0)

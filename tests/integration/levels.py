"""Levels on brokers of their own, for the tests of links between brokers: each level a
fresh vhost with its exchanges and queues, a node of the county, batches published."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika

from adapters.amqp.topology import declare_topology
from adapters.sealing import load_broker_login
from frontend_machine.outbox import Outbox
from frontend_machine.publisher import Publisher
from gateway.broker_node import LocalBroker
from gateway.federation import grant_link_user
from gateway.mgmt_api import HttpChannel, ManagementApi
from gateway.provisioning import add_node
from gateway.registry import Registry
from tests.integration.amqp_helpers import Node, fill
from tests.servers import fresh_name, install_sigterm_cleanup, start_broker, stop_broker

__all__ = ["Level", "fresh_levels", "provision_node", "publish", "started_brokers"]


@dataclass
class Level:
    division: str
    broker: LocalBroker
    api: ManagementApi
    vhost: str

    def url(self, user: str | None = None, password: str | None = None) -> str:
        return self.broker.amqp_url(user, password, self.vhost)

    def link_login(self, direction: str) -> str:
        """A fresh link user on this broker (the upstream side) and its URI."""
        user, password = fresh_name("link"), secrets.token_urlsafe(12)
        grant_link_user(self.api, user, password, direction=direction, vhost=self.vhost)
        return self.url(user, password)

    def message_count(self, queue: str) -> int:
        connection = pika.BlockingConnection(pika.URLParameters(self.url()))
        try:
            return int(connection.channel().queue_declare(queue, passive=True)
                       .method.message_count)
        finally:
            connection.close()


@contextmanager
def started_brokers(configs: Mapping[str, Mapping[str, str] | None]
                    ) -> Iterator[dict[str, LocalBroker]]:
    """One private node per division, started in parallel with its extra ``rabbitmq.conf``
    lines (the plugins reporting link states are among the defaults); stopped by PID
    afterwards, those that started when another did not as well."""
    install_sigterm_cleanup()
    with ThreadPoolExecutor(len(configs)) as pool:
        futures = [pool.submit(start_broker, extra) for extra in configs.values()]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        failed = [error for f in futures if (error := f.exception()) is not None]
        if failed:
            raise failed[0]
        yield dict(zip(configs, started, strict=True))
    finally:
        for broker in started:
            stop_broker(broker)


@contextmanager
def fresh_levels(brokers: Mapping[str, LocalBroker]) -> Iterator[dict[str, Level]]:
    """A fresh vhost on each broker (by division), with that level's exchanges and
    queues; deleted afterwards."""
    vhost = fresh_name("vh")
    made: dict[str, Level] = {}
    try:
        for division, broker in brokers.items():
            api = ManagementApi.from_broker(broker)
            api.put(f"vhosts/{quote(vhost, safe='')}", {})
            api.put(f"permissions/{quote(vhost, safe='')}/{quote(broker.admin_user, safe='')}",
                    {"configure": ".*", "write": ".*", "read": ".*"})
            declare_topology(HttpChannel(api, vhost), [division])
            made[division] = Level(division, broker, api, vhost)
        yield made
    finally:
        for level in made.values():
            level.api.delete(f"vhosts/{quote(vhost, safe='')}")


def provision_node(county: Level, tmp_path: Path) -> Node:
    """Node furong-01 of the county; its registry under ``tmp_path`` serves every level."""
    registry = Registry(tmp_path / "registry")
    key_file = tmp_path / "furong-01.key"
    add_node(lambda: county.api, registry, "furong-01", county.division, key_file,
             vhost=county.vhost)
    login = load_broker_login(key_file)
    assert login is not None
    return Node("furong-01", county.division, key_file, county.url(login.user, login.password),
                registry)


def publish(node: Node, tmp_path: Path, batches: int, per_batch: int) -> list[str]:
    """Seal and publish ``batches`` batches with the real publisher; their IDs."""
    settings = node.settings(heartbeat_seconds=3600)
    settings = type(settings)(settings.link, settings.identity, heartbeat_seconds=3600,
                              backoff_initial=0.1, backoff_max=1.0, consume_receipts=False)
    with Outbox(tmp_path / "outbox.db") as outbox:
        batch_ids = fill(outbox, 1, batches * per_batch, per_batch)
        publisher = Publisher(outbox, settings)
        try:
            result = publisher.flush(60.0)
        finally:
            publisher.close()
    assert (result.published, result.pending) == (batches, 0), result
    return batch_ids

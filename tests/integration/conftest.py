"""Fixtures that start real servers on loopback, lazily: only when a test asks for them.

Session-scoped: ``postgres_server``, ``mariadb_server``, ``rabbitmq_server`` (a started
``LocalBroker``). Function-scoped: ``pg_url`` and ``mariadb_url`` (SQLAlchemy URL of a
fresh empty database) and ``amqp_url`` (a fresh vhost and administrator user on the
session broker, so tests never see each other's queues).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from adapters.stores.sql import SqlStore
from gateway.broker_node import LocalBroker
from gateway.mgmt_api import ManagementApi
from tests.servers import (
    MariaDBServer,
    PostgresServer,
    fresh_name,
    install_sigterm_cleanup,
    start_broker,
    stop_broker,
)

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees every collected test, not only those below this folder.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    install_sigterm_cleanup()
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    install_sigterm_cleanup()
    with MariaDBServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[LocalBroker]:
    install_sigterm_cleanup()
    broker = start_broker()
    try:
        yield broker
    finally:
        stop_broker(broker)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = fresh_name()
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlStore]:
    """A migrated central store in a fresh PostgreSQL database."""
    opened = SqlStore(pg_url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def mariadb_url(mariadb_server: MariaDBServer) -> Iterator[str]:
    name = fresh_name()
    yield mariadb_server.create_database(name)
    mariadb_server.drop_database(name)


@pytest.fixture
def amqp_url(rabbitmq_server: LocalBroker) -> Iterator[str]:
    vhost, user, password = fresh_name("vh"), fresh_name("u"), secrets.token_urlsafe(12)
    api = ManagementApi.from_broker(rabbitmq_server)
    api.put(f"vhosts/{quote(vhost, safe='')}", {})
    api.put(f"users/{user}", {"password": password, "tags": "administrator"})
    api.put(
        f"permissions/{quote(vhost, safe='')}/{user}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    yield rabbitmq_server.amqp_url(user, password, vhost)
    api.delete(f"vhosts/{quote(vhost, safe='')}")
    api.delete(f"users/{user}")


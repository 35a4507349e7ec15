"""A database server that accepts the connection and then says nothing fails a source's
read, or a store's write, after a bounded wait: it never hangs the agent or a gateway
worker. And on Oracle, which has no lock timeout, the write-back's round trips are
bounded instead."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from adapters.db_connect import (
    CONNECT_TIMEOUT_SECONDS,
    ROUND_TRIP_TIMEOUT_SECONDS,
    bound_round_trips,
    bound_silent_servers,
    connect_args,
    engine_url,
)
from adapters.sources.base import SourceContext
from adapters.sources.database import LOCK_WAIT_SECONDS, _round_trips_bounded, database_source
from adapters.stores.base import Heartbeat
from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from schemas.catalog import load_catalog
from schemas.errors import RetriableError

# Far above the connect timeout, far below pytest's own: a hang shows as a failure here.
_GIVE_UP_S = CONNECT_TIMEOUT_SECONDS * 6


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts every connection and never sends a byte."""
    held: list[socket.socket] = []
    with closing(socket.create_server(("127.0.0.1", 0))) as server:
        server.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(server.accept()[0])
                except (TimeoutError, OSError):
                    continue

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        try:
            yield server.getsockname()[1]
        finally:
            stop.set()
            acceptor.join(5)
            for conn in held:
                conn.close()


def _outcome(work: Callable[[], object]) -> BaseException | None:
    """The exception ``work`` ended with (None: it returned), or a failure if it hangs."""
    ended: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test to judge
            ended.append(exc)
        else:
            ended.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(_GIVE_UP_S)
    assert ended, f"still waiting on a silent server after {_GIVE_UP_S} s"
    return ended[0]


def test_a_source_on_a_silent_postgresql_fails_its_read(silent_port: int) -> None:
    context = SourceContext("n1", "430102", load_catalog(), "en")
    url = f"postgresql://agent:secret@127.0.0.1:{silent_port}/front"

    def read() -> None:
        with database_source("front", {"url": url, "strategy": "flag"}, context) as source:
            list(source.read({}))

    failure = _outcome(read)
    assert isinstance(failure, RetriableError)
    assert "timeout" in str(failure).lower() and "secret" not in str(failure)


def test_a_store_on_a_silent_postgresql_fails_its_write(silent_port: int) -> None:
    store = SqlStore(f"postgresql://gateway:secret@127.0.0.1:{silent_port}/level")
    beat = Heartbeat("n1", "430102", None, now_beijing(), None, {}, None, None)
    try:
        failure = _outcome(lambda: store.record_heartbeat(beat))
    finally:
        store.close()
    assert isinstance(failure, RetriableError)


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://h/db", {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "keepalives": 1}),
    ("postgresql+psycopg2://h/db", {"connect_timeout": CONNECT_TIMEOUT_SECONDS}),
    ("mysql://h/db", {"connect_timeout": CONNECT_TIMEOUT_SECONDS,
                      "read_timeout": ROUND_TRIP_TIMEOUT_SECONDS}),
    ("mariadb://h/db", {"read_timeout": ROUND_TRIP_TIMEOUT_SECONDS}),
    ("oracle+oracledb://h/db", {"expire_time": 1}),
])
def test_network_drivers_get_bounded_waits(url: str, expected: dict[str, Any]) -> None:
    args = connect_args(engine_url(url))
    assert expected.items() <= args.items()


def test_the_url_overrides_a_bounded_wait_and_other_drivers_get_none() -> None:
    args = connect_args(engine_url("postgresql://h/db?connect_timeout=30"))
    assert "connect_timeout" not in args and args["keepalives"] == 1
    assert connect_args(engine_url("sqlite:///x.db")) == {}
    assert connect_args(engine_url("oracle://h/db?expire_time=5")) == {}
    assert connect_args(engine_url("oracle+cx_oracle://h/db")) == {}


def _connection(dialect: str, call_timeout: int | None) -> Any:
    driver = SimpleNamespace() if call_timeout is None else SimpleNamespace(
        call_timeout=call_timeout)
    return SimpleNamespace(dialect=SimpleNamespace(name=dialect),
                           connection=SimpleNamespace(driver_connection=driver))


def test_oracle_write_back_round_trips_are_bounded_then_restored() -> None:
    conn = _connection("oracle", 0)
    with _round_trips_bounded(conn):
        assert conn.connection.driver_connection.call_timeout == LOCK_WAIT_SECONDS * 1000
    assert conn.connection.driver_connection.call_timeout == 0
    with pytest.raises(RuntimeError), _round_trips_bounded(conn):
        raise RuntimeError("ORA-03156-like: the call timed out")
    assert conn.connection.driver_connection.call_timeout == 0


def test_oracle_connections_get_a_call_timeout_other_engines_none() -> None:
    oracle = bound_silent_servers(create_engine(engine_url("oracle://u@127.0.0.1:1/x")))
    postgres = bound_silent_servers(create_engine(engine_url("postgresql://u@127.0.0.1:1/x")))
    assert event.contains(oracle, "connect", bound_round_trips)
    assert not event.contains(postgres, "connect", bound_round_trips)
    fresh = SimpleNamespace(call_timeout=0)
    bound_round_trips(fresh)
    assert fresh.call_timeout == ROUND_TRIP_TIMEOUT_SECONDS * 1000
    old_driver = SimpleNamespace()  # cx_Oracle with client libraries before 18c
    bound_round_trips(old_driver)
    assert not hasattr(old_driver, "call_timeout")


def test_other_databases_and_old_drivers_are_left_alone() -> None:
    postgres = _connection("postgresql", 0)
    with _round_trips_bounded(postgres):
        assert postgres.connection.driver_connection.call_timeout == 0
    old_oracle = _connection("oracle", None)  # a driver without call timeouts
    with _round_trips_bounded(old_oracle):
        assert not hasattr(old_oracle.connection.driver_connection, "call_timeout")

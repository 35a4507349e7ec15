"""The gateway's upkeep: heartbeats past their retention are deleted beside the consumer."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.stores.base import Heartbeat
from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from gateway.housekeeping import Housekeeper, housekeeping

NOW = datetime(2026, 11, 20, 10, 0, 0)


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def beat(store: SqlStore, node_id: str, at: datetime) -> None:
    store.record_heartbeat(Heartbeat(node_id, "430102", at, at, "0.1.0", {}, None, None))


def kept(store: SqlStore) -> list[tuple[str, datetime]]:
    h = store.schema.heartbeat
    with store.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(
            sa.select(h.c.NODE_ID, h.c.RECEIVED_AT).order_by(h.c.NODE_ID, h.c.RECEIVED_AT))]


def test_a_sweep_deletes_past_retention_in_chunks_and_keeps_each_nodes_latest(
        store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.housekeeping.CHUNK", 3)   # several chunks, one sweep
    for minutes in range(10):
        beat(store, "n1", NOW - timedelta(days=8, minutes=minutes))
    beat(store, "n1", NOW - timedelta(days=6))
    beat(store, "n2", NOW - timedelta(days=30))            # silent for a month
    keeper = Housekeeper(store, 7, clock=lambda: NOW)
    assert keeper.sweep() == 10
    assert kept(store) == [("n1", NOW - timedelta(days=6)), ("n2", NOW - timedelta(days=30))]
    assert keeper.sweep() == 0


def test_the_gateway_sweeps_at_start_beside_the_consumer(store: SqlStore) -> None:
    now = now_beijing()
    beat(store, "n1", now - timedelta(days=3))
    beat(store, "n1", now - timedelta(hours=1))
    swept = threading.Event()

    class _Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "已删除 1 条超过 2 天的心跳":  # Chinese by default
                swept.set()

    watch = _Watch()
    gateway_log = logging.getLogger("exgate.gateway")
    gateway_log.addHandler(watch)
    previous = gateway_log.level
    gateway_log.setLevel(logging.INFO)
    try:
        with housekeeping(store, retention_days=2):
            assert swept.wait(timeout=30)
    finally:
        gateway_log.removeHandler(watch)
        gateway_log.setLevel(previous)
    assert [node for node, _ in kept(store)] == ["n1"]


def test_a_failed_sweep_is_logged_and_tried_again_never_raised(
        store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    store.schema.heartbeat.drop(store.engine)
    stop = threading.Event()
    keeper = Housekeeper(store, 7, lang="en")
    runner = threading.Thread(target=keeper.run, args=(stop, 0.05))
    with caplog.at_level(logging.WARNING, logger="exgate.gateway"):
        runner.start()
        try:
            for _ in range(600):
                if sum("not deleted" in r.getMessage() for r in caplog.records) >= 2:
                    break
                stop.wait(0.05)
        finally:
            stop.set()
            runner.join(timeout=30)
    assert not runner.is_alive()
    assert sum("not deleted" in r.getMessage() for r in caplog.records) >= 2

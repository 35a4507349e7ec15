"""The whole path against a real RabbitMQ: front-end sources → agents → levels → stores.

Two county nodes of Changsha (芙蓉区 430102 reads a SQLite front-end database with the
flag strategy, 天心区 430103 a drop folder), provisioned with ``add_node``; gateways
for the province, the city and both counties, each into its own SQLite store. The
sources and configs are built with the demo's helpers (``gateway.demo_*``).
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from adapters.amqp.topology import dead_queue, level_queue, receipts_queue
from adapters.stores.sql import SqlStore
from frontend_machine.agent_command import run_once
from frontend_machine.outbox import Outbox
from gateway.broker_node import LocalBroker
from gateway.demo_data import (
    SourceSet,
    corrupt,
    county_records,
    insert_rows,
    sample_records,
    typed_row,
    write_drop_folder,
    write_front_db,
)
from gateway.demo_world import NodeSpec, agent_config, declare_levels, gateway_config, provision
from gateway.mgmt_api import ManagementApi
from gateway.run import run_gateway
from schemas.records import Record
from tests.integration.amqp_helpers import (
    admin_channel,
    delete_user,
    drain_queue,
    vhost_of,
    wait_for,
)
from tests.servers import broker_base_dir, fresh_name, stop_broker

LEVELS = ("430000", "430100", "430102", "430103")
EXGATE = str(Path(sys.executable).parent / "exgate")
Row = tuple[str, tuple[str, ...], int]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    return sample_records(tmp_path_factory.mktemp("samples"), cases=150)


@dataclass
class World:
    """One vhost: topology of four levels, two provisioned nodes, configs on disk."""

    broker: LocalBroker
    vhost: str
    gateway_url: str
    root: Path
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    agents: dict[str, Path] = field(default_factory=dict)
    gateways: dict[str, Path] = field(default_factory=dict)
    sources: dict[str, SourceSet] = field(default_factory=dict)

    @property
    def agent_url(self) -> str:
        return f"amqp://127.0.0.1:{self.broker.ports.amqp}/{quote(self.vhost, safe='')}"

    def add_node(self, name: str, division: str, kind: str, **config: float) -> NodeSpec:
        node = NodeSpec(f"{name}-{fresh_name('')[1:7]}", division, kind)
        home = self.root / node.node_id
        key_file = provision(self.broker, self.root / "registry", home, node, self.vhost)
        source = home / ("front.db" if kind == "db" else "drop")
        self.agents[node.node_id] = agent_config(home / "agent.toml", node, key_file=key_file,
                                                 broker_url=self.agent_url,
                                                 source=str(source), **config)
        self.nodes[node.node_id] = node
        return node

    def front_db(self, node: NodeSpec) -> str:
        return f"sqlite:///{self.root / node.node_id / 'front.db'}"

    def outbox(self, node: NodeSpec) -> Path:
        return self.root / node.node_id / "outbox.db"

    def store_path(self, division: str) -> Path:
        return self.root / "levels" / division / "store.db"

    def gateway(self, division: str, **settings: float) -> Path:
        path = gateway_config(self.root / "levels" / division / "gateway.toml", division,
                              broker_url=self.gateway_url, store_url="sqlite:///store.db",
                              registry=self.root / "registry", **settings)
        self.gateways[division] = path
        return path

    def drain(self, divisions: tuple[str, ...] = LEVELS) -> None:
        """``gateway run --drain`` for every level at once (one thread each)."""
        codes: dict[str, int] = {}
        threads = [threading.Thread(target=lambda d=d: codes.__setitem__(
            d, run_gateway(self.gateways.get(d) or self.gateway(d), drain=True)))
            for d in divisions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert codes == dict.fromkeys(divisions, 0)

    def cleanup(self) -> None:
        for node_id in self.nodes:
            delete_user(self.broker, f"exgate-node-{node_id}")


def make_world(broker: LocalBroker, vhost: str, gateway_url: str, root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    declare_levels(broker, LEVELS, vhost)
    return World(broker, vhost, gateway_url, root)


@pytest.fixture
def world(rabbitmq_server: LocalBroker, amqp_url: str, tmp_path: Path) -> Iterator[World]:
    made = make_world(rabbitmq_server, vhost_of(amqp_url), amqp_url, tmp_path)
    yield made
    made.cleanup()


# -- what the stores and the outboxes hold ----------------------------------------------


def expected(records: Iterator[Record] | tuple[Record, ...]) -> set[Row]:
    return {(r.element, tuple(r.key), r.version) for r in records}


def store_rows(path: Path) -> set[Row]:
    """Every (element, business key, SJBBH) in a store; asserts each is there once."""
    store = SqlStore(f"sqlite:///{path}")
    found: list[Row] = []
    try:
        with store.engine.connect() as conn:
            for code, et in store.schema.elements.items():
                query = select(*et.key_columns, et.table.c.SJBBH)
                found += [(code, tuple(_text(v) for v in row[:-1]), int(row[-1]))
                          for row in conn.execute(query)]
    finally:
        store.close()
    assert len(found) == len(set(found)), "a record is stored twice"
    return set(found)


def _text(value: object) -> str:
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[attr-defined]
    return str(value)


def control_counts(path: Path) -> dict[str, int]:
    store = SqlStore(f"sqlite:///{path}")
    try:
        s = store.schema
        with store.engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                    for name, table in (("batches", s.batch), ("failed", s.failed),
                                        ("conflicts", s.conflict))}
    finally:
        store.close()


def store_batch_ids(path: Path) -> list[str]:
    store = SqlStore(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:
            return sorted(conn.execute(select(store.schema.batch.c.BATCH_ID)).scalars())
    finally:
        store.close()


def outbox_batches(path: Path) -> dict[str, str]:
    with Outbox(path) as outbox:
        return {b.batch_id: b.state.value for b in outbox.batches()}


def flags(url: str) -> dict[int, int]:
    """SYNC_FLAG → rows, over every EX_ table of a SQLite front-end DB."""
    counts: dict[int, int] = {}
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'EX_%'"
            " AND name <> 'EX_CHANGELOG'")]
        for table in tables:
            for flag, count in db.execute(f'SELECT SYNC_FLAG, count(*) FROM "{table}"'
                                          " GROUP BY SYNC_FLAG"):
                counts[flag] = counts.get(flag, 0) + count
    return counts


def agent_once(world: World, node: NodeSpec) -> int:
    return run_once(world.agents[node.node_id], "en", out=_Sink())


def collect_receipts(world: World, *nodes: NodeSpec) -> None:
    """``agent once`` for each node until its outbox shows every batch stored.

    A run stops listening after 0.2 s without a receipt, so on a loaded machine one run
    may end before the last receipts arrive; each run must still exit 0.
    """
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    for node in nodes:
        while True:
            assert agent_once(world, node) == 0
            states = set(outbox_batches(world.outbox(node)).values())
            if states == {"stored"}:
                break
            assert time.monotonic() < deadline, f"{node.node_id}'s batches stay {states}"


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


# -- the whole path -------------------------------------------------------------------


def two_nodes(world: World, samples: list[Record]) -> tuple[NodeSpec, NodeSpec]:
    a = world.add_node("furong", "430102", "db", batch_max_records=40)
    b = world.add_node("tianxin", "430103", "folder", batch_max_records=40)
    world.sources[a.node_id] = write_front_db(world.front_db(a),
                                              county_records(samples, "430102"), bad=3)
    world.sources[b.node_id] = write_drop_folder(world.root / b.node_id / "drop" / "inbox",
                                                 "430103", county_records(samples, "430103"),
                                                 files=3, bad=2)
    return a, b


def test_one_record_published_once_reaches_its_three_levels_and_no_other_county(
        world: World, samples: list[Record]) -> None:
    a, b = two_nodes(world, samples)
    assert agent_once(world, a) == 1 and agent_once(world, b) == 1  # 1: some rejected
    world.drain()
    collect_receipts(world, a, b)

    rows_a, rows_b = (expected(world.sources[n.node_id].valid) for n in (a, b))
    assert rows_a and rows_b and not rows_a & rows_b
    assert store_rows(world.store_path("430102")) == rows_a
    assert store_rows(world.store_path("430103")) == rows_b
    assert store_rows(world.store_path("430100")) == rows_a | rows_b
    assert store_rows(world.store_path("430000")) == rows_a | rows_b

    batches_a, batches_b = outbox_batches(world.outbox(a)), outbox_batches(world.outbox(b))
    assert set(batches_a.values()) == set(batches_b.values()) == {"stored"}
    assert store_batch_ids(world.store_path("430102")) == sorted(batches_a)
    assert store_batch_ids(world.store_path("430103")) == sorted(batches_b)
    for level in ("430100", "430000"):
        assert store_batch_ids(world.store_path(level)) == sorted({**batches_a, **batches_b})
    for division in LEVELS:
        counts = control_counts(world.store_path(division))
        assert (counts["failed"], counts["conflicts"]) == (0, 0), division
    for node in (a, b):
        with Outbox(world.outbox(node)) as outbox:
            assert outbox.record_count() == len(world.sources[node.node_id].valid)
            assert len(outbox.rejects()) == world.sources[node.node_id].invalid
            for batch_id in outbox_batches(world.outbox(node)):
                receipts = outbox.receipts_of(batch_id)
                assert {(r["level"], r["status"]) for r in receipts} == {
                    ("province", "stored"), ("city", "stored"), ("county", "stored")}
    assert flags(world.front_db(a)) == {1: len(world.sources[a.node_id].valid), 2: 3}
    drop = world.root / b.node_id / "drop"
    assert not list((drop / "inbox").glob("*.xml"))
    assert len(list((drop / "error").glob("*.error.json"))) == 2


def test_every_batch_redelivered_leaves_the_stores_unchanged(
        world: World, samples: list[Record], caplog: pytest.LogCaptureFixture) -> None:
    a, b = two_nodes(world, samples)
    agent_once(world, a)
    agent_once(world, b)
    world.drain()
    before = {d: store_rows(world.store_path(d)) for d in LEVELS}
    controls = {d: control_counts(world.store_path(d)) for d in LEVELS}
    # Every confirm and every receipt lost (a batch every level receipted has given up
    # its payload, so only an unreceipted one can be sent again): the agents send every
    # batch again, under the same batch IDs.
    for node in (a, b):
        assert drain_queue(world.gateway_url, receipts_queue(node.node_id))
        with closing(sqlite3.connect(world.outbox(node))) as db, db:
            assert db.execute("SELECT count(*) FROM batches WHERE state <> 'sent'"
                              ).fetchone()[0] == 0
            db.execute("UPDATE batches SET state = 'pending'")
        time.sleep(1.1)  # a later second: a resent batch must not differ in any byte
        assert agent_once(world, node) == 0
    with caplog.at_level(logging.INFO, logger="exgate.gateway"):
        world.drain()
    # "redelivered, unchanged", in the gateway's default Chinese
    assert sum("（重新投递，内容未变）" in r.getMessage() for r in caplog.records) == \
        sum(len(store_batch_ids(world.store_path(d))) for d in LEVELS)
    assert {d: store_rows(world.store_path(d)) for d in LEVELS} == before
    assert {d: control_counts(world.store_path(d)) for d in LEVELS} == controls
    collect_receipts(world, a, b)


# -- failures on the way: a gateway killed, the store away, the broker away -----------


def kill_after_two_batches(gateway: subprocess.Popen[bytes], store: Path) -> int:
    """SIGKILL the gateway once its store holds two batches or more; the batches it holds.

    The count and the kill happen under the store's write lock, so the gateway stores
    no batch in between: however fast it drains, the kill lands where it was counted.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a hang guard, not a timing assertion
        if store.exists():
            with closing(sqlite3.connect(store, timeout=30, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    stored = int(db.execute("SELECT count(*) FROM ST_BATCH").fetchone()[0])
                except sqlite3.OperationalError:
                    stored = 0  # not migrated yet
                if stored >= 2:
                    os.kill(gateway.pid, signal.SIGKILL)
                    gateway.wait()
                    return stored
                db.execute("ROLLBACK")
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the first batches")


def batches_stored(path: Path) -> int:
    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM ST_BATCH").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # not migrated yet, or locked


def queue_messages(world: World, queue: str) -> int:
    """Ready and unacknowledged messages of ``queue``, from the management API (whose
    figures lag by up to its statistics interval)."""
    info = ManagementApi.from_broker(world.broker).get(
        f"queues/{quote(world.vhost, safe='')}/{quote(queue, safe='')}")
    return int(info["messages"])


def ready_messages(world: World, queue: str) -> int:
    with admin_channel(world.gateway_url) as channel:
        return int(channel.queue_declare(queue, passive=True).method.message_count)


def test_a_gateway_killed_mid_drain_and_restarted_changes_nothing(
        world: World, samples: list[Record]) -> None:
    # One record a batch: some 130 batches, so that the gateway is still draining when
    # the test, on a loaded machine, gets to look at the store again (with five a batch
    # it stored all of them within a few hundred milliseconds).
    node = world.add_node("furong", "430102", "db", batch_max_records=1)
    world.sources[node.node_id] = write_front_db(world.front_db(node),
                                                 county_records(samples, "430102"), bad=2)
    assert agent_once(world, node) == 1
    total = len(outbox_batches(world.outbox(node)))
    config = world.gateway("430102", workers=1)
    store = world.store_path("430102")
    log_path = world.root / "gateway.log"
    with log_path.open("ab") as log:
        gateway = subprocess.Popen([EXGATE, "gateway", "run", "-c", str(config), "--drain"],
                                   stdout=log, stderr=log)
        try:
            stored = kill_after_two_batches(gateway, store)
        finally:
            if gateway.poll() is None:
                os.kill(gateway.pid, signal.SIGKILL)
            gateway.wait()
        assert stored < total  # killed in the middle
        again = subprocess.run([EXGATE, "gateway", "run", "-c", str(config), "--drain"],
                               stdout=log, stderr=log, timeout=120, check=False)
    assert again.returncode == 0
    assert "被重新投递" in log_path.read_text(encoding="utf-8")  # "redelivered", in Chinese
    assert store_rows(store) == expected(world.sources[node.node_id].valid)
    assert control_counts(store) == {"batches": total, "failed": 0, "conflicts": 0}


def test_batches_wait_while_the_store_is_locked_then_land(
        world: World, samples: list[Record], caplog: pytest.LogCaptureFixture) -> None:
    node = world.add_node("furong", "430102", "db", batch_max_records=20)
    world.sources[node.node_id] = write_front_db(world.front_db(node),
                                                 county_records(samples, "430102"), bad=1)
    config = world.gateway("430102")
    store = world.store_path("430102")
    migrated = SqlStore(f"sqlite:///{store}")
    migrated.migrate()
    migrated.close()
    # "consuming" and "held", in the gateway's default Chinese
    seen = {"开始消费队列": threading.Event(), "暂存重试": threading.Event()}

    class _Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            for word, event in seen.items():
                if word in record.getMessage():
                    event.set()

    stop = threading.Event()
    watch = _Watch()
    logging.getLogger("exgate.gateway").addHandler(watch)
    try:
        with caplog.at_level(logging.INFO, logger="exgate.gateway"):
            runner = threading.Thread(target=run_gateway, args=(config,),
                                      kwargs={"stop": stop})
            runner.start()
            try:
                assert seen["开始消费队列"].wait(60)
                locker = sqlite3.connect(store, isolation_level=None)
                locker.execute("BEGIN EXCLUSIVE")  # the store is away for 30 s
                assert agent_once(world, node) == 1
                total = len(outbox_batches(world.outbox(node)))
                assert seen["暂存重试"].wait(60)
                time.sleep(30)  # the outage the issue names; what follows is checked after
                # The batches wait: every one is still in the broker (delivered and held,
                # or queued), none dead-lettered (not even one the gateway's pass holds
                # unacked), and no receipt, stored or failed, sent.
                wait_for("the broker's count of the waiting batches",
                         lambda: queue_messages(world, level_queue("430102")) == total)
                assert queue_messages(world, dead_queue("430102")) == 0
                assert ready_messages(world, receipts_queue(node.node_id)) == 0
                locker.execute("COMMIT")
                locker.close()
                wait_for("the held batches", lambda: batches_stored(store) == total, 120)
            finally:
                stop.set()
                runner.join(timeout=60)
                assert not runner.is_alive(), "the gateway did not stop"
    finally:
        logging.getLogger("exgate.gateway").removeHandler(watch)
    assert store_rows(store) == expected(world.sources[node.node_id].valid)
    assert control_counts(store) == {"batches": total, "failed": 0, "conflicts": 0}


def test_the_broker_away_for_30_s_loses_and_duplicates_nothing(
        samples: list[Record], tmp_path: Path) -> None:
    broker = LocalBroker(broker_base_dir())
    try:
        broker.start()
        world = make_world(broker, "/", broker.amqp_url(), tmp_path)
        node = world.add_node("furong", "430102", "db", poll_seconds=0.5,
                              batch_max_records=20, linger_seconds=1.0)
        write_front_db(world.front_db(node), [])
        records = county_records(samples, "430102")
        bad = {len(records) // 4, len(records) // 2, 3 * len(records) // 4}
        valid = tuple(r for i, r in enumerate(records) if i not in bad)

        def trickle() -> None:
            for index, record in enumerate(records):
                fields = corrupt(record) if index in bad else dict(record.fields)
                insert_rows(world.front_db(node),
                            {record.element: [typed_row(record.element, fields)]})
                time.sleep(0.4)

        log = (tmp_path / "agent.log").open("ab")
        agent = subprocess.Popen([EXGATE, "agent", "run", "-c", str(world.agents[node.node_id]),
                                  "--lang", "en"], stdout=log, stderr=log)
        inserter = threading.Thread(target=trickle)
        try:
            inserter.start()
            time.sleep(5)
            broker.stop()
            time.sleep(30)
            broker.start()
            inserter.join()
            outbox = world.outbox(node)
            wait_for("the agent to catch up", lambda: _sent(outbox) == len(valid), 120)
            world.drain(("430000", "430100", "430102"))
            wait_for("every level's receipt",
                     lambda: set(outbox_batches(outbox).values()) == {"stored"})
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=60) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            log.close()
        assert "connected to the broker again" in (tmp_path / "agent.log").read_text()
        for division in ("430102", "430100", "430000"):
            path = world.store_path(division)
            assert store_rows(path) == expected(valid), division
            counts = control_counts(path)
            assert (counts["failed"], counts["conflicts"]) == (0, 0), division
        assert flags(world.front_db(node)) == {1: len(valid), 2: len(bad)}
        with closing(sqlite3.connect(world.store_path("430102"))) as db:
            lags = [row[0] for row in db.execute("SELECT SOURCE_LAG_S FROM ST_HEARTBEAT")]
        assert any(lag is not None and lag >= 0 for lag in lags), lags  # heartbeats say it
        world.cleanup()
    finally:
        stop_broker(broker)


def _sent(outbox: Path) -> int:
    """Records in batches the broker confirmed (or that are already stored)."""
    if not outbox.exists():
        return 0
    with closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
        return int(db.execute(
            "SELECT count(*) FROM records r JOIN batches b ON r.batch_id = b.batch_id"
            " WHERE b.state IN ('sent', 'stored')").fetchone()[0])


# -- a login the broker refuses ---------------------------------------------------------


def test_once_with_a_refused_login_stops_at_once_as_a_config_error(
        world: World, samples: list[Record], capsys: pytest.CaptureFixture[str]) -> None:
    """The centre replaced the node's password (``node enable`` writes a new one into
    the credentials file, ``node disable`` a random one): no retry can get in, so
    ``once`` says what to do and exits 2, with what it took kept in the outbox."""
    node = world.add_node("furong", "430102", "db")
    write_front_db(world.front_db(node), county_records(samples, "430102")[:5])
    user = f"exgate-node-{node.node_id}"
    ManagementApi.from_broker(world.broker).put(
        f"users/{quote(user, safe='')}", {"password": "replaced-by-the-centre", "tags": ""})
    assert run_once(world.agents[node.node_id], "zh", out=_Sink()) == 2
    said = capsys.readouterr().err
    # The log line, then the exit's reason; each names the broker.
    assert said.count(f"127.0.0.1:{world.broker.ports.amqp}（虚拟主机 {world.vhost}）拒绝了"
                      f"用户 {user!r} 的登录") == 2
    assert "请向省级中心索取当前的凭据文件" in said
    assert "配置错误：" in said and "暂不可用" not in said
    assert set(outbox_batches(world.outbox(node)).values()) == {"pending"}

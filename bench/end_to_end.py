"""End to end: front-end PostgreSQL rows → agent → RabbitMQ → three levels' SQLite stores.

- **records/s**: ``--records`` valid ``EX_SBXX`` rows are committed in PostgreSQL; three
  ``exgate gateway run`` processes (province, city, county: one broker, three level
  queues) are consuming; the clock starts when ``exgate agent run`` (database source,
  flag strategy, outbox, publisher) is spawned and stops when the *last* of the three
  stores holds every record. Real processes, so the agent and the gateways do not share
  a GIL, as in production. One node sends everything, so each gateway stores its batches
  one at a time, in their order (``gateway.ordered_pool``): the worst case for a level,
  which takes several nodes' batches in parallel.
- **latency** under a steady offered load: with the same processes running, a writer
  thread commits 10 rows every 10 ms (1,000 rows/s) for ``LOAD_SECONDS``, and notes
  the wall-clock time right after each commit, keyed by the row's business key
  (SBLSH). Each store row carries ``STORED_AT`` (taken by the gateway inside the write
  transaction, microseconds, Beijing time); latency = STORED_AT − source commit, for
  every row in every store. p50 and p99 are over all three stores; the worst level's
  p99 is printed too. Same machine, same clock; the bias is the few ms between
  ``STORED_AT`` and the store's commit.
- **raw limits** in the same run: the exact sealed batch messages of the throughput
  run published again with bare pika (one confirm-mode channel, like the publisher) to
  three quorum queues; and one ``executemany`` of the same records into three bare
  SQLite tables (one transaction each).
- **naive pipeline**: for ``--naive-records`` rows, one at a time: SELECT, validate,
  seal and publish one record with a confirm, commit it into each of three SQLite
  stores row by row, flag it in PostgreSQL. Run twice, on fresh rows: validating with
  xmlschema per record, as design §11 defines the naive pipeline, and with exgate's
  own ``check_fields``, a stricter reference (several times cheaper per record).

The bench starts its own broker and PostgreSQL in temp folders (the launchers of
``tests/servers.py``: run from the repository root) and stops them by PID.
"""

from __future__ import annotations

import gc
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import psycopg

from adapters.amqp.topology import (
    RECORDS_EXCHANGE,
    declare_topology,
    level_queue,
    routing_key,
)
from adapters.frontdb_create import create_all
from adapters.sealing import load_broker_login, load_node_keys
from bench._naive import RecordXml, fields_checker, xsd_record
from bench._registry import BenchConfig, Reference, Result, figure
from frontend_machine.envelope import NodeIdentity, batch_document, build_envelope
from frontend_machine.outbox import Outbox
from gateway.broker_node import LocalBroker
from gateway.mgmt_api import HttpChannel, ManagementApi
from gateway.provisioning import add_node
from gateway.registry import Registry
from schemas.catalog import load_catalog
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.times import BEIJING
from schemas.writer import record_xml

__all__ = ["end_to_end"]

ELEMENT = "SBXX"
NODE, DIVISION = "bench-e2e", "430102"
LEVELS = ("430000", "430100", "430102")
LOAD_RATE = 1_000         # rows/s offered during the latency run
LOAD_SECONDS = 30.0
TICK = 0.01               # the writer commits LOAD_RATE * TICK rows per tick
# The agent's poll period and batch linger: a row waits up to about their sum in the
# agent, so both are a small part of the 1 s latency target.
POLL_S, LINGER_S = 0.05, 0.05
ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 60.0
Sealed = tuple[bytes, pika.BasicProperties, list[Record]]


@figure("end-to-end", order=60)
def end_to_end(config: BenchConfig) -> Result:
    records = config.records
    naive_rows = min(config.naive_records, max(100, records // 10))
    with _world(config.workdir / "e2e") as world:
        with _running(world) as start_agent:
            rate, elapsed = _throughput(world, records, start_agent)
            latency = _latency(world, records)
        sealed = _sealed_messages(world)
        raw_publish = _raw_publish(world, sealed, records)
        raw_store = _raw_store(world, sealed, records)
        first = records + latency.offered
        naive = _naive(world, first, naive_rows, _checked_record())
        naive_xsd = _naive(world, first + naive_rows, naive_rows,
                           xsd_record(ELEMENT, _fields()))
    p99_ratio = latency.p99 / 1.0
    return Result(
        "end-to-end", "PostgreSQL → agent → RabbitMQ → 3 level stores", rate, "records/s",
        (Reference("target", 10_000, "records/s", rate / 10_000, "≥ 10,000 records/s",
                   as_percent=True),
         Reference("raw pika publish+confirm of the sealed batches", raw_publish, "records/s",
                   rate / raw_publish, "n/a", as_percent=True),
         Reference("raw executemany into 3 SQLite stores", raw_store, "records/s",
                   rate / raw_store, "n/a", as_percent=True),
         Reference("naive per-record publish+confirm, per-row commit (check_fields)", naive,
                   "records/s", rate / naive, "none: stricter than design §11's"),
         Reference("naive as design §11 has it (xmlschema per record)", naive_xsd,
                   "records/s", rate / naive_xsd, "≥ 20×")),
        f"{records:,} EX_{ELEMENT} rows in {elapsed:.1f} s, agent and 3 gateways as "
        f"processes; latency at {latency.offered_rate:,.0f} rows/s offered for "
        f"{LOAD_SECONDS:.0f} s: p50 {latency.p50 * 1000:,.0f} ms, p99 "
        f"{latency.p99 * 1000:,.0f} ms ({p99_ratio:.0%} of the 1 s target), worst level "
        f"p99 {latency.worst_p99 * 1000:,.0f} ms, max {latency.worst * 1000:,.0f} ms over "
        f"{latency.samples:,} store rows; naive on {naive_rows:,} rows each; "
        f"{_cpus()} CPU(s)",
        extra={"p50_ms": latency.p50 * 1000, "p99_ms": latency.p99 * 1000,
               "raw_publish": raw_publish, "raw_store": raw_store, "naive": naive,
               "naive_xsd": naive_xsd},
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


# -- the world: PostgreSQL, a broker with three levels, a node, configs ---------------------

@dataclass
class World:
    workdir: Path
    pg_url: str
    broker: LocalBroker
    registry: Path
    key_file: Path
    outbox: Path
    agent_config: Path
    gateway_configs: dict[str, Path]
    stores: dict[str, Path]

    @property
    def conninfo(self) -> str:
        return self.pg_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def _world(workdir: Path) -> Iterator[World]:
    try:
        from tests.servers import PostgresServer, start_broker, stop_broker
    except ImportError as exc:
        raise RuntimeError("end-to-end needs tests/servers.py: run `python -m bench` from "
                           "the repository root") from exc
    workdir.mkdir(parents=True, exist_ok=True)
    with PostgresServer() as postgres:
        pg_url = postgres.create_database("e2e")
        create_all(pg_url)
        broker = start_broker()
        try:
            yield _configure(workdir, pg_url, broker)
        finally:
            stop_broker(broker)


def _configure(workdir: Path, pg_url: str, broker: LocalBroker) -> World:
    api = ManagementApi.from_broker(broker)
    declare_topology(HttpChannel(api), LEVELS)
    registry, key_file = workdir / "registry", workdir / f"{NODE}.key"
    add_node(lambda: api, Registry(registry), NODE, DIVISION, key_file)
    outbox = workdir / "outbox.db"
    agent_config = workdir / "agent.toml"
    agent_config.write_text(
        f'[node]\nid = "{NODE}"\ndivision = "{DIVISION}"\nkey_file = "{key_file}"\n'
        f'[broker]\nurl = "amqp://127.0.0.1:{broker.ports.amqp}/%2F"\n'
        f'[outbox]\npath = "{outbox}"\nbatch_linger_seconds = {LINGER_S}\n'
        f'[agent]\npoll_seconds = {POLL_S}\nlang = "en"\n'
        f'[[sources]]\nkind = "db"\nname = "front"\nurl = "{pg_url}"\n'
        f'strategy = "flag"\ntables = ["{ELEMENT}"]\n')
    configs, stores = {}, {}
    for level in LEVELS:
        stores[level] = workdir / f"store-{level}.db"
        configs[level] = workdir / f"gateway-{level}.toml"
        configs[level].write_text(
            f'[level]\ndivision = "{level}"\n[broker]\nurl = "{broker.amqp_url()}"\n'
            f'[store]\nurl = "sqlite:///{stores[level]}"\n[registry]\npath = "{registry}"\n')
    return World(workdir, pg_url, broker, registry, key_file, outbox, agent_config,
                 configs, stores)


# -- processes --------------------------------------------------------------------------------

def _spawn(world: World, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = open(world.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", *args],
                                cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def _running(world: World) -> Iterator[Any]:
    """Three gateways consuming; yields a function that spawns ``agent run``."""
    with ExitStack() as stack:
        for level, config in world.gateway_configs.items():
            gateway = _spawn(world, f"gateway-{level}", "gateway", "run", "-c", str(config))
            stack.callback(_stop, gateway)
        _wait(lambda: all(_consumers(world, level_queue(lv)) for lv in LEVELS), 120,
              "the three gateways to consume")

        def start_agent() -> None:
            agent = _spawn(world, "agent", "agent", "run", "-c", str(world.agent_config))
            stack.callback(_stop, agent)

        yield start_agent


def _consumers(world: World, queue: str) -> int:
    with _channel(world.broker.amqp_url()) as channel:
        return int(channel.queue_declare(queue, passive=True).method.consumer_count)


@contextmanager
def _channel(url: str) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"end-to-end: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _stored(world: World) -> dict[str, int]:
    counts = {}
    for level, path in world.stores.items():
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                counts[level] = int(db.execute(f"SELECT count(*) FROM ST_{ELEMENT}")
                                    .fetchone()[0])
        except sqlite3.Error:
            counts[level] = 0
    return counts


# -- records/s --------------------------------------------------------------------------------

def _rows(first: int, count: int) -> list[list[Any]]:
    from tests.unit.adapters.front_rows import row

    fields = _fields()
    base = datetime.now(BEIJING).replace(tzinfo=None, microsecond=0) - timedelta(days=1)
    return [[row(ELEMENT, n, base + timedelta(milliseconds=n))[f] for f in fields]
            for n in range(first, first + count)]


def _fields() -> tuple[str, ...]:
    return tuple(load_catalog().elements[ELEMENT].fields)


def _columns() -> str:
    return ", ".join(f.lower() for f in _fields())


def _fill(world: World, first: int, count: int) -> None:
    with psycopg.connect(world.conninfo) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY ex_{ELEMENT.lower()} ({_columns()}) FROM STDIN") as copy:
            for values in _rows(first, count):
                copy.write_row(values)
        conn.commit()
        conn.autocommit = True
        conn.execute(f"VACUUM ANALYZE ex_{ELEMENT.lower()}")


def _throughput(world: World, records: int, start_agent: Any) -> tuple[float, float]:
    _fill(world, 0, records)
    started = time.perf_counter()
    start_agent()
    _wait(lambda: min(_stored(world).values()) >= records, max(300.0, records / 200),
          f"{records:,} records in all three stores")
    elapsed = time.perf_counter() - started
    return records / elapsed, elapsed


# -- latency ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    offered: int
    offered_rate: float
    p50: float
    p99: float
    worst_p99: float
    worst: float
    samples: int


def _latency(world: World, first: int) -> Latency:
    count = int(LOAD_RATE * LOAD_SECONDS)
    rows = _rows(first, count)
    keys_at = _offer(world, rows)
    _wait(lambda: min(_stored(world).values()) >= first + count, 300,
          "the offered rows in all three stores")
    per_level = [_delays(path, keys_at) for path in world.stores.values()]
    pooled = sorted(d for delays in per_level for d in delays)
    offered_rate = count / (max(keys_at.values()) - min(keys_at.values()) + TICK)
    return Latency(count, offered_rate, _quantile(pooled, 0.50), _quantile(pooled, 0.99),
                   max(_quantile(sorted(d), 0.99) for d in per_level), pooled[-1],
                   len(pooled))


def _offer(world: World, rows: Sequence[list[Any]]) -> dict[str, float]:
    """Commit ``LOAD_RATE * TICK`` rows every ``TICK``; note each commit's wall time."""
    per_tick = int(LOAD_RATE * TICK)
    fields = _fields()
    key = fields.index("SBLSH")
    insert = (f"INSERT INTO ex_{ELEMENT.lower()} ({_columns()}) "
              f"VALUES ({', '.join(['%s'] * len(fields))})")
    committed: dict[str, float] = {}
    with psycopg.connect(world.conninfo) as conn, conn.cursor() as cursor:
        due = time.perf_counter()
        for start in range(0, len(rows), per_tick):
            chunk = rows[start:start + per_tick]
            cursor.executemany(insert, chunk)
            conn.commit()
            now = time.time()
            committed.update((values[key], now) for values in chunk)
            due += TICK
            time.sleep(max(0.0, due - time.perf_counter()))
    return committed


def _delays(store: Path, committed: dict[str, float]) -> list[float]:
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        rows = db.execute(f"SELECT SBLSH, STORED_AT FROM ST_{ELEMENT} WHERE SBLSH >= ?",
                          (min(committed),)).fetchall()
    delays = []
    for key, stored_at in rows:
        if key in committed:
            at = datetime.fromisoformat(stored_at).replace(tzinfo=BEIJING).timestamp()
            delays.append(at - committed[key])
    if len(delays) != len(committed):
        raise RuntimeError(f"{store.name}: {len(delays)} of {len(committed)} offered rows")
    return delays


def _quantile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- raw limits -----------------------------------------------------------------------------------

def _identity(world: World) -> NodeIdentity:
    return NodeIdentity(NODE, DIVISION, _login(world)[0], load_node_keys(world.key_file))


def _sealed_messages(world: World) -> list[Sealed]:
    """The batches of the throughput run, sealed again exactly as the publisher does."""
    identity = _identity(world)
    with Outbox(world.outbox) as outbox:
        messages = []
        for batch in sorted(outbox.batches(), key=lambda b: b.created_at):
            payloads = outbox.batch_payloads(batch.batch_id)
            envelope = build_envelope(batch.batch_id, payloads, identity)
            plain = batch_document(batch.batch_id, payloads, identity)
            recs = [c.record for c in DocumentReader(plain, batch.batch_id) if c.record]
            messages.append((envelope.body, envelope.properties, recs))
    return messages


def _raw_publish(world: World, sealed: Sequence[Sealed], records: int) -> float:
    """Bare pika: the same messages, the node's login, one confirm-mode channel, into the
    same exchange and three level queues (gateways stopped; purged afterwards)."""
    with _channel(world.broker.amqp_url(*_login(world))) as channel:
        channel.confirm_delivery()
        key = routing_key(DIVISION, NODE)
        gc.collect()
        started = time.perf_counter()
        sent = 0
        for body, properties, recs in sealed:
            channel.basic_publish(RECORDS_EXCHANGE, key, body, properties, mandatory=True)
            sent += len(recs)
        elapsed = time.perf_counter() - started
    _purge(world)
    if sent < records:
        raise RuntimeError(f"raw publish sent {sent} of {records} records")
    return sent / elapsed


def _purge(world: World) -> None:
    with _channel(world.broker.amqp_url()) as channel:
        for level in LEVELS:
            channel.queue_purge(level_queue(level))


def _login(world: World) -> tuple[str, str]:
    login = load_broker_login(world.key_file)
    assert login is not None
    return login.user, login.password


def _store_rows(sealed: Sequence[Sealed]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    fields = _fields()
    rows = [tuple(r.fields.get(f) for f in fields) for _, _, recs in sealed for r in recs]
    return fields, rows


def _raw_store(world: World, sealed: Sequence[Sealed],
               records: int) -> float:
    """One ``executemany`` per store (WAL, synchronous=FULL), three stores in a row."""
    fields, rows = _store_rows(sealed)
    marks = ", ".join("?" * len(fields))
    dbs = []
    for level in LEVELS:
        db = sqlite3.connect(world.workdir / f"raw-{level}.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"CREATE TABLE t ({', '.join(fields)}, PRIMARY KEY (SBLSH, SJBBH))")
        dbs.append(db)
    gc.collect()
    started = time.perf_counter()
    for db in dbs:
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO t VALUES ({marks})", rows)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    for db in dbs:
        db.close()
    if len(rows) < records:
        raise RuntimeError(f"raw store wrote {len(rows)} of {records} records")
    return len(rows) / elapsed


# -- naive --------------------------------------------------------------------------------------

def _checked_record() -> RecordXml:
    """The naive validation with exgate's own checks (``check_fields``): a stricter
    reference than xmlschema, which is several times slower per record."""
    check = fields_checker(ELEMENT, DIVISION)

    def record(texts: Mapping[str, str | None]) -> str | None:
        checked = check(texts)
        return None if checked.record is None else record_xml(checked.record)

    return record


def _naive(world: World, first: int, rows: int, validated: RecordXml) -> float:
    """Row by row: SELECT, validate (``validated``: the record's XML, None if refused),
    seal one record, publish with confirm, commit it in three stores, flag it."""
    _fill(world, first, rows)
    fields = _fields()
    identity = _identity(world)
    select = (f"SELECT row_id, {_columns()} FROM ex_{ELEMENT.lower()} WHERE sync_flag = 0 "
              "ORDER BY row_id LIMIT 1")
    stores = [sqlite3.connect(world.workdir / f"naive-{lv}-{first}.db", isolation_level=None)
              for lv in LEVELS]
    for db in stores:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"CREATE TABLE t ({', '.join(fields)})")
    with psycopg.connect(world.conninfo, autocommit=True) as conn, \
            _channel(world.broker.amqp_url(*_login(world))) as channel:
        channel.confirm_delivery()
        started = time.perf_counter()
        for n in range(rows):
            row_id, *values = conn.execute(select).fetchone()  # type: ignore[misc]
            texts = {f: (None if v is None else _text(v)) for f, v in zip(fields, values,
                                                                          strict=True)}
            payload = validated(texts)
            if payload is None:
                raise RuntimeError(f"naive validation refused row {row_id}: {texts}")
            envelope = build_envelope(f"naive-{first}-{n}", [payload], identity)
            channel.basic_publish(RECORDS_EXCHANGE, routing_key(DIVISION, NODE), envelope.body,
                                  envelope.properties, mandatory=True)
            for db in stores:
                db.execute(f"INSERT INTO t VALUES ({', '.join('?' * len(fields))})",
                           [texts[f] for f in fields])  # autocommit: one commit per row
            conn.execute(f"UPDATE ex_{ELEMENT.lower()} SET sync_flag = 1 WHERE row_id = %s",
                         (row_id,))
        elapsed = time.perf_counter() - started
    for db in stores:
        db.close()
    _purge(world)
    return rows / elapsed


def _text(value: Any) -> str:
    from adapters.sources.db_tables import to_text

    return str(to_text(value))


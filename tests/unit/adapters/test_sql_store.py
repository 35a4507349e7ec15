"""The SQL central store on SQLite; the ``test_store_*`` checks are a conformance suite.

``tests/integration/test_store_postgres.py`` imports every ``test_store_*`` function and
runs it against PostgreSQL with its own ``store`` fixture.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, oracle, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from adapters.frontdb import fold_identifier
from adapters.stores.base import (
    BatchRefused,
    FailedBatch,
    Heartbeat,
    IncomingBatch,
    NodeInfo,
    ReceiptRow,
    Store,
)
from adapters.stores.sql import SqlStore
from adapters.stores.sql_latest import latest
from adapters.stores.sql_schema import (
    BATCH_ID_LENGTH,
    CONTROL_TABLES,
    NODE_ID_LENGTH,
    VERSION_TABLE,
    store_schema,
)
from schemas.catalog import load_catalog
from schemas.errors import FatalError, RejectedBatch, RetriableError
from schemas.reader import DocumentReader
from schemas.records import Record
from tests.unit.schemas.documents import document, record

CATALOG = load_catalog()
NOW = datetime(2026, 11, 20, 10, 0, 0)


def records(*specs: tuple[str, dict[str, str]]) -> list[Record]:
    reader = DocumentReader(document(specs), "test")
    found = [check.record for check in reader]
    assert all(found) and not reader.issues, reader.issues
    return [r for r in found if r is not None]


def batch(batch_id: str, recs: list[Record], sha: str | None = None) -> IncomingBatch:
    sha = sha or hashlib.sha256(repr([r.fields for r in recs]).encode()).hexdigest()
    return IncomingBatch(batch_id, "n1", "430102", sha, recs, NOW)


def count(store: SqlStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def element(store: SqlStore, code: str) -> sa.Table:
    return store.schema.elements[code].table


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


# -- conformance suite (SQLite here, PostgreSQL in tests/integration) ----------------------


def test_store_keeps_the_protocol(store: SqlStore) -> None:
    assert isinstance(store, Store)


def test_store_migration_equals_the_metadata(store: SqlStore) -> None:
    store.migrate()  # a second run changes nothing
    version_table = fold_identifier(VERSION_TABLE, store.engine.dialect.name)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "version_table": version_table})
        diff = compare_metadata(context, store.schema.metadata)
    assert diff == []


def test_store_writes_a_batch_and_ignores_its_redelivery(store: SqlStore) -> None:
    recs = records(record("SBXX"), record("SBCL"), record("SF"), record("BZGZ"))
    first = store.write(batch("B1", recs))
    assert (first.stored, first.duplicates, first.conflict_count) == (4, 0, 0)
    again = store.write(batch("B1", recs))
    assert again.redelivered and (again.stored, again.duplicates) == (4, 0)
    assert count(store, element(store, "SBXX")) == 1
    assert count(store, store.schema.batch) == 1
    assert store.batch_state("B1") == "stored"


def test_store_same_key_and_version_same_content_is_a_duplicate(store: SqlStore) -> None:
    store.write(batch("B1", records(record("SBXX"), record("SL"))))
    result = store.write(batch("B2", records(record("SBXX"), record("SL"))))
    assert (result.stored, result.duplicates, result.conflict_count) == (0, 2, 0)
    assert count(store, element(store, "SBXX")) == 1
    assert count(store, store.schema.conflict) == 0


def test_store_same_key_and_version_other_content_is_a_kept_conflict(store: SqlStore) -> None:
    store.write(batch("B1", records(record("SBXX"))))
    other = records(record("SBXX", SQRMC="李四"))
    result = store.write(batch("B2", other))
    assert (result.stored, result.duplicates, result.conflict_count) == (0, 0, 1)
    conflict = result.conflicts[0]
    assert (conflict.element, conflict.key_text, conflict.version) == ("SBXX", "SB0001", 1)
    assert conflict.incoming_digest == other[0].digest() != conflict.stored_digest
    c = store.schema.conflict
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(c)).one()._mapping
        kept = conn.execute(sa.select(element(store, "SBXX").c.SQRMC)).scalar_one()
    assert json.loads(row[c.c.PAYLOAD])["SQRMC"] == "李四"
    assert row[c.c.STORED_DIGEST] == conflict.stored_digest
    assert row[c.c.BATCH_ID] == "B2"
    assert kept == "张三"  # the stored version is never overwritten
    assert store.write(batch("B2", other)).conflict_count == 1  # redelivery reports it again
    assert count(store, c) == 1


def test_store_keeps_every_version_and_latest_picks_the_highest(store: SqlStore) -> None:
    store.write(batch("B1", records(record("SBXX"), record("SBXX", SBLSH="SB0002"))))
    store.write(batch("B2", records(record("SBXX", SJBBH="3", SQRMC="王五"),
                                    record("SBXX", SJBBH="2", SQRMC="李四"))))
    assert count(store, element(store, "SBXX")) == 4
    with store.engine.connect() as conn:
        rows = conn.execute(latest(store, "SBXX")).mappings().all()
    t = element(store, "SBXX")
    found = {(r[t.c.SBLSH.name], r[t.c.SJBBH.name], r[t.c.SQRMC.name]) for r in rows}
    assert found == {("SB0001", 3, "王五"), ("SB0002", 1, "张三")}


def test_store_latest_works_for_composite_keys(store: SqlStore) -> None:
    store.write(batch("B1", records(record("SPGC"), record("SPGC", BZH="2"),
                                    record("SPGC", SJBBH="2", SPYJ="补充意见"))))
    t = element(store, "SPGC")
    with store.engine.connect() as conn:
        rows = conn.execute(latest(store, "SPGC")).mappings().all()
    assert sorted((r[t.c.BZH.name], r[t.c.SJBBH.name]) for r in rows) == [(1, 2), (2, 1)]


def test_store_keeps_the_largest_amounts_the_xsd_accepts_exactly(store: SqlStore) -> None:
    # Amount: totalDigits=16, fractionDigits=2. A float or NUMERIC(16, 2) loses these.
    amounts = ("9999999999999999", "99999999999999.99", "123456789012345.6",
               "9007199254740993", "0.01")
    recs = records(*(record("SF", JKDH=f"J{i}", SFJE=v) for i, v in enumerate(amounts)))
    assert store.write(batch("B1", recs)).stored == len(amounts)
    t = element(store, "SF")
    with store.engine.connect() as conn:
        kept = {jkdh: sfje for jkdh, sfje in conn.execute(sa.select(t.c.JKDH, t.c.SFJE))}
    assert kept == {f"J{i}": Decimal(v) for i, v in enumerate(amounts)}
    assert store.write(batch("B2", recs)).duplicates == len(amounts)


def test_store_refuses_a_batch_id_reused_for_other_content(store: SqlStore) -> None:
    store.write(batch("B1", records(record("SBXX")), sha="a" * 64))
    with pytest.raises(RejectedBatch, match="batch id reused") as info:
        store.write(batch("B1", records(record("SL")), sha="b" * 64))
    assert isinstance(info.value, BatchRefused) and info.value.reason == "batch-id-reused"
    assert count(store, element(store, "SL")) == 0


def test_store_batch_is_one_transaction(store: SqlStore) -> None:
    name = element(store, "SL").name

    def fail_on_sl(conn, cursor, statement, parameters, context, executemany):  # type: ignore
        if statement.lstrip().upper().startswith("INSERT") and name in statement:
            raise sa.exc.OperationalError(statement, parameters, Exception("disk I/O error"))

    sa.event.listen(store.engine, "before_cursor_execute", fail_on_sl)
    try:
        with pytest.raises(RetriableError):
            store.write(batch("B1", records(record("SBXX"), record("SL"), record("BJ"))))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", fail_on_sl)
    assert count(store, element(store, "SBXX")) == 0
    assert count(store, store.schema.batch) == 0
    assert store.batch_state("B1") is None
    assert store.write(batch("B1", records(record("SBXX"), record("SL")))).stored == 2


@pytest.mark.parametrize("collisions", [1, 2])
def test_store_a_key_taken_is_read_again_once_then_is_poison(store: SqlStore,
                                                              collisions: int) -> None:
    # Once: a racing worker committed the key, and the re-read sees its row. Twice: no
    # race (MySQL's case-folding collation did this): not an outage to wait out.
    name, left = element(store, "SBXX").name, [collisions]

    def key_taken(conn, cursor, statement, parameters, context, executemany):  # type: ignore
        if statement.lstrip().upper().startswith("INSERT") and name in statement and left[0]:
            left[0] -= 1
            raise sa_exc.IntegrityError(statement, parameters, Exception("Duplicate entry"))

    sa.event.listen(store.engine, "before_cursor_execute", key_taken)
    try:
        if collisions == 1:
            assert store.write(batch("B1", records(record("SBXX")))).stored == 1
        else:
            with pytest.raises(FatalError, match=r"Duplicate entry.*again after a re-read"):
                store.write(batch("B1", records(record("SBXX"))))
            assert store.batch_state("B1") is None
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", key_taken)


def test_store_keeps_failed_batches_once_per_body(store: SqlStore) -> None:
    failed = FailedBatch("B9", "n1", "bad-signature", "signature does not verify",
                         b"\x00sealed", "430000.430100.430102.n1",
                         {"x-exgate-node": "n1"}, "u-n1", NOW)
    store.record_failed(failed)
    store.record_failed(failed)
    assert count(store, store.schema.failed) == 1
    assert store.batch_state("B9") == "failed"
    f = store.schema.failed
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(f)).one()._mapping
    assert row[f.c.BODY] == b"\x00sealed" and row[f.c.REASON] == "bad-signature"
    assert json.loads(row[f.c.HEADERS]) == {"x-exgate-node": "n1"}


def refusal(reason: str, body: bytes, node_id: str = "n1") -> FailedBatch:
    return FailedBatch("B1", node_id, reason, f"{reason} detail", body,
                       f"430000.430100.430102.{node_id}", {"x-exgate-node": "n1"},
                       f"u-{node_id}", NOW)


def outstanding(store: SqlStore) -> list[str]:
    f = store.schema.failed
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(f.c.REASON).where(f.c.REPLAYED_AT.is_(None))
                                 .order_by(f.c.FAILED_ID)).scalars())


def test_store_storing_a_batch_settles_its_earlier_refusals(store: SqlStore) -> None:
    store.record_failed(refusal("node-disabled", b"sealed once"))
    store.record_failed(refusal("processing-error", b"sealed again"))
    recs = records(record("SBXX"))
    store.write(batch("B1", recs))
    assert store.batch_state("B1") == "stored" and outstanding(store) == []
    # Refused again after it was stored (its receipt was lost), then redelivered: settled,
    # but not the refusal of other content under its ID.
    store.record_failed(refusal("node-disabled", b"sealed a third time"))
    store.record_failed(refusal("batch-id-reused", b"other content"))
    assert store.write(batch("B1", recs)).redelivered
    assert outstanding(store) == ["batch-id-reused"]


def test_store_storing_a_batch_leaves_other_nodes_and_bad_copies_outstanding(
        store: SqlStore) -> None:
    # n2 sent a message naming n1 under n1's batch ID: untrusted, filed under n2, and n1's
    # batch being stored says nothing about n2's message.
    store.record_failed(refusal("user-mismatch", b"forged", node_id="n2"))
    store.record_failed(refusal("node-disabled", b"n2 off", node_id="n2"))
    # Tampered or broken copies of n1's own batch: the good copy does not make them good.
    for reason in ("bad-signature", "sha256-mismatch", "invalid-payload"):
        store.record_failed(refusal(reason, reason.encode()))
    store.record_failed(refusal("unknown-key-version", b"key not yet registered"))
    store.write(batch("B1", records(record("SBXX"))))
    assert outstanding(store) == ["user-mismatch", "node-disabled", "bad-signature",
                                  "sha256-mismatch", "invalid-payload"]


def test_store_storing_a_batch_settles_refused_copies_that_claimed_its_content(
        store: SqlStore) -> None:
    """A stale key file made the node's first copy a bad signature; its resend with the
    right key is stored: nothing is left to do about the refused copy."""
    stored = batch("B1", records(record("SBXX")), sha="c0ffee" * 10 + "abcd")

    def claiming(reason: str, sha: str, node_id: str = "n1") -> FailedBatch:
        return replace(refusal(reason, f"{reason} {sha} {node_id}".encode(), node_id),
                       headers={"x-exgate-node": node_id, "x-exgate-sha256": sha})

    store.record_failed(claiming("bad-signature", stored.payload_sha256))
    store.record_failed(claiming("bad-ciphertext", stored.payload_sha256))
    store.record_failed(claiming("bad-signature", "other content"))
    store.record_failed(claiming("bad-signature", stored.payload_sha256, node_id="n2"))
    store.record_failed(replace(refusal("bad-signature", b"headers not JSON"),
                                headers={"x-exgate-sha256": 7}))
    store.write(stored)
    assert outstanding(store) == ["bad-signature"] * 3  # other content, n2's, no claim
    f = store.schema.failed
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(f)).scalar_one()
    assert kept == 5  # settled rows stay, with their reason, as the record of the refusal


def test_store_keeps_a_failed_batch_whose_ids_overflow_the_columns(store: SqlStore) -> None:
    # Whatever a hostile sender puts in message_id, x-exgate-node or user_id, the refusal
    # is kept: a driver error here would hold the message and retry it forever.
    failed = FailedBatch("B" * 255, "n" * 5000, "unknown-node", "node not in the registry",
                         b"\x00sealed", "430000.430100.430102.n1", {}, "u" * 300, NOW)
    store.record_failed(failed)
    store.record_failed(failed)
    f = store.schema.failed
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(f)).mappings()
    assert row[f.c.BATCH_ID.name] == "B" * BATCH_ID_LENGTH
    assert row[f.c.NODE_ID.name] == "n" * NODE_ID_LENGTH
    assert row[f.c.USER_ID.name] == "u" * 255
    assert row[f.c.BODY.name] == b"\x00sealed"


def test_store_keeps_a_heartbeat_whose_texts_overflow_the_columns(store: SqlStore) -> None:
    # The agent writes these texts; a long one must not hold the status queue forever.
    store.record_heartbeat(Heartbeat("n1", "4301020", NOW, NOW, "v" * 80, {}, None, "e" * 3000))
    h = store.schema.heartbeat
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(h)).mappings()
    assert (row[h.c.DIVISION.name], row[h.c.VERSION.name]) == ("430102", "v" * 50)
    assert row[h.c.LAST_ERROR.name] == "e" * 2000


def test_store_nodes_receipts_and_heartbeats(store: SqlStore) -> None:
    store.mirror_node(NodeInfo("n1", "430102", "u-n1", "active", (1, 2)))
    store.mirror_node(NodeInfo("n1", "430102", "u-n1", "disabled", (1, 2)), seen_at=NOW)
    store.record_receipt(ReceiptRow("B1", "n1", "stored", {"status": "stored"}, NOW))
    store.record_heartbeat(Heartbeat("n1", "430102", NOW, NOW, "0.1.0",
                                     {"pending_batches": 3}, 1.5, None))
    n = store.schema.node
    with store.engine.connect() as conn:
        node = conn.execute(sa.select(n)).one()._mapping
    assert node[n.c.STATUS] == "disabled" and node[n.c.KEY_VERSIONS] == "1,2"
    assert node[n.c.LAST_SEEN_AT] == NOW
    assert count(store, store.schema.receipt) == 1
    assert count(store, store.schema.heartbeat) == 1
    assert store.batch_state("nope") is None


def beats(store: SqlStore) -> list[tuple[str, datetime]]:
    h = store.schema.heartbeat
    with store.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(
            sa.select(h.c.NODE_ID, h.c.RECEIVED_AT).order_by(h.c.NODE_ID, h.c.RECEIVED_AT))]


def beat(node_id: str, hours_ago: float) -> Heartbeat:
    at = NOW - timedelta(hours=hours_ago)
    return Heartbeat(node_id, "430102", at, at, "0.1.0", {}, None, None)


def test_store_prunes_old_heartbeats_but_each_nodes_latest(store: SqlStore) -> None:
    for node_id, hours in (("n1", 300), ("n1", 200), ("n1", 1), ("n1", 0),
                           ("n2", 400), ("n2", 300),       # silent for days: keeps its last
                           ("n3", 250)):                   # one beat only: kept
        store.record_heartbeat(beat(node_id, hours))
    store.record_heartbeat(beat("n2", 300))                # same time as another: one stays
    cutoff = NOW - timedelta(days=7)
    assert store.prune_heartbeats(cutoff, 100) == 4
    assert beats(store) == [("n1", NOW - timedelta(hours=1)), ("n1", NOW),
                            ("n2", NOW - timedelta(hours=300)),
                            ("n3", NOW - timedelta(hours=250))]
    assert store.prune_heartbeats(cutoff, 100) == 0


def test_store_prunes_at_most_the_limit_per_call(store: SqlStore) -> None:
    for hours in range(200, 205):
        store.record_heartbeat(beat("n1", hours))
    store.record_heartbeat(beat("n1", 0))
    cutoff = NOW - timedelta(days=7)
    assert [store.prune_heartbeats(cutoff, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert beats(store) == [("n1", NOW)]


def test_store_a_missing_table_is_fatal_not_an_outage(store: SqlStore) -> None:
    # A table the store lacks is no outage: waiting will not bring it back.
    element(store, "SL").drop(store.engine)
    with pytest.raises(FatalError) as raised:
        store.write(batch("B1", records(record("SL"))))
    assert not isinstance(raised.value, RetriableError)
    assert store.write(batch("B2", records(record("SBXX")))).stored == 1


# -- SQLite only -------------------------------------------------------------------------


class _Standby(Exception):
    sqlstate = "25006"  # read_only_sql_transaction: psycopg raises it as an InternalError


def test_a_store_failed_over_to_a_read_only_standby_is_an_outage(store: SqlStore) -> None:
    with pytest.raises(RetriableError, match="will retry"), store._guard("store batch B1"):
        raise sa_exc.InternalError("INSERT INTO ST_BATCH …", {}, _Standby("read-only"))
    with pytest.raises(FatalError), store._guard("store batch B1"):
        raise sa_exc.ProgrammingError("INSERT INTO ST_BATCH …", {}, Exception("syntax"))


def test_a_locked_sqlite_file_is_a_retriable_error(store: SqlStore, tmp_path: Path) -> None:
    locker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RetriableError, match="will retry"):
            store.write(batch("B1", records(record("SBXX"))))
    finally:
        locker.close()
    assert store.write(batch("B1", records(record("SBXX")))).stored == 1


def test_a_full_disk_holds_the_batch_whole_and_it_lands_once_there_is_room(
        store: SqlStore) -> None:
    store.write(batch("B0", records(record("SBXX", SBLSH="SB-FIRST"))))
    many = records(*(record("SBXX", SBLSH=f"SB{i:04d}", SQRMC="长" * 50) for i in range(300)))

    def no_room(dbapi_connection: sqlite3.Connection, *_: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own limit

    sa.event.listen(store.engine, "checkout", no_room)
    try:
        with pytest.raises(RetriableError, match="disk is full; will retry"):
            store.write(batch("B1", many))
    finally:
        sa.event.remove(store.engine, "checkout", no_room)
        store.engine.dispose()  # the capped connections go; new ones have room
    assert count(store, element(store, "SBXX")) == 1  # nothing of B1 half-written
    assert store.batch_state("B1") is None
    landed = store.write(batch("B1", many))
    assert (landed.stored, landed.duplicates) == (300, 0)
    assert count(store, element(store, "SBXX")) == 301


def test_the_sqlite_store_runs_in_wal_mode(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.parametrize("dialect", [postgresql.dialect(), mysql.dialect(), oracle.dialect(),
                                     sqlite.dialect()], ids=lambda d: d.name)
def test_store_ddl_compiles_for_every_backend(dialect: sa.engine.Dialect) -> None:
    schema = store_schema(dialect.name)
    assert len(schema.elements) == len(CATALOG.elements) == 14
    names = {t.name.upper() for t in schema.metadata.sorted_tables}
    assert names == {f"ST_{code}" for code in CATALOG.elements} | set(CONTROL_TABLES)
    for table in schema.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=dialect))
        assert "CREATE TABLE" in ddl
    sf = str(CreateTable(schema.elements["SF"].table).compile(dialect=dialect)).upper()
    assert ("VARCHAR(19)" if dialect.name == "sqlite" else "NUMERIC(18, 2)") in sf
    sbcl = str(CreateTable(schema.elements["SBCL"].table).compile(dialect=dialect)).upper()
    assert "PRIMARY KEY (SBLSH, CLXH, SJBBH)" in sbcl.replace('"', "").replace("`", "")


def test_element_tables_follow_the_catalogue() -> None:
    schema = store_schema("sqlite")
    for code, spec in CATALOG.elements.items():
        table = schema.elements[code].table
        assert set(spec.fields) | {"DIGEST", "BATCH_ID", "NODE_ID", "STORED_AT"} \
            == {c.key for c in table.columns}
        assert [c.key for c in table.primary_key.columns] == [*spec.key, "SJBBH"]


def test_oracle_ddl_uses_identity_and_nvarchar() -> None:
    schema = store_schema("oracle")
    failed = str(CreateTable(schema.failed).compile(dialect=oracle.dialect()))
    assert "GENERATED BY DEFAULT AS IDENTITY" in failed
    assert "NVARCHAR2(2000)" in failed

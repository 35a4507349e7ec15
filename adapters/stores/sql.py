"""The SQL central store: SQLAlchemy Core on SQLite (default), PostgreSQL, MySQL, Oracle.

A batch is written in one transaction together with its ``ST_BATCH`` row:

- the ``ST_BATCH`` row is looked up first: the same batch ID with the same payload
  sha256 is a redelivery (nothing changes), with another sha256 it is refused;
- each element's records are written by ``sql_rows.ElementWriter``: new (key, SJBBH)
  rows are inserted with one ``executemany``, equal digests are duplicates (ignored)
  and other digests are conflicts, kept in ``ST_CONFLICT`` with the incoming payload;
- the node's outstanding refusals of the batch ID in ``ST_FAILED_BATCH`` whose reason
  storing cures (``SETTLED_BY_STORING``: node disabled, unknown key version, processing
  error, dead-lettered), or whose refused copy claimed this very content (a bad
  signature from a stale key file), get ``REPLAYED_AT``, whether an operator's replay
  or the node's resend stored it.

Two workers racing on the same key either wait for each other's commit (``ON CONFLICT
DO NOTHING`` on SQLite and PostgreSQL, whose lookup then sees the other's row) or make
one transaction fail on the primary key; the write is then run once more, and sees the
other's row. A key that still collides after that re-read is no race (a collation that
folds what the look-up told apart, say): ``FatalError``, which counts toward poison.
All times in the store are naive Beijing time, like the records' own times.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from adapters.db_connect import engine_url, shown_url
from adapters.stores.base import (
    BATCH_ID_REUSED,
    BATCH_ID_REUSED_REASON,
    SETTLED_BY_STORING,
    BatchRefused,
    BatchState,
    Conflict,
    FailedBatch,
    Heartbeat,
    IncomingBatch,
    NodeInfo,
    ReceiptRow,
    WriteResult,
)
from adapters.stores.sql_coverage import cover
from adapters.stores.sql_engine import READ_ONLY, SQLITE_BUSY_S, create_store_engine
from adapters.stores.sql_errors import Guard, first_line, key_taken
from adapters.stores.sql_rows import ElementWriter
from adapters.stores.sql_schema import (
    BATCH_ID_LENGTH,
    NODE_ID_LENGTH,
    StoreSchema,
    store_schema,
)
from adapters.stores.sql_values import cut, naive, now_beijing, to_json
from schemas.errors import ConfigError, FatalError, RetriableError
from schemas.records import Record

__all__ = ["MIGRATIONS", "SqlStore"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Alembic's ``context`` is a module-global proxy: two migrations at once in one process
# (several gateways in one process, as the demo runs them) tear it down under each other.
_MIGRATE_LOCK = threading.Lock()


class SqlStore:
    """A level's store at a SQLAlchemy URL; ``migrate()`` brings its tables up to date."""

    def __init__(self, url: str | URL, *, sqlite_busy_s: float = SQLITE_BUSY_S,
                 create: bool = True) -> None:
        self.url = engine_url(url)
        try:
            self._engine = create_store_engine(self.url, sqlite_busy_s, create)
        except (sa_exc.NoSuchModuleError, ImportError, sa_exc.ArgumentError) as exc:
            raise ConfigError(f"store url {self.redacted_url}: {exc}",
                              zh=f"监察库 URL {self.redacted_url}：{exc}") from exc
        self.schema: StoreSchema = store_schema(self._engine.dialect.name)
        self._writers: dict[str, ElementWriter] = {}
        self._write_turn: AbstractContextManager[Any] = (
            threading.Lock() if self.url.get_backend_name() == "sqlite" else nullcontext())

    @property
    def redacted_url(self) -> str:
        return shown_url(self.url)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def migrate(self) -> None:
        """Run the Alembic migrations up to head (idempotent; no alembic.ini needed)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _MIGRATE_LOCK, self._guard("migrate the store"), self._engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    # -- batches ---------------------------------------------------------------------

    def write(self, batch: IncomingBatch) -> WriteResult:
        try:
            return self._write_once(batch)
        except RetriableError as exc:
            if not key_taken(exc):
                raise
        # A key taken by a racing worker: its row is committed, and this look-up sees it.
        try:
            return self._write_once(batch)
        except RetriableError as exc:
            if not key_taken(exc):
                raise
            # No race any more: retrying would hold the batch for hours; count it as poison.
            why = first_line(exc.__cause__ or exc)
            raise FatalError(f"cannot store batch {batch.batch_id} at {self.redacted_url}: "
                             f"{why} (again after a re-read)") from exc

    def _write_once(self, batch: IncomingBatch) -> WriteResult:
        with self._writing(f"store batch {batch.batch_id}") as conn:
            done = self._stored_before(conn, batch)
            if done is not None:
                return done
            now = now_beijing()
            stored, duplicates, conflicts = 0, 0, []
            per_element: dict[str, int] = {}
            for element, records in _by_element(batch.records).items():
                outcome = self._writer(element).write(conn, records, batch, now)
                stored += outcome.stored
                duplicates += outcome.duplicates
                conflicts.extend(outcome.conflicts)
                per_element[element] = outcome.stored
            cover(conn, self.schema.coverage, batch.node_id, per_element, now)
            conn.execute(insert(self.schema.batch).values(
                BATCH_ID=batch.batch_id, NODE_ID=batch.node_id,
                NODE_DIVISION=batch.node_division, SCHEMA_VERSION=batch.schema_version,
                PAYLOAD_SHA256=batch.payload_sha256, RECORDS=len(batch.records),
                STORED=stored, DUPLICATES=duplicates, CONFLICTS=len(conflicts),
                STATE="stored", RECEIVED_AT=naive(batch.received_at), STORED_AT=now))
            self._resolve_failed(conn, batch, now)
            return WriteResult(batch.batch_id, stored, duplicates, tuple(conflicts))

    def _stored_before(self, conn: Connection, batch: IncomingBatch) -> WriteResult | None:
        t = self.schema.batch
        row = conn.execute(select(t.c.PAYLOAD_SHA256, t.c.STORED, t.c.DUPLICATES)
                           .where(t.c["BATCH_ID"] == batch.batch_id)).first()
        if row is None:
            return None
        if row.PAYLOAD_SHA256 != batch.payload_sha256:  # noqa: SIM300
            raise BatchRefused(
                BATCH_ID_REUSED_REASON,
                f"{BATCH_ID_REUSED}: batch {batch.batch_id} was stored with payload sha256 "
                f"{row.PAYLOAD_SHA256[:16]}…, this one has {batch.payload_sha256[:16]}…",
                batch_id=batch.batch_id, node_id=batch.node_id)
        self._resolve_failed(conn, batch, now_beijing())
        c = self.schema.conflict
        conflicts = tuple(
            Conflict(r.ELEMENT, r.KEY_TEXT, r.SJBBH, r.STORED_DIGEST, r.INCOMING_DIGEST)
            for r in conn.execute(select(c).where(c.c["BATCH_ID"] == batch.batch_id)
                                  .order_by(c.c.CONFLICT_ID)))
        return WriteResult(batch.batch_id, row.STORED, row.DUPLICATES, conflicts,
                           redelivered=True)

    def _resolve_failed(self, conn: Connection, batch: IncomingBatch, now: datetime) -> None:
        """The batch is stored: its node's refusals that storing it proves cured are settled.

        The node's own resend stores it as well as an operator's replay does; left
        outstanding, those rows kept the node yellow or red and the batch listed as failed.
        Only the same node's rows count: another node's refusal under this message ID (an
        untrusted one is filed under the sender) is about that node. Settled are:

        - the reasons in ``SETTLED_BY_STORING``, about the delivery's circumstances;
        - a refusal of a copy's form (a bad signature from a stale key file, a damaged
          ciphertext…) whose headers claimed this very content (``x-exgate-sha256``):
          the node's content is now stored, so nothing is left to do. The row stays,
          with its reason, as the record of what was refused.

        A refused copy that claimed other content, or reused the ID for it, stays open.
        """
        f = self.schema.failed
        mine = and_(f.c["BATCH_ID"] == batch.batch_id, f.c["NODE_ID"] == batch.node_id,
                    f.c.REPLAYED_AT.is_(None))
        # One read on the usual path, where the node has no refusal of this batch open.
        settled = [
            failed_id for failed_id, reason, headers
            in conn.execute(select(f.c.FAILED_ID, f.c.REASON, f.c.HEADERS).where(mine))
            if reason in SETTLED_BY_STORING
            or _claimed_sha256(headers) == batch.payload_sha256]
        if settled:
            conn.execute(update(f).where(f.c.FAILED_ID.in_(settled)).values(REPLAYED_AT=now))

    def _writer(self, element: str) -> ElementWriter:
        writer = self._writers.get(element)
        if writer is None:  # two threads may both build it: the same writer either way
            writer = ElementWriter(self.schema.elements[element], self._engine.dialect,
                                   self.schema.conflict)
            self._writers[element] = writer
        return writer

    # -- failures, receipts, heartbeats, nodes ------------------------------------------

    def record_failed(self, failed: FailedBatch) -> None:
        t = self.schema.failed
        body_sha = hashlib.sha256(failed.body).hexdigest()
        # The IDs come from whoever sent the message: cut to the columns, so that keeping
        # the refusal can never fail (and hold the message) on a driver's length check.
        batch_id = failed.batch_id[:BATCH_ID_LENGTH]
        node_id, user_id = cut(failed.node_id, NODE_ID_LENGTH), cut(failed.user_id, 255)
        with self._writing(f"keep failed batch {batch_id}") as conn:
            seen = conn.execute(select(t.c.FAILED_ID).where(and_(
                t.c["BATCH_ID"] == batch_id, t.c["BODY_SHA256"] == body_sha))).first()
            if seen is not None:  # the same refused message again: keep one copy
                return
            conn.execute(insert(t).values(
                BATCH_ID=batch_id, NODE_ID=node_id, REASON=failed.reason[:50],
                DETAIL=failed.detail[:2000], ROUTING_KEY=failed.routing_key[:255],
                USER_ID=user_id, HEADERS=to_json(failed.headers), BODY_SHA256=body_sha,
                BODY=failed.body, RECEIVED_AT=naive(failed.received_at)))

    def record_receipt(self, receipt: ReceiptRow) -> None:
        with self._writing(f"keep receipt of batch {receipt.batch_id}") as conn:
            conn.execute(insert(self.schema.receipt).values(
                BATCH_ID=receipt.batch_id, NODE_ID=receipt.node_id, STATUS=receipt.status,
                BODY=to_json(receipt.body), SENT_AT=naive(receipt.sent_at)))

    def record_heartbeat(self, heartbeat: Heartbeat) -> None:
        n = self.schema.node
        with self._writing(f"keep heartbeat of node {heartbeat.node_id}") as conn:
            conn.execute(insert(self.schema.heartbeat).values(
                NODE_ID=heartbeat.node_id, DIVISION=cut(heartbeat.division, 6),
                SENT_AT=None if heartbeat.sent_at is None else naive(heartbeat.sent_at),
                RECEIVED_AT=naive(heartbeat.received_at), VERSION=cut(heartbeat.version, 50),
                OUTBOX=to_json(heartbeat.outbox), SOURCE_LAG_S=heartbeat.source_lag_s,
                LAST_ERROR=None if heartbeat.last_error is None else heartbeat.last_error[:2000]))
            conn.execute(update(n).where(n.c["NODE_ID"] == heartbeat.node_id)
                         .values(LAST_SEEN_AT=naive(heartbeat.received_at)))

    def prune_heartbeats(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` heartbeats received before ``before``; how many went.

        A node's latest heartbeat stays however old (the status shows when a silent node
        was last heard): a beat goes only when a later one of its node exists, found
        through the (node, time) index. One short transaction; callers repeat while
        ``limit`` went. The ids are selected first: MySQL cannot delete from a table its
        own subquery reads.
        """
        h = self.schema.heartbeat
        later = h.alias("LATER")
        superseded = exists().where(
            later.c["NODE_ID"] == h.c.NODE_ID,
            or_(later.c["RECEIVED_AT"] > h.c.RECEIVED_AT,
                and_(later.c["RECEIVED_AT"] == h.c.RECEIVED_AT,
                     later.c["HEARTBEAT_ID"] > h.c.HEARTBEAT_ID)))
        doomed = (select(h.c.HEARTBEAT_ID)
                  .where(h.c["RECEIVED_AT"] < naive(before), superseded).limit(limit))
        with self._writing("prune old heartbeats") as conn:
            ids = list(conn.execute(doomed).scalars())
            if ids:
                conn.execute(delete(h).where(h.c.HEARTBEAT_ID.in_(ids)))
            return len(ids)

    def mirror_node(self, node: NodeInfo, seen_at: datetime | None = None) -> None:
        n = self.schema.node
        values: dict[str, Any] = {
            "DIVISION": node.division, "BROKER_USER": node.broker_user,
            "STATUS": node.status, "UPDATED_AT": now_beijing(),
            "KEY_VERSIONS": ",".join(str(v) for v in node.key_versions)}
        if seen_at is not None:
            values["LAST_SEEN_AT"] = naive(seen_at)
        with self._writing(f"mirror node {node.node_id}") as conn:
            done = conn.execute(update(n).where(n.c["NODE_ID"] == node.node_id).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(n).values(NODE_ID=node.node_id, **values))

    def resolve_conflicts(self, conflict_ids: Sequence[int], at: datetime, by: str,
                          note: str) -> set[int]:
        """Mark these conflicts resolved at ``at`` by ``by``, with ``note`` saying why; the
        IDs this call resolved. One already resolved (by another call too, meanwhile) or
        not there is left as it is: a resolution is never overwritten. No record
        changes: see ``gateway.conflicts``."""
        c = self.schema.conflict
        wanted = sorted(set(conflict_ids))
        resolve = (update(c).where(c.c["CONFLICT_ID"] == bindparam("b_id"),
                                   c.c.RESOLVED_AT.is_(None))
                   .values(RESOLVED_AT=naive(at), RESOLVED_BY=by, RESOLUTION_NOTE=note))
        with self._writing(f"resolve conflicts {wanted[:5]}") as conn:
            # One statement per ID: its row count says whether this call resolved it.
            return {ident for ident in wanted
                    if conn.execute(resolve, {"b_id": ident}).rowcount == 1}

    def batch_state(self, batch_id: str) -> BatchState | None:
        b, f = self.schema.batch, self.schema.failed
        with self.reading(f"look up batch {batch_id}") as conn:
            if conn.execute(select(b.c.STATE).where(b.c["BATCH_ID"] == batch_id)).first():
                return "stored"
            failed = conn.execute(select(func.count()).select_from(f).where(and_(
                f.c["BATCH_ID"] == batch_id, f.c.REPLAYED_AT.is_(None)))).scalar_one()
            return "failed" if failed else None

    # -- errors ----------------------------------------------------------------------------

    def _guard(self, doing: str) -> Guard:
        return Guard(doing, self.redacted_url)

    @contextmanager
    def reading(self, doing: str) -> Iterator[Connection]:
        """A read-only connection, errors mapped: on SQLite it reads a WAL snapshot and
        never takes the write lock (``sql_engine._on_begin``), so it neither waits for the
        gateway's writes nor holds them up."""
        with self._guard(doing), self._engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            yield conn

    @contextmanager
    def _writing(self, doing: str) -> Iterator[Connection]:
        """A write transaction, errors mapped; on SQLite the threads queue up for it here.

        SQLite admits one writer at a time, and a thread that finds it busy sleeps in
        SQLite's busy handler (up to 100 ms a try) however soon the writer is done; a
        lock hands the turn over at once. Other processes still meet the busy handler.
        """
        with self._write_turn, self._guard(doing), self._engine.begin() as conn:
            yield conn


# -- rows -----------------------------------------------------------------------------------


def _by_element(records: Sequence[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.element, []).append(record)
    return grouped


def _claimed_sha256(headers_json: str) -> str | None:
    """The plain content's sha256 a kept message's headers claimed (None: none, or
    headers that are not a JSON object)."""
    try:
        headers = json.loads(headers_json)
    except ValueError:
        return None
    claimed = headers.get("x-exgate-sha256") if isinstance(headers, dict) else None
    return claimed if isinstance(claimed, str) else None

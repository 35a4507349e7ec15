"""The outbox's SQLite schema, its pragmas and its migrations.

The outbox is the agent's store-and-forward journal: a record is durable here before
its source marks it taken, and stays here until every level has receipted its batch.

Durability choice: WAL with ``synchronous=FULL``. In WAL mode ``NORMAL`` survives an
application crash (kill -9) but may roll back the last commits on power loss. Right
after a journal commit the source is told to mark its rows taken (SYNC_FLAG=1) or its
file moved to ``done/``; losing that commit on power loss would lose the records for
good, so every commit must reach the disk. The cost is one fsync per chunk of
hundreds of records, not per record.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from schemas.errors import FatalError
from schemas.writer import record_xml

__all__ = ["SCHEMA_VERSION", "SchemaTooNew", "configure", "current_version", "migrate"]

SCHEMA_VERSION = 4

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 30000",
    # Without a limit the WAL file keeps its high-water size after a checkpoint,
    # which would count against the disk budget for nothing.
    "PRAGMA journal_size_limit = 67108864",
)

_V1 = """
CREATE TABLE schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE batches (
    batch_id     TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'stored', 'failed')),
    created_at   REAL NOT NULL,
    sent_at      REAL,
    finished_at  REAL,
    record_count INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX batches_state ON batches (state, created_at);
CREATE TABLE records (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- journal order
    element      TEXT NOT NULL,
    record_key   TEXT NOT NULL,                      -- Record.key_text
    sjbbh        INTEGER NOT NULL,
    digest       TEXT NOT NULL,                      -- Record.digest(): content hash
    division     TEXT NOT NULL,
    payload      TEXT,            -- JSON {"key": [...], "fields": {...}}, NULL if compacted,
                                  -- from v3 the record's XML (record_xml), see _v3,
                                  -- NULL once its batch is stored (outbox.make_room)
    size         INTEGER NOT NULL,                   -- XML bytes, for batching (v3: exact)
    conflict     INTEGER NOT NULL DEFAULT 0,         -- same key+version, other content
    source       TEXT NOT NULL,
    origin       TEXT NOT NULL,
    line         INTEGER,
    journaled_at REAL NOT NULL,
    batch_id     TEXT REFERENCES batches (batch_id),
    UNIQUE (element, record_key, sjbbh, digest)
);
CREATE INDEX records_unbatched ON records (seq) WHERE batch_id IS NULL;
CREATE INDEX records_batch ON records (batch_id, seq);
CREATE TABLE receipts (
    batch_id     TEXT NOT NULL REFERENCES batches (batch_id),
    level        TEXT NOT NULL CHECK (level IN ('province', 'city', 'county')),
    status       TEXT NOT NULL CHECK (status IN ('stored', 'failed')),
    stored_count INTEGER NOT NULL DEFAULT 0,
    failed_count INTEGER NOT NULL DEFAULT 0,
    reasons      TEXT,                               -- JSON
    received_at  REAL NOT NULL,
    PRIMARY KEY (batch_id, level)
);
CREATE TABLE source_state (
    source     TEXT PRIMARY KEY,
    progress   TEXT NOT NULL,                        -- JSON, Chunk.progress
    version    INTEGER NOT NULL,                     -- bumped on every write
    updated_at REAL NOT NULL
);
CREATE TABLE rejects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    origin      TEXT NOT NULL,
    line        INTEGER,
    element     TEXT,
    issues      TEXT NOT NULL,                       -- JSON list of Issue.to_json()
    digest      TEXT NOT NULL,                       -- of the issues, to drop re-reads
    rejected_at REAL NOT NULL,
    replayed_at REAL,
    UNIQUE (source, origin, line, element, digest)
);
"""

# SQLite treats NULLs as distinct in a UNIQUE constraint, so v1's constraint never
# matched a database row's reject (no line) or a file-level reject (no element), and a
# crash between journal and commit journaled those rejects again. Keep the oldest copy
# and make the rule NULL-safe.
_V2 = """
DELETE FROM rejects WHERE id NOT IN (
    SELECT MIN(id) FROM rejects
    GROUP BY source, origin, COALESCE(line, -1), COALESCE(element, ''), digest);
CREATE UNIQUE INDEX rejects_once
    ON rejects (source, origin, COALESCE(line, -1), COALESCE(element, ''), digest)
"""


def _v3(connection: sqlite3.Connection) -> None:
    """Payloads become the record as the batch document holds it (``record_xml``), and
    ``size`` its exact length in UTF-8 (it was an estimate).

    Written exactly as the publisher wrote these records from their JSON before, so a
    batch sent before the upgrade and sent again after it is byte for byte the same, as
    the gateways require of a resend.
    """
    rows = connection.execute(
        "SELECT seq, element, payload FROM records WHERE payload IS NOT NULL").fetchall()
    for seq, element, payload in rows:
        xml = record_xml((element, json.loads(payload)["fields"]))
        connection.execute("UPDATE records SET payload = ?, size = ? WHERE seq = ?",
                           (xml, len(xml.encode()), seq))


# Upkeep forgets replayed rejects oldest first (``forget_replayed_rejects``): without an
# index each of its transactions scanned and sorted the whole table under the write lock.
_V4 = """
CREATE INDEX rejects_replayed ON rejects (replayed_at) WHERE replayed_at IS NOT NULL
"""

Step = str | Callable[[sqlite3.Connection], None]
_MIGRATIONS: dict[int, Step] = {1: _V1, 2: _V2, 3: _v3, 4: _V4}


def configure(connection: sqlite3.Connection) -> None:
    """Apply the per-connection pragmas; WAL is refused on some network file systems."""
    for pragma in _PRAGMAS:
        row = connection.execute(pragma).fetchone()
        if pragma.startswith("PRAGMA journal_mode") and (row is None or row[0] != "wal"):
            raise sqlite3.OperationalError(f"WAL mode unavailable (got {row})")


def current_version(connection: sqlite3.Connection) -> int:
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_meta'").fetchone()
    if exists is None:
        return 0
    row = connection.execute("SELECT value FROM schema_meta WHERE key = 'version'").fetchone()
    return int(row[0]) if row else 0


class SchemaTooNew(FatalError):
    """The outbox was written by a newer exgate, whose records this one cannot read."""


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION`` step by step; returns the old version.

    Each step runs in its own transaction with its version bump, so a crash mid-way
    leaves a consistent, resumable schema.
    """
    start = current_version(connection)
    if start > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"its schema version {start} was written by a newer exgate than this one "
            f"(version {SCHEMA_VERSION}); install that exgate version or a later one on this "
            "machine, then start the agent again",
            zh=f"其结构版本 {start} 由更新版本的 exgate 写入（本程序为 {SCHEMA_VERSION}）；"
               "请在本机安装该版本或更新的 exgate，再启动代理")
    for version in range(start + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            _run(_MIGRATIONS[version], connection)
            connection.execute(
                "INSERT OR REPLACE INTO schema_meta (key, value) VALUES ('version', ?)",
                (str(version),))
            connection.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on some errors (a full disk, out of memory): a
            # second ROLLBACK would fail and hide the error that matters.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return start


def _run(step: Step, connection: sqlite3.Connection) -> None:
    if callable(step):
        step(connection)
        return
    for statement in step.split(";"):
        if statement.strip():
            connection.execute(statement)

"""Database mode into the outbox: ``EX_SBXX`` rows in PostgreSQL → journaled records.

- exgate: the real ``DatabaseSource`` (flag strategy, default page size) read page by
  page, each page journaled with ``Outbox.journal`` (sealing the batches it fills, at the
  default batch size) and then ``commit`` (SYNC_FLAG=1), exactly as the agent's poll
  does it, with the startup heap frozen as ``agent run``
  freezes it (``adapters/heap.py``; the other figures run frozen too);
- raw limit: one bare ``SELECT`` of the same rows through the driver, then one
  ``executemany`` into a SQLite table (same pragmas as the outbox) in one transaction;
- validated floor (for reading the figure, no target): the raw limit with
  ``check_fields`` run on every row between the SELECT and the executemany;
- naive: a row-by-row loop (read one row, validate it, insert it into SQLite and
  commit, set its flag), once with ``check_fields`` and once with xmlschema per row,
  measured on a few thousand rows and reported as a rate.

The bench starts its own throwaway PostgreSQL on loopback in a temp folder (the test
launcher from ``tests/servers.py``, so run it from the repository root) and stops it
afterwards. Rates are rows per second of wall-clock time: the work is split between
this process and the server, so CPU time of one process would flatter either side.
The cluster runs with ``fsync=off`` like the tests; the outbox keeps ``synchronous=FULL``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, create_engine

from adapters.db_connect import engine_url
from adapters.frontdb_create import create_all
from adapters.heap import startup_frozen
from adapters.sources.base import SourceContext
from adapters.sources.database import database_source
from adapters.sources.db_tables import to_text
from bench._naive import fields_checker, xsd_record
from bench._registry import BenchConfig, Reference, Result, figure, measured_rate
from frontend_machine.config import OutboxConfig
from frontend_machine.outbox import Outbox
from schemas.catalog import load_catalog
from schemas.times import BEIJING

__all__ = ["agent_db"]

ELEMENT = "SBXX"
DIVISION = "430102"
SOURCE = "front"
_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL")

Validator = Callable[[dict[str, str | None]], bool]


@figure("agent-db", order=20)
def agent_db(config: BenchConfig) -> Result:
    records, naive_rows = config.records, min(config.naive_records, config.records // 2)
    fields = tuple(load_catalog().elements[ELEMENT].fields)
    with _postgres() as url:
        engine = create_engine(engine_url(url))
        try:
            _fill(engine, fields, records)
            work = config.workdir
            # As `agent run` does around its loop: what startup loaded is left out of the
            # full collections (adapters/heap.py), for every figure alike.
            with startup_frozen():
                raw = measured_rate(records, partial(_raw, engine, fields, work / "raw.db"))
                floor = measured_rate(records, partial(_raw, engine, fields, work / "floor.db",
                                                       _check_fields_validator()))
                naive_check = measured_rate(naive_rows, partial(
                    _naive, engine, fields, work / "naive-check.db", naive_rows,
                    _check_fields_validator()))
                naive_xsd = measured_rate(naive_rows, partial(
                    _naive, engine, fields, work / "naive-xsd.db", naive_rows,
                    _xmlschema_validator(fields)))
                _reset_flags(engine)
                exgate = measured_rate(records, partial(_exgate, url, engine, work, records))
        finally:
            engine.dispose()
    return Result(
        "agent-db", "exgate DatabaseSource → outbox", exgate, "rows/s",
        (Reference("raw SELECT + SQLite executemany", raw, "rows/s", exgate / raw, "≥ 40%",
                   as_percent=True),
         Reference("raw + check_fields per row", floor, "rows/s", exgate / floor, "n/a",
                   as_percent=True),
         Reference("naive per row (check_fields)", naive_check, "rows/s",
                   exgate / naive_check, "none: stricter than design §11's"),
         Reference("naive per row as design §11 has it (xmlschema)", naive_xsd, "rows/s",
                   exgate / naive_xsd, "≥ 20×")),
        f"{records:,} EX_{ELEMENT} rows in PostgreSQL on loopback, flag strategy, "
        f"wall clock, load {os.getloadavg()[0]:.1f}; naive on {naive_rows:,} rows each",
    )


@contextmanager
def _postgres() -> Iterator[str]:
    """A throwaway server and database for this figure; stopped and removed after."""
    try:
        from tests.servers import PostgresServer
    except ImportError as exc:
        raise RuntimeError("agent-db needs tests/servers.py: run `python -m bench` from the "
                           "repository root") from exc
    with PostgresServer() as server:
        yield server.create_database("bench")


# -- the input -------------------------------------------------------------------------------

def _fill(engine: Engine, fields: Sequence[str], records: int) -> None:
    """``records`` valid, distinct EX_SBXX rows, loaded with COPY, then analysed."""
    from tests.unit.adapters.front_rows import row

    create_all(engine.url)
    base = datetime.now(BEIJING).replace(tzinfo=None, microsecond=0) - timedelta(days=30)
    columns = ", ".join(f.lower() for f in fields)
    with closing(engine.raw_connection()) as conn:
        cursor = conn.cursor()
        with cursor.copy(f"COPY ex_sbxx ({columns}) FROM STDIN") as copy:
            for n in range(records):
                values = row(ELEMENT, n, base + timedelta(seconds=n))
                copy.write_row([values[f] for f in fields])
        conn.commit()
    _maintain(engine)


def _maintain(engine: Engine) -> None:
    with closing(engine.raw_connection()) as conn:
        conn.driver_connection.autocommit = True  # type: ignore[union-attr]
        conn.cursor().execute("VACUUM ANALYZE ex_sbxx")


def _reset_flags(engine: Engine) -> None:
    """Give the rows the naive loops took back to the source, as if never read."""
    with closing(engine.raw_connection()) as conn:
        conn.cursor().execute("UPDATE ex_sbxx SET sync_flag = 0, sync_time = NULL"
                              " WHERE sync_flag <> 0")
        conn.commit()
    _maintain(engine)


def _sqlite(path: Path, columns: Sequence[str]) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in _PRAGMAS:
        db.execute(pragma)
    db.execute(f"CREATE TABLE rows ({', '.join(columns)})")
    return db


# -- exgate ----------------------------------------------------------------------------------

def _exgate(url: str, engine: Engine, workdir: Path, records: int) -> int:
    context = SourceContext("bench-node", DIVISION, load_catalog(), "zh")
    options = {"url": url, "strategy": "flag", "tables": [ELEMENT]}
    box = OutboxConfig(workdir / "agent-db-outbox.db")
    with Outbox(box.path) as outbox, \
            database_source(SOURCE, options, context) as source:
        for chunk in source.read(outbox.source_state(SOURCE)):
            outbox.journal(SOURCE, chunk, seal_full=box.batch_limits)
            source.commit(chunk)
        journaled, rejected = outbox.record_count(), len(outbox.rejects())
    with closing(engine.raw_connection()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM ex_sbxx WHERE sync_flag = 1")
        (taken,) = cursor.fetchall()[0]
    if rejected or taken != journaled:
        raise RuntimeError(f"exgate journaled {journaled}, rejected {rejected}, "
                           f"flagged {taken} of {records}")
    return journaled


# -- raw limit -------------------------------------------------------------------------------

def _select(fields: Sequence[str]) -> str:
    # Times as text: SQLite takes them as they are, with no Python adapter in the way.
    cast = {"GXSJ", "SBSJ"}
    columns = ", ".join(f"{f.lower()}::text" if f in cast else f.lower() for f in fields)
    return f"SELECT row_id, {columns} FROM ex_sbxx WHERE sync_flag = 0"


def _raw(engine: Engine, fields: Sequence[str], path: Path,
         valid: Validator | None = None) -> int:
    """One SELECT, one executemany; with ``valid``, each row validated in between."""
    with closing(engine.raw_connection()) as conn, \
            closing(_sqlite(path, ("row_id", *fields))) as db:
        cursor = conn.cursor()
        cursor.execute(_select(fields) + " ORDER BY row_id")
        rows = cursor.fetchall()
        conn.rollback()
        if valid is not None and not all(
                valid(_texts(fields, row[1:])) for row in rows):
            raise RuntimeError("a row did not validate")
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * (len(fields) + 1))})", rows)
        db.execute("COMMIT")
        return int(db.execute("SELECT count(*) FROM rows").fetchone()[0])


def _texts(fields: Sequence[str], values: Sequence[object]) -> dict[str, str | None]:
    return {f: to_text(v) for f, v in zip(fields, values, strict=True)}


# -- naive -----------------------------------------------------------------------------------

def _check_fields_validator() -> Validator:
    check = fields_checker(ELEMENT, DIVISION)
    return lambda fields: check(fields).valid


def _xmlschema_validator(fields: Sequence[str]) -> Validator:
    record = xsd_record(ELEMENT, fields)
    return lambda values: record(values) is not None


def _naive(engine: Engine, fields: Sequence[str], path: Path, rows: int,
           valid: Validator) -> int:
    """Read one row, validate it, insert and commit it, flag it: ``rows`` times."""
    insert = "INSERT INTO rows (origin, payload) VALUES (?, ?)"
    with closing(engine.raw_connection()) as conn, \
            closing(_sqlite(path, ("origin", "payload"))) as db:
        conn.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor = conn.cursor()
        for _ in range(rows):
            cursor.execute(_select(fields) + " ORDER BY row_id LIMIT 1")
            [first] = cursor.fetchall()
            values = _texts(fields, first[1:])
            if not valid(values):
                raise RuntimeError(f"naive validation refused row {first[0]}: {values}")
            db.execute("BEGIN")
            db.execute(insert, (f"EX_{ELEMENT}#{first[0]}", json.dumps(values)))
            db.execute("COMMIT")
            cursor.execute("UPDATE ex_sbxx SET sync_flag = 1, sync_time = localtimestamp"
                           " WHERE row_id = %s", (first[0],))
        return int(db.execute("SELECT count(*) FROM rows").fetchone()[0])

"""Writing one element's records of a batch, inside ``SqlStore.write``'s transaction.

Each record becomes a typed row (times, amounts and integers typed), then:

- on SQLite and PostgreSQL every row of the batch is offered to one
  ``INSERT … ON CONFLICT DO NOTHING`` executemany. When all of them went in (the usual
  case: new records) nothing is looked up at all. Otherwise the stored digests of the
  offered keys are read back: a row carrying this batch's ID was inserted just now (the
  batch ID is new, or ``ST_BATCH`` would have caught a redelivery), the others were
  stored before and are duplicates (same digest) or conflicts (kept in ``ST_CONFLICT``);
- elsewhere (MySQL, Oracle) the stored digests are looked up first, in chunks, and only
  the new rows are inserted.

A key twice in one batch is compared with its first occurrence before anything is
written. The work per column (how to parse a text, the driver's bind processor) is
found once per element table, not per field of every record; on SQLite a validated
time's text goes to the driver as the text SQLAlchemy would print for it, unparsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, Insert, Table, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from adapters.stores.base import Conflict, IncomingBatch
from adapters.stores.sql_schema import ElementTable
from schemas.records import Record

__all__ = ["ElementOutcome", "ElementWriter"]

_CHUNK = 300  # keys per lookup: stays under every driver's bind-parameter limit
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CANONICAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
_CONTROL_COLUMNS = ("DIGEST", "BATCH_ID", "NODE_ID", "STORED_AT")
# A canonical time that is a real one whatever the month: the days past the 28th (and
# year 0) are left to the parser, which knows the calendar.
_SURELY_REAL_TIME = re.compile(r"(?!0000)\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8]) "
                               r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d", re.ASCII)

Identity = tuple[Any, ...]


@dataclass
class ElementOutcome:
    """What writing one element's records did."""

    stored: int = 0
    duplicates: int = 0
    conflicts: list[Conflict] = field(default_factory=list)


class _Row(NamedTuple):  # one per record written: a tuple is far cheaper to make
    record: Record
    values: list[Any]  # the typed field values in ``ElementWriter.fields`` order
    digest: str


def _parser(type_name: str) -> Callable[[str], Any]:
    """Text → column value; an empty time, amount or integer is NULL."""
    if type_name == "Time":
        return _time
    if type_name == "Amount":
        return _amount
    if type_name in ("PositiveInt", "NonNegativeInt"):
        return _integer
    return _text


def _time(text: str) -> datetime | None:
    if text == "":
        return None
    # Validated times are canonical: fromisoformat reads those ~20x faster than strptime,
    # which stays the judge of anything else.
    if _CANONICAL_TIME.fullmatch(text):
        return datetime.fromisoformat(text)
    return datetime.strptime(text, _TIME_FORMAT)


def _amount(text: str) -> Decimal | None:
    return None if text == "" else Decimal(text)


def _integer(text: str) -> int | None:
    return None if text == "" else int(text)


def _text(text: str) -> str:
    return text


def _comparable(value: Any) -> Any:
    # Drivers hand back datetimes with microseconds 0 and Decimals with their own scale.
    if isinstance(value, Decimal):
        return value.normalize()
    return value


class ElementWriter:
    """How one element table is written on one dialect; build it once, reuse it."""

    def __init__(self, et: ElementTable, dialect: Dialect, conflict_table: Table) -> None:
        self.et = et
        self._conflict_table = conflict_table
        self.columns: tuple[str, ...] = tuple(et.table.c.keys())
        self.fields = tuple(c for c in self.columns if c not in _CONTROL_COLUMNS)
        specs = et.spec.fields
        self._key_at = tuple(self.fields.index(c) for c in (*et.spec.key, "SJBBH"))
        self._fast = _FastInsert.for_dialect(et.table, self.columns, dialect)
        # Only the typed columns need work; text columns take the field's text as is.
        typed_at = [(at, parser) for at, code in enumerate(self.fields)
                    if code in specs and (parser := _parser(specs[code].type_name)) is not _text]
        if self._fast is not None:
            typed_at = [(at, self._fast.binder(at, parser) if parser is _time
                         and at not in self._key_at else parser) for at, parser in typed_at]
        self._typed_at = tuple(typed_at)
        # Only an amount compares by its value rather than as the driver hands it back.
        key_types = {specs[c].type_name for c in et.spec.key if c in specs}
        self._identity: Callable[[Sequence[Any]], Identity] = (
            self._comparable_identity if "Amount" in key_types
            else itemgetter(*self._key_at))  # the key and SJBBH: always two or more

    def write(self, conn: Connection, records: Sequence[Record], batch: IncomingBatch,
              now: datetime) -> ElementOutcome:
        outcome = ElementOutcome()
        rows = self._first_occurrences(conn, records, batch, now, outcome)
        if self._fast is not None:
            self._offer_all(conn, rows, batch, now, outcome)
        else:
            self._insert_new(conn, rows, batch, now, outcome)
        return outcome

    def typed(self, record: Record) -> _Row:
        values: list[Any] = list(map(record.fields.get, self.fields))
        for at, parse in self._typed_at:
            text = values[at]
            if text is not None:
                values[at] = parse(text)
        return _Row(record, values, record.digest())

    def identity(self, values: Sequence[Any]) -> Identity:
        return self._identity(values)

    def _comparable_identity(self, values: Sequence[Any]) -> Identity:
        return tuple(_comparable(values[at]) for at in self._key_at)

    # -- steps -------------------------------------------------------------------------

    def _first_occurrences(self, conn: Connection, records: Sequence[Record],
                           batch: IncomingBatch, now: datetime,
                           outcome: ElementOutcome) -> dict[Identity, _Row]:
        """Typed rows by identity; a repeated key is compared with its first occurrence."""
        rows: dict[Identity, _Row] = {}
        for record in records:
            row = self.typed(record)
            ident = self.identity(row.values)
            first = rows.get(ident)
            if first is None:
                rows[ident] = row
            elif first.digest == row.digest:
                outcome.duplicates += 1
            else:
                outcome.conflicts.append(self._conflict(conn, row, first.digest, batch, now))
        return rows

    def _offer_all(self, conn: Connection, rows: dict[Identity, _Row], batch: IncomingBatch,
                   now: datetime, outcome: ElementOutcome) -> None:
        assert self._fast is not None
        inserted = self._fast.run(conn, rows.values(), (batch.batch_id, batch.node_id, now))
        if inserted == len(rows):
            outcome.stored += inserted
            return
        stored = self._stored(conn, list(rows))
        for ident, row in rows.items():
            digest, batch_id = stored[ident]
            if batch_id == batch.batch_id:
                outcome.stored += 1
            else:
                self._classify(conn, row, digest, batch, now, outcome)

    def _insert_new(self, conn: Connection, rows: dict[Identity, _Row], batch: IncomingBatch,
                    now: datetime, outcome: ElementOutcome) -> None:
        stored = self._stored(conn, list(rows))
        new = []
        for ident, row in rows.items():
            if ident in stored:
                self._classify(conn, row, stored[ident][0], batch, now, outcome)
            else:
                new.append(row)
        if new:
            control = [batch.batch_id, batch.node_id, now]
            conn.execute(insert(self.et.table),
                         [dict(zip(self.columns, [*r.values, r.digest, *control], strict=True))
                          for r in new])
        outcome.stored += len(new)

    def _classify(self, conn: Connection, row: _Row, stored_digest: str, batch: IncomingBatch,
                  now: datetime, outcome: ElementOutcome) -> None:
        if stored_digest == row.digest:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(self._conflict(conn, row, stored_digest, batch, now))

    def _stored(self, conn: Connection, idents: list[Identity]) -> dict[Identity, tuple[str, str]]:
        """(DIGEST, BATCH_ID) of the stored rows among ``idents``."""
        t = self.et.table
        columns = (*self.et.key_columns, t.c.SJBBH)
        found: dict[Identity, tuple[str, str]] = {}
        for start in range(0, len(idents), _CHUNK):
            chunk = idents[start:start + _CHUNK]
            query = select(*columns, t.c.DIGEST, t.c.BATCH_ID).where(tuple_(*columns).in_(chunk))
            for row in conn.execute(query):
                found[tuple(_comparable(v) for v in row[:-2])] = (row[-2], row[-1])
        return found

    def _conflict(self, conn: Connection, row: _Row, stored: str, batch: IncomingBatch,
                  now: datetime) -> Conflict:
        record = row.record
        conflict = Conflict(self.et.spec.code, record.key_text, record.version, stored,
                            row.digest)
        payload = json.dumps(dict(record.fields), ensure_ascii=False, sort_keys=True)
        conn.execute(insert(self._conflict_table).values(
            ELEMENT=conflict.element, KEY_TEXT=conflict.key_text[:255], SJBBH=conflict.version,
            STORED_DIGEST=stored, INCOMING_DIGEST=conflict.incoming_digest,
            BATCH_ID=batch.batch_id, NODE_ID=batch.node_id, PAYLOAD=payload, DETECTED_AT=now))
        return conflict


class _FastInsert:
    """``INSERT … ON CONFLICT DO NOTHING`` compiled once and run as one driver executemany.

    SQLAlchemy's executemany builds and type-processes a parameter dict per row, which
    costs about as much as SQLite's insert itself. Here a row is a tuple in column order
    (copied into a list only when a column has a processor), passed through the same
    bind processors SQLAlchemy would use (only the columns that have one); the per-batch
    columns are processed once.
    """

    def __init__(self, statement: Insert, columns: tuple[str, ...], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        table = statement.table
        assert isinstance(table, Table)
        processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
                      for c in columns]
        self._batch_columns = len(columns) - 3  # BATCH_ID, NODE_ID, STORED_AT come last
        self._row_processors = [(at, p) for at, p in enumerate(processors[:self._batch_columns])
                                if p is not None]
        self._batch_processors = processors[self._batch_columns:]
        positions = compiled.positiontup
        self._names: tuple[str, ...] | None = None if dialect.positional else columns
        if positions is not None and list(positions) != list(columns):
            raise RuntimeError(f"{table.name}: unexpected bind order {positions}")

    @classmethod
    def for_dialect(cls, table: Table, columns: tuple[str, ...],
                    dialect: Dialect) -> _FastInsert | None:
        on_conflict: Callable[[Table], Any] | None = {
            "sqlite": lambda t: sqlite.insert(t).on_conflict_do_nothing(),
            "postgresql": lambda t: postgresql.insert(t).on_conflict_do_nothing(),
        }.get(dialect.name)
        if on_conflict is None or not dialect.supports_sane_multi_rowcount:
            return None  # without a trustworthy rowcount the shortfall cannot be seen
        return cls(on_conflict(table), columns, dialect)

    def binder(self, at: int, parse: Callable[[str], Any]) -> Callable[[str], Any]:
        """Column ``at``'s field text straight to the value the driver is given.

        A validated time is canonical text, and SQLite's DATETIME binds a datetime as
        that text plus a fixed suffix (``.000000``): parsing the text only for the
        processor to print it again costs more than the rest of the column's work. The
        shortcut is taken only when probing the processor proves that shape; the column
        then skips its processor in ``run``. Any other column, or text of another
        shape, goes through ``parse`` and the processor as before.
        """
        process = dict(self._row_processors).get(at)
        if process is None:
            return parse
        suffix = _canonical_suffix(process)
        if suffix is None:
            return parse
        self._row_processors = [(i, p) for i, p in self._row_processors if i != at]

        def bind(text: str) -> Any:
            if _SURELY_REAL_TIME.fullmatch(text):
                return text + suffix
            value = parse(text)  # refuses what is not on the calendar, as before
            return None if value is None else process(value)
        return bind

    def run(self, conn: Connection, rows: Collection[_Row], per_batch: Sequence[Any]) -> int:
        """Insert ``rows`` (their values and digest) plus ``per_batch``; rows inserted.

        Each row's parameters are made in one go, its typed values left as they are: a
        list to process in place only where a processor must change them.
        """
        if not rows:
            return 0
        tail = tuple(v if p is None else p(v)
                     for v, p in zip(per_batch, self._batch_processors, strict=True))
        processors = self._row_processors
        params: list[Any] = []
        for row in rows:
            if not processors:
                params.append((*row.values, row.digest, *tail))
                continue
            values = [*row.values, row.digest]
            for at, process in processors:
                values[at] = process(values[at])
            params.append((*values, *tail))
        if self._names is not None:
            params = [dict(zip(self._names, values, strict=True)) for values in params]
        return int(conn.exec_driver_sql(self.sql, params).rowcount)


_PROBES = (datetime(2026, 11, 24, 9, 30, 5), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59))


def _canonical_suffix(process: Callable[[Any], Any]) -> str | None:
    """The suffix a time processor adds to the canonical text of a whole-second time,
    when it prints every probe that way; else None."""
    suffixes = set()
    for probe in _PROBES:
        try:
            bound, text = process(probe), probe.isoformat(" ")
        except (ValueError, TypeError, OverflowError):  # a processor with its own range
            return None
        if not isinstance(bound, str) or not bound.startswith(text):
            return None
        suffixes.add(bound[len(text):])
    return suffixes.pop() if len(suffixes) == 1 else None

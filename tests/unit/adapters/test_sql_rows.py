"""The element writer of the SQL store: the insert-first path against the look-up path.

The tests taking ``store`` run on PostgreSQL too (tests/integration/test_store_postgres.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from adapters.stores import sql_rows
from adapters.stores.sql import SqlStore
from tests.unit.adapters.test_sql_store import batch, records
from tests.unit.schemas.documents import record


def open_store(path: Path) -> SqlStore:
    store = SqlStore(f"sqlite:///{path}")
    store.migrate()
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(tmp_path / "store.db")
    yield opened
    opened.close()


def raw_rows(store: SqlStore, table: str) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return list(conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5"))


def test_a_batch_of_new_duplicate_and_conflicting_rows_is_told_apart(store: SqlStore) -> None:
    store.write(batch("B1", records(record("SBXX"), record("SBXX", SBLSH="SB0002"))))
    mixed = records(record("SBXX"),                              # duplicate
                    record("SBXX", SBLSH="SB0002", SQRMC="李四"),  # conflict
                    record("SBXX", SBLSH="SB0003"),              # new
                    record("SBXX", SBLSH="SB0003"),              # new, twice in the batch
                    record("SBXX", SBLSH="SB0004"))              # new
    result = store.write(batch("B2", mixed))
    assert (result.stored, result.duplicates, result.conflict_count) == (2, 2, 1)
    assert [c.key_text for c in result.conflicts] == ["SB0002"]
    again = store.write(batch("B2", mixed))
    assert again.redelivered and (again.stored, again.duplicates) == (2, 2)


def test_the_insert_first_path_stores_what_the_look_up_path_stores(
        store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = records(record("SBXX"), record("SF"), record("BZGZ"), record("SPGC"))
    store.write(batch("B1", recs))
    monkeypatch.setattr(sql_rows._FastInsert, "for_dialect",
                        classmethod(lambda cls, *args: None))
    plain = open_store(tmp_path / "plain.db")
    try:
        result = plain.write(batch("B1", recs))
        assert result.stored == 4
        for code in ("SBXX", "SF", "BZGZ", "SPGC"):
            table = f"ST_{code}"
            [*fields, stored_at] = raw_rows(store, table)[0]
            [*plain_fields, plain_stored_at] = raw_rows(plain, table)[0]
            assert fields == plain_fields
            assert len(stored_at) == len(plain_stored_at)  # the same text form of a time
    finally:
        plain.close()


def test_the_insert_first_path_is_one_transaction_with_the_batch(store: SqlStore) -> None:
    def fail_on_batch_row(conn, cursor, statement, parameters, context, executemany):  # type: ignore
        if statement.lstrip().upper().startswith("INSERT") and "ST_BATCH" in statement.upper():
            raise sa.exc.OperationalError(statement, parameters, Exception("disk I/O error"))

    sa.event.listen(store.engine, "before_cursor_execute", fail_on_batch_row)
    try:
        with pytest.raises(Exception, match="will retry"):
            store.write(batch("B1", records(record("SBXX"))))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", fail_on_batch_row)
    assert raw_rows(store, "ST_SBXX") == []
    assert store.write(batch("B1", records(record("SBXX")))).stored == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-20 09:30:05", datetime(2026, 11, 20, 9, 30, 5)),
    ("2026-1-5 9:30:05", datetime(2026, 1, 5, 9, 30, 5)),  # strptime's own leniency
    ("", None),
])
def test_times_are_read_fast_and_exactly_as_before(text: str, expected: datetime | None) -> None:
    assert sql_rows._time(text) == expected


@pytest.mark.parametrize("text", ["2026-02-30 09:00:00", "2026-W47-5 09:00:00",
                                  "2026-11-20T09:00:00", "2026-11-20 09:00+08"])
def test_times_strptime_refuses_are_still_refused(text: str) -> None:
    with pytest.raises(ValueError):
        sql_rows._time(text)


def sqlite_time_processor(**kwargs: Any) -> Any:
    return sqlite.DATETIME(**kwargs).bind_processor(sa.create_engine("sqlite://").dialect)


@pytest.mark.parametrize("text", ["2026-11-20 09:30:05", "0001-01-01 00:00:00",
                                  "9999-12-31 23:59:59"])
def test_a_canonical_time_is_bound_as_sqlalchemy_binds_its_datetime(text: str) -> None:
    process = sqlite_time_processor()
    assert sql_rows._canonical_suffix(process) == ".000000"
    assert text + ".000000" == process(datetime.fromisoformat(text))


def test_a_time_processor_of_another_shape_is_not_short_cut() -> None:
    assert sql_rows._canonical_suffix(lambda value: value) is None           # no text
    assert sql_rows._canonical_suffix(lambda value: value.isoformat()) is None  # a 'T'

    def from_1900(value: datetime) -> str:
        if value.year < 1900:
            raise ValueError("year out of range")
        return value.isoformat(" ")
    assert sql_rows._canonical_suffix(from_1900) is None  # refuses a probe: no shortcut
    assert sql_rows._canonical_suffix(sqlite_time_processor(truncate_microseconds=True)) == ""


def test_time_text_of_another_shape_goes_through_the_parser_and_processor(
        store: SqlStore) -> None:
    writer = store._writer("SBXX")
    assert writer._fast is not None
    at = next(at for at, code in enumerate(writer.fields)
              if writer.et.spec.fields[code].type_name == "Time")
    bind = dict(writer._typed_at)[at]
    assert bind is not sql_rows._time  # SQLite proves the shortcut's shape
    assert bind("2026-11-20 09:30:05") == "2026-11-20 09:30:05.000000"
    assert bind("2024-02-29 23:59:59") == "2024-02-29 23:59:59.000000"  # via the parser
    for impossible in ("2026-02-30 09:00:00", "2026-11-20 25:61:99", "0000-00-00 00:00:00"):
        with pytest.raises(ValueError):  # refused at write, as before the shortcut
            bind(impossible)
    assert bind("2026-1-5 9:30:05") == "2026-01-05 09:30:05.000000"
    assert bind("") is None

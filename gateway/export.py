"""Audit export (design §3, §8): a store's latest records as standard exchange XML.

``export_store`` writes the latest version of every record that matches an
``ExportQuery`` into files of at most ``max_records_per_file`` records, then
``MANIFEST.json`` (written last: an export without a manifest is unfinished).

Memory does not grow with the store: each element's query is iterated with
``yield_per`` and written with the streaming ``DocumentWriter``. Every file carries
``HEAD/COUNT``, so the counts must be known before a file is opened; they are taken in
the same read snapshot the rows come from (a deferred read transaction on SQLite in WAL
mode, REPEATABLE READ elsewhere), so a gateway writing meanwhile is neither blocked nor
half-exported.

``--since`` / ``--until`` select on the latest version's ``GXSJ`` (the source time):
since inclusive, until exclusive. ``--division`` keeps the records of that division and
its subdivisions (by code prefix for its level); without it, the whole store is
exported under the level's own division.

``check_query`` refuses, before anything is read or written, what would give an export
that fails its own checks or is empty by mistake: an ``--org`` that is no GB 32100
credit code, a ``--division`` outside the level's, ``--since`` not before ``--until``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, create_engine, event, func, select
from sqlalchemy import exc as sa_exc

from adapters.stores.sql import SqlStore
from adapters.stores.sql_latest import latest
from adapters.stores.sql_schema import StoreSchema
from schemas.catalog import load_catalog
from schemas.divisions import DIVISION_FORM, Level, is_division, level_of, within
from schemas.errors import ConfigError, FatalError, RetriableError
from schemas.messages import render
from schemas.rules import credit_code_finding
from schemas.times import BEIJING, format_time
from schemas.writer import DocumentWriter

__all__ = [
    "DEFAULT_MAX_RECORDS",
    "MANIFEST_NAME",
    "ExportQuery",
    "ExportResult",
    "ExportedFile",
    "check_query",
    "export_store",
    "file_sha256",
    "stored_fields",
]

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = "exgate-audit-export"
MANIFEST_VERSION = 1
DEFAULT_MAX_RECORDS = 50_000
_YIELD_PER = 1000
Fields = dict[str, str]


@dataclass(frozen=True)
class ExportQuery:
    """What to export; ``to_json`` is recorded in the manifest."""

    division: str                        # HEAD/XZQHDM, and the filter unless whole_store
    since: datetime | None = None        # naive Beijing time, on GXSJ, inclusive
    until: datetime | None = None        # exclusive
    elements: tuple[str, ...] = ()       # empty: all 14, in catalogue order
    max_records_per_file: int = DEFAULT_MAX_RECORDS
    org: str | None = None               # HEAD/TYSHXYDM; default: each file's first record's
    # Everything the store holds, as when no --division is given: a county store also
    # keeps records of its city's other counties (``schemas.divisions.within``).
    whole_store: bool = False

    def element_codes(self) -> tuple[str, ...]:
        known = tuple(load_catalog().elements)
        unknown = [code for code in self.elements if code not in known]
        if unknown:
            named, examples = ", ".join(unknown), ", ".join(known[:4])
            raise ConfigError(f"unknown element(s) {named}; use codes such as {examples} …",
                              zh=f"未知的要素 {named}；请使用要素代码，例如 {examples} …")
        return tuple(c for c in known if c in self.elements) if self.elements else known

    def to_json(self) -> dict[str, Any]:
        return {"division": self.division, "whole_store": self.whole_store,
                "since": _moment(self.since),
                "until": _moment(self.until), "time_field": "GXSJ",
                "elements": list(self.element_codes()), "latest_version_only": True,
                "max_records_per_file": self.max_records_per_file}


def _moment(value: datetime | None) -> str | None:
    return None if value is None else format_time(value.replace(tzinfo=BEIJING))


def check_query(query: ExportQuery, level: str | None = None) -> None:
    """Refuses (``ConfigError``) a query whose export would be wrong, or empty by mistake,
    before anything is read or written.

    ``level`` is the division of the level whose store is exported (``[level] division``):
    a ``--division`` outside it names records the store cannot hold.
    """
    if query.max_records_per_file < 1:
        raise ConfigError("--max-records-per-file must be at least 1",
                          zh="--max-records-per-file 至少为 1")
    if not is_division(query.division):
        raise ConfigError(f"--division {query.division!r} is not {DIVISION_FORM[0]}",
                          zh=f"--division {query.division!r} 不是 {DIVISION_FORM[1]}")
    if level is not None and not within(level, query.division):
        raise ConfigError(
            f"--division {query.division} lies outside this level's division {level} "
            "([level] division in the gateway config): its store holds no records of it; "
            "give a division within the level, or leave --division out for the whole store",
            zh=f"--division {query.division} 不在本级行政区划 {level}（网关配置 [level] "
               "division）之内，本级库中没有它的记录；请给出本级之内的行政区划，"
               "或省略 --division 导出整个库")
    if query.since is not None and query.until is not None and query.since >= query.until:
        since, until = _moment(query.since), _moment(query.until)
        raise ConfigError(
            f"--since {since} is not before --until {until}: no time is in between and "
            "the export would be empty (since is inclusive, until exclusive)",
            zh=f"--since {since} 不早于 --until {until}：两者之间没有时间，导出将为空"
               "（since 含该时刻，until 不含）")
    _check_org(query.org)


def _check_org(org: str | None) -> None:
    """``--org`` becomes every file's HEAD/TYSHXYDM, which must pass GB 32100 (the
    files would not validate otherwise)."""
    if org is None or (finding := credit_code_finding(org)) is None:
        return
    args = {**finding.args, "field": "--org", "label": "HEAD/TYSHXYDM"}
    raise ConfigError(
        f"{render(finding.message_id, args, 'en')}; give the exporting department's "
        "unified social credit code, or leave --org out (each file then names its first "
        "record's department)",
        zh=f"{render(finding.message_id, args, 'zh')}；请给出导出部门的统一社会信用代码，"
           "或省略 --org（每个文件将使用其第一条记录的部门代码）")


@dataclass(frozen=True)
class ExportedFile:
    name: str
    sha256: str
    bytes: int
    records: int
    by_element: Mapping[str, int]
    batch_id: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes,
                "records": self.records, "by_element": dict(self.by_element),
                "batch_id": self.batch_id}


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    manifest: Path
    files: tuple[ExportedFile, ...]
    records: int
    by_element: Mapping[str, int] = field(default_factory=dict)


def export_store(store: SqlStore, query: ExportQuery, out_dir: Path, *,
                 on_record: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(BEIJING)
                 ) -> ExportResult:
    """Write the export and its manifest into ``out_dir`` (new or empty)."""
    check_query(query)
    codes = query.element_codes()
    _prepare(out_dir)
    started = clock()
    plan = _Plan(query, out_dir, started, secrets.token_hex(4))
    try:
        with snapshot(store) as conn:
            counts = {code: _count(conn, store.schema, code, query) for code in codes}
            if on_total is not None:
                on_total(sum(counts.values()))
            rows = _rows(conn, store.schema, codes, query)
            files = plan.write_all(rows, sum(counts.values()), on_record)
    except sa_exc.SQLAlchemyError as exc:
        raise RetriableError(f"cannot read the store at {store.redacted_url}: "
                             f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from exc
    totals: Counter[str] = Counter()
    for item in files:
        totals.update(item.by_element)
    manifest = _write_manifest(out_dir, {
        "format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION,
        "schema_version": load_catalog().version, "namespace": load_catalog().namespace,
        "exported_at": started.astimezone(BEIJING).isoformat(timespec="seconds"),
        "store": store.redacted_url, "query": query.to_json(),
        "totals": {"files": len(files), "records": sum(totals.values()),
                   "by_element": {c: totals[c] for c in codes if totals[c]}},
        "files": [item.to_json() for item in files],
    })
    return ExportResult(out_dir, manifest, tuple(files), sum(totals.values()), dict(totals))


def _prepare(out_dir: Path) -> None:
    where = f"--out {out_dir}"
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{where} is a file; give a new or empty folder",
                          zh=f"{where} 是一个文件；请给出新的或空的目录")
    try:
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise ConfigError(f"{where} is not empty; give a new or empty folder so "
                              "the manifest describes every file in it",
                              zh=f"{where} 不是空目录；请给出新的或空的目录，"
                                 "以便清单描述其中的每个文件")
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"{where} cannot be used: {reason}; give a new or empty folder",
                          zh=f"{where} 无法使用：{reason}；请给出新的或空的目录") from exc


# -- the read snapshot and the queries ----------------------------------------------------------


@contextmanager
def snapshot(store: SqlStore) -> Iterator[Connection]:
    """One connection whose reads all see the same committed state, without locking.

    The store's own SQLite engine begins every transaction IMMEDIATE (a write lock);
    an export opens its own engine and a deferred transaction instead, which WAL mode
    turns into a snapshot from the first read on.
    """
    if store.engine.dialect.name != "sqlite":
        level = "SERIALIZABLE" if store.engine.dialect.name == "oracle" else "REPEATABLE READ"
        with store.engine.connect().execution_options(isolation_level=level) as conn, \
                conn.begin():
            yield conn
        return
    engine = create_engine(store.url)

    @event.listens_for(engine, "connect")
    def _autocommit(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN is ours, below

    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()


def element_query(schema: StoreSchema, code: str, query: ExportQuery) -> Select[Any]:
    """The latest versions of ``code`` that match ``query``, in business-key order."""
    et = schema.elements[code]
    t = et.table
    statement = latest(schema, code)
    if not query.whole_store:
        statement = statement.where(_in_division(t.c["XZQHDM"], query.division))
    if query.since is not None:
        statement = statement.where(t.c["GXSJ"] >= query.since)
    if query.until is not None:
        statement = statement.where(t.c["GXSJ"] < query.until)
    return statement.order_by(*et.key_columns)


def _in_division(column: ColumnElement[Any], division: str) -> ColumnElement[bool]:
    """Codes in ``division`` and its subdivisions, by prefix for its level."""
    level = level_of(division)
    if level is Level.PROVINCE:
        return column.like(division[:2] + "%")
    if level is Level.CITY:
        return column.like(division[:4] + "%")
    return column == division


def _count(conn: Connection, schema: StoreSchema, code: str, query: ExportQuery) -> int:
    inner = element_query(schema, code, query).order_by(None).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def _rows(conn: Connection, schema: StoreSchema, codes: tuple[str, ...],
          query: ExportQuery) -> Iterator[tuple[str, Fields]]:
    streaming = conn.execution_options(yield_per=_YIELD_PER)
    for code in codes:
        names = tuple(schema.elements[code].spec.fields)
        result = streaming.execute(element_query(schema, code, query))
        for row in result.mappings():
            yield code, stored_fields(names, row)


def stored_fields(names: tuple[str, ...], row: Mapping[Any, Any]) -> Fields:
    """A stored row's fields as exchange text (times, amounts and integers as written)."""
    fields: Fields = {}
    for name in names:
        value = row.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, datetime):  # isoformat pads years before 1000; strftime does not
            fields[name] = value.isoformat(" ", "seconds")
        elif isinstance(value, Decimal):
            fields[name] = format(value, "f")
        else:
            fields[name] = str(value)
    return fields


# -- files --------------------------------------------------------------------------------------


@dataclass
class _Plan:
    query: ExportQuery
    out_dir: Path
    started: datetime
    token: str

    def write_all(self, rows: Iterator[tuple[str, Fields]], total: int,
                  on_record: Callable[[int], None] | None) -> list[ExportedFile]:
        files: list[ExportedFile] = []
        remaining, index = total, 1
        while remaining > 0:
            count = min(self.query.max_records_per_file, remaining)
            files.append(self._write_file(rows, count, index, on_record))
            remaining -= count
            index += 1
        if next(rows, None) is not None:
            raise FatalError("the store changed during the export (no read snapshot); "
                             "export again")
        return files

    def _write_file(self, rows: Iterator[tuple[str, Fields]], count: int, index: int,
                    on_record: Callable[[int], None] | None) -> ExportedFile:
        stamp = self.started.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
        batch_id = f"EXP{stamp}-{self.token}-{index:05d}"
        path = self.out_dir / f"exgate-{self.query.division}-{stamp}-{index:05d}.xml"
        first = _next(rows)
        head = {"XZQHDM": self.query.division,
                "TYSHXYDM": self.query.org or first[1]["TYSHXYDM"],
                "CREATED": format_time(self.started), "BATCHID": batch_id,
                "COUNT": str(count)}
        tally: Counter[str] = Counter()
        with DocumentWriter(path, head) as writer:
            record = first
            for written in range(count):
                if written:
                    record = _next(rows)
                writer.write(record)
                tally[record[0]] += 1
                if on_record is not None:
                    on_record(1)
        return ExportedFile(path.name, file_sha256(path), path.stat().st_size, count,
                            dict(tally), batch_id)


def _next(rows: Iterator[tuple[str, Fields]]) -> tuple[str, Fields]:
    try:
        return next(rows)
    except StopIteration:
        raise FatalError("the store changed during the export (no read snapshot); "
                         "export again") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    path = out_dir / MANIFEST_NAME
    temp = out_dir / f".{MANIFEST_NAME}.tmp"
    with temp.open("w", encoding="utf-8") as out:
        json.dump(manifest, out, ensure_ascii=False, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    return path

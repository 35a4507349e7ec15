"""The demo's source data: a legacy front-end database and a drop folder for two counties.

Realistic records come from the sample generator (``schemas.samples``): one city
bureau's whole case lifecycles, cut down to the records of one county department, so a
county node only ever speaks for its own division. A few copies get a wrong credit-code
check character: those must be rejected at the source and never reach a store.
The end-to-end tests build their sources with the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from adapters.db_connect import engine_url
from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from schemas.catalog import load_catalog
from schemas.checkdigits import credit_code_check_char
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.samples import DEFAULT_SEED, generate
from schemas.writer import DocumentWriter

__all__ = ["SourceSet", "corrupt", "county_records", "sample_records", "write_drop_folder",
           "write_front_db"]


@dataclass(frozen=True)
class SourceSet:
    """What was put into one source: the records that must arrive, and how many must not."""

    valid: tuple[Record, ...]
    invalid: int

    def counts(self) -> dict[str, int]:
        """Valid records per element."""
        found: dict[str, int] = {}
        for record in self.valid:
            found[record.element] = found.get(record.element, 0) + 1
        return found


def sample_records(scratch: Path, *, cases: int, seed: int | None = None) -> list[Record]:
    """Every record of ``cases`` generated cases of one Changsha (430100) city bureau."""
    samples = generate(scratch, cases=cases, files=1, seed=DEFAULT_SEED if seed is None else seed)
    records: list[Record] = []
    for sample in samples.files:
        records.extend(check.record for check in DocumentReader(sample.path, sample.name)
                       if check.record is not None)
    return records


def county_records(records: Iterable[Record], county: str) -> list[Record]:
    """The records of one county, each (element, key, version) once."""
    seen: set[tuple[str, tuple[str, ...], int]] = set()
    kept: list[Record] = []
    for record in records:
        ident = (record.element, record.key, record.version)
        if record.division == county and ident not in seen:
            seen.add(ident)
            kept.append(record)
    return kept


def corrupt(record: Record) -> dict[str, str]:
    """The record's fields with a wrong credit-code check character (bad-check-digit)."""
    code = record.fields["TYSHXYDM"]
    right = credit_code_check_char(code[:17])
    wrong = next(c for c in "0123456789ABCDEFGHJKLMNPQRTUWXY" if c != right)
    return {**record.fields, "TYSHXYDM": code[:17] + wrong}


def _spread(count: int, bad: int) -> set[int]:
    """``bad`` positions spread evenly over ``count``."""
    if bad <= 0 or count == 0:
        return set()
    step = max(count // bad, 1)
    return {min(index * step + step // 2, count - 1) for index in range(bad)}


def write_front_db(url: str, records: Sequence[Record], bad: int = 0) -> SourceSet:
    """Create the EX_ tables at ``url`` and insert the records as new rows (SYNC_FLAG 0).

    ``bad`` of them are inserted corrupted instead of as they are.
    """
    create_all(url)
    wrong = _spread(len(records), bad)
    rows: dict[str, list[dict[str, Any]]] = {}
    for index, record in enumerate(records):
        fields = corrupt(record) if index in wrong else dict(record.fields)
        rows.setdefault(record.element, []).append(typed_row(record.element, fields))
    insert_rows(url, rows)
    return SourceSet(tuple(r for i, r in enumerate(records) if i not in wrong), len(wrong))


def insert_rows(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert typed rows into the EX_ tables, one transaction (as a legacy system would)."""
    engine = create_engine(engine_url(url))
    try:
        tables = front_tables(engine.dialect.name)
        with engine.begin() as conn:
            for element, values in rows.items():
                # executemany takes its columns from the first row: name them all.
                columns = load_catalog().elements[element].fields
                conn.execute(insert(tables.elements[element]),
                             [{c: v.get(c) for c in columns} for v in values])
    finally:
        engine.dispose()


def typed_row(element: str, fields: dict[str, str]) -> dict[str, Any]:
    """Exchange text values → front-end column values (times, amounts, integers typed)."""
    spec = load_catalog().elements[element]
    row: dict[str, Any] = {}
    for code, text in fields.items():
        kind = spec.fields[code].type_name if code in spec.fields else ""
        row[code] = _typed(kind, text)
    return row


def _typed(kind: str, text: str) -> Any:
    if text == "" and kind in ("Time", "Amount", "PositiveInt", "NonNegativeInt"):
        return None
    if kind == "Time":
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    if kind == "Amount":
        return Decimal(text)
    if kind in ("PositiveInt", "NonNegativeInt"):
        return int(text)
    return text


def write_drop_folder(inbox: Path, county: str, records: Sequence[Record], *, files: int = 4,
                      bad: int = 0, prefix: str = "drop") -> SourceSet:
    """Spread the records over ``files`` exchange files in ``inbox`` (temp name, rename).

    ``bad`` of them are written corrupted; the files holding those go to ``error/``.
    """
    inbox.mkdir(parents=True, exist_ok=True)
    wrong = _spread(len(records), bad)
    head = {"XZQHDM": county, "TYSHXYDM": records[0].fields["TYSHXYDM"] if records else ""}
    per_file = -(-len(records) // max(files, 1)) if records else 0
    for number, start in enumerate(range(0, len(records), max(per_file, 1)), start=1):
        path = inbox / f"{prefix}-{county}-{number:03d}.xml"
        with DocumentWriter(path, head) as writer:
            for index in range(start, min(start + per_file, len(records))):
                record = records[index]
                if index in wrong:
                    writer.write_unchecked(record.element, corrupt(record).items())
                else:
                    writer.write((record.element, record.fields))
    return SourceSet(tuple(r for i, r in enumerate(records) if i not in wrong), len(wrong))

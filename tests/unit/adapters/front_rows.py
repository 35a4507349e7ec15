"""Valid front-end table rows for every element, built from the catalogue, and a tiny
stand-in for the outbox journal. Shared by the unit and integration tests of the
database source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import sqlalchemy as sa
import xmlschema

from adapters.frontdb import fold_identifier, front_tables
from adapters.sources.base import Chunk, Source
from frontend_machine.outbox import Outbox
from schemas.catalog import load_catalog
from schemas.checkdigits import credit_code_check_char, resident_id_check_char
from schemas.times import BEIJING

DIVISION = "430102"
BASE_TIME = datetime(2026, 11, 20, 9, 0, 0)


@cache
def _first_enumeration(type_name: str) -> str | None:
    schema = xmlschema.XMLSchema(str(load_catalog().path))
    xsd_type = schema.types.get(type_name)
    enumeration = getattr(xsd_type, "enumeration", None)  # a simple type's, if any
    return str(enumeration[0]) if enumeration else None


def credit_code(n: int) -> str:
    first17 = f"11{DIVISION}MB{n % 10_000_000:07d}"
    return first17 + credit_code_check_char(first17)


def resident_id(n: int) -> str:
    first17 = f"{DIVISION}19900101{n % 1000:03d}"
    return first17 + resident_id_check_char(first17)


def row(element: str, n: int, when: datetime = BASE_TIME) -> dict[str, Any]:
    """A valid row of ``element`` (database-typed values); ``n`` makes the key unique."""
    spec = load_catalog().elements[element]
    values: dict[str, Any] = {}
    for code, fs in spec.fields.items():
        values[code] = _value(code, fs.type_name, n, when)
    return values


def _value(code: str, type_name: str, n: int, when: datetime) -> Any:
    if code == "SQRZJHM":
        return resident_id(n)  # SQRZJLX is the first enumeration value, 10: an ID card
    simple: dict[str, Any] = {
        "Division": DIVISION, "CreditCode": credit_code(n), "PositiveInt": 1,
        "NonNegativeInt": 5, "Amount": Decimal("12.50"), "Time": when, "StepCode": "1",
        "Name": "张三", "Text": "材料齐全", "Sha256": "ab" * 32,
    }
    if type_name in simple:
        return simple[type_name]
    if type_name == "Code":
        return f"{code}{n:010d}"
    enumeration = _first_enumeration(type_name)
    assert enumeration is not None, f"no test value for {code} ({type_name})"
    return enumeration


@dataclass
class Journal:
    """The outbox in miniature: records by (element, key, version), rejects, progress."""

    records: dict[tuple[str, tuple[str, ...], int], Mapping[str, str]] = field(default_factory=dict)
    rejects: list[tuple[str, str]] = field(default_factory=list)   # (locator, issue codes)
    state: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0

    def journal(self, chunk: Chunk) -> None:
        for origin, check in chunk.checks:
            if check.record is None:
                self.rejects.append((origin.locator, " ".join(i.code for i in check.issues)))
                continue
            record = check.record
            identity = (record.element, record.key, record.version)
            if identity in self.records:
                assert self.records[identity] == record.fields, f"conflict on {identity}"
                self.duplicates += 1
            self.records[identity] = record.fields
        if chunk.progress:
            self.state = dict(chunk.progress)

    def drain(self, source: Source, commit: bool = True) -> int:
        """One agent poll: journal every chunk, then commit it; returns the chunk count."""
        chunks = 0
        for chunk in source.read(self.state):
            self.journal(chunk)
            if commit:
                source.commit(chunk)
            chunks += 1
        return chunks

    def drain_with_restarts(self, open_source: Callable[[], AbstractContextManager[Any]]) -> None:
        """Poll until nothing is left, with a fresh source (a restart) after every chunk."""
        while True:
            with open_source() as source:
                reading = source.read(self.state)
                chunk = next(reading, None)
                reading.close()
                if chunk is None:
                    return
                self.journal(chunk)
                source.commit(chunk)

    def keys(self, element: str) -> set[str]:
        return {"|".join(key) for (code, key, _) in self.records if code == element}


def keys_of(element: str, ns: Iterable[int]) -> set[str]:
    spec = load_catalog().elements[element]
    return {"|".join(str(row(element, n)[k]) for k in spec.key) for n in ns}


def legacy_table(dialect_name: str, element: str, name: str) -> sa.Table:
    """A legacy table for a mapped cursor source: the element's fields, every one
    nullable, plus a nullable ``UPD_TIME``; columns keyed by field code."""
    front = front_tables(dialect_name).elements[element]
    codes = load_catalog().elements[element].fields
    columns = [sa.Column(fold_identifier(code, dialect_name), front.c[code].type, key=code)
               for code in codes]
    return sa.Table(fold_identifier(name, dialect_name), sa.MetaData(), *columns,
                    sa.Column(fold_identifier("UPD_TIME", dialect_name), sa.DateTime(),
                              key="UPD_TIME"),
                    mysql_charset="utf8mb4", mariadb_charset="utf8mb4")


@dataclass
class Clock:
    """A hand-moved clock (Beijing time) for lags and gap windows."""

    now: datetime = datetime(2026, 11, 20, 12, 0, tzinfo=BEIJING)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def poll(outbox: Outbox, source: Source) -> int:
    """What the agent does in one poll: journal each chunk, then commit it."""
    chunks = 0
    for chunk in source.read(outbox.source_state(source.name)):
        outbox.journal(source.name, chunk)
        source.commit(chunk)
        chunks += 1
    return chunks


def journaled_keys(outbox: Outbox) -> set[str]:
    db = outbox._db  # the test reads the journal's identity column directly
    return {key for (key,) in db.execute("SELECT record_key FROM records")}

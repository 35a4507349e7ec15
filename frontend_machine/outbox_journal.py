"""The rows one source chunk adds to the outbox: its records and its rejects.

A record row holds the record as its batch will carry it. Rows go in with one
``executemany``: a row the unique identity refuses is a duplicate, a new row whose
identity an earlier row holds with another digest is a conflict. A reject is kept once
however often the source hands it out again. Apart from ``Outbox`` because these are
the statements alone: ``Outbox.journal`` runs them in the one transaction that also
saves the source's progress.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from adapters.sources.base import Origin
from schemas.issues import Issue
from schemas.records import Record
from schemas.writer import record_xml

__all__ = ["SIZE", "in_batch", "insert_file_issues", "insert_records", "insert_reject",
           "record_row", "settle_rejects"]

_INSERT_RECORD = (
    "INSERT OR IGNORE INTO records (element, record_key, sjbbh, digest, division, payload,"
    " size, source, origin, line, journaled_at, batch_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_NEW_CONFLICTS = (  # rows after seq ?, each with an earlier row of its identity, other digest
    "SELECT r.seq, r.element FROM records AS r WHERE r.seq > ? AND EXISTS (SELECT 1 FROM"
    " records AS o WHERE o.element = r.element AND o.record_key = r.record_key"
    " AND o.sjbbh = r.sjbbh AND o.digest <> r.digest AND o.seq < r.seq)")


SIZE, _ORIGIN, _LINE = 6, 8, 9  # of a ``record_row``


def record_row(source: str, origin: Origin, record: Record, now: float) -> tuple[Any, ...]:
    """The ``records`` row of one valid record, in ``_INSERT_RECORD`` order, not yet in
    a batch (``in_batch`` seats it in one).

    The payload is the record as the batch document will hold it, written once here:
    sealing a batch only joins its payloads, and its size is exact.
    """
    payload = record_xml(record)
    return (record.element, record.key_text, record.version, record.digest(),
            record.fields.get("XZQHDM", ""), payload, len(payload.encode()), source,
            origin.locator, origin.line if origin.line is not None else record.line, now,
            None)


def in_batch(row: tuple[Any, ...], batch_id: str) -> tuple[Any, ...]:
    """A ``record_row`` journaled straight into batch ``batch_id``."""
    return (*row[:-1], batch_id)


def insert_records(connection: sqlite3.Connection,
                   rows: Sequence[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    """Insert the rows in order with one ``executemany``; tally them by element.

    A row the unique identity refuses is a duplicate. Every row inserted gets a
    ``seq`` above the highest one before (AUTOINCREMENT, one writer inside BEGIN
    IMMEDIATE), so the rows above it are exactly the ones added. A new row is a
    conflict when an earlier row has its identity with another digest, as if the
    rows had been inserted and checked one by one.
    """
    before = connection.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
    inserted = connection.executemany(_INSERT_RECORD, rows).rowcount
    # Every record as a duplicate first, elements in chunk order: counted in C, not a
    # step per row.
    counts = {element: {"added": 0, "duplicates": rows_of, "conflicts": 0}
              for element, rows_of in Counter(map(itemgetter(0), rows)).items()}
    for element, added in _added_by_element(connection, counts, inserted, before):
        counts[element]["added"] = added
        counts[element]["duplicates"] -= added
    conflicts = connection.execute(_NEW_CONFLICTS, (before,)).fetchall()
    for _, element in conflicts:
        counts[element]["conflicts"] += 1
    if conflicts:
        connection.executemany("UPDATE records SET conflict = 1 WHERE seq = ?",
                               [(seq,) for seq, _ in conflicts])
    return counts


def settle_rejects(connection: sqlite3.Connection, source: str,
                   rows: Sequence[tuple[Any, ...]], now: float) -> None:
    """Close the open rejects of the database rows these record rows now journal as valid.

    A rejected row corrected in place and read again (its flag reset, a changelog or
    cursor re-read) settles its reject as ``agent replay --rejects`` does; without this
    it would be counted as open for good. A record of a file (it has a line) never
    settles one: a line is no record's identity (a file written on one line holds them
    all, and the next file dropped under the same name is another file); a file's
    rejects are settled when it is replayed. Nothing is asked for a file's records, and
    one cheap look-up per chunk when the source has no open reject, the usual case.
    """
    origins = [row[_ORIGIN] for row in rows if row[_LINE] is None]
    if not origins or connection.execute(
            "SELECT 1 FROM rejects WHERE source = ? AND replayed_at IS NULL LIMIT 1",
            (source,)).fetchone() is None:
        return
    connection.executemany(
        "UPDATE rejects SET replayed_at = ? WHERE source = ? AND origin = ?"
        " AND line IS NULL AND replayed_at IS NULL",
        [(now, source, origin) for origin in origins])


def _added_by_element(connection: sqlite3.Connection, counts: Mapping[str, Any],
                      inserted: int, before: int) -> Iterable[tuple[str, int]]:
    """(element, rows added) after an insert of ``inserted`` rows above seq ``before``.

    A chunk of one element (every database page) needs no query: the rows the
    ``executemany`` inserted are all of that element.
    """
    if len(counts) == 1:
        return ((next(iter(counts)), inserted),)
    return connection.execute(
        "SELECT element, count(*) FROM records WHERE seq > ? GROUP BY element", (before,))


def insert_reject(connection: sqlite3.Connection, source: str, origin: Origin,
                  element: str | None, issues: Sequence[Issue], now: float) -> None:
    issues_json = json.dumps([i.to_json("zh") for i in issues], ensure_ascii=False)
    identity = (source, origin.locator, origin.line, element, _text_digest(issues_json))
    # Re-reading a source after a crash yields the same reject again: keep one.
    inserted = connection.execute(
        "INSERT OR IGNORE INTO rejects (source, origin, line, element, digest, issues,"
        " rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)", (*identity, issues_json, now)).rowcount
    if not inserted:
        # Settled since (corrected, or replayed) and refused the same way again (edited
        # back, or replayed unchanged): open again, or the source's reject went unsaid.
        connection.execute(
            "UPDATE rejects SET replayed_at = NULL, rejected_at = ? WHERE source = ?"
            " AND origin = ? AND COALESCE(line, -1) = COALESCE(?, -1)"
            " AND COALESCE(element, '') = COALESCE(?, '') AND digest = ?"
            " AND replayed_at IS NOT NULL", (now, *identity))


def insert_file_issues(connection: sqlite3.Connection, source: str, issues: Sequence[Any],
                       now: float) -> None:
    """One reject row per file (a chunk may complete several small files)."""
    by_file: dict[str, list[Issue]] = {}
    for issue in issues:
        by_file.setdefault(getattr(issue, "file", None) or source, []).append(issue)
    for locator, file_issues in by_file.items():
        insert_reject(connection, source, Origin(source, locator, None), None, file_issues, now)


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

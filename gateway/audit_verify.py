"""``exgate audit verify DIR``: an export's manifest against its files, then the XSD.

Checks, in order:

1. ``MANIFEST.json`` is readable and names plain file names only;
2. every listed file exists as a regular file, not a link or a FIFO (else
   ``missing-file``), and nothing else is in the folder (``extra-file``);
3. every file's sha256 (``sha256-mismatch``);
4. every file is read once with the validator ``exgate validate`` uses: its issues,
   and its record counts per element against the manifest (``count-mismatch``).

``import_export`` loads a verified export into a store through the normal ``write``
path, one batch per file (the round trip that proves an export is complete).
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.stores.base import IncomingBatch, Store, WriteResult
from gateway.export import MANIFEST_NAME, file_sha256
from schemas.audit import FileResult, Summary
from schemas.columns import resolve_columns
from schemas.errors import RejectedBatch
from schemas.issues import Issue
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.times import BEIJING

__all__ = ["ImportResult", "Mismatch", "VerifyReport", "import_export", "verify_export"]

IMPORT_NODE = "audit-import"
MAX_MANIFEST_BYTES = 64 << 20  # some 200,000 file entries


@dataclass(frozen=True)
class Mismatch:
    """One way the folder differs from its manifest; ``file`` names the file."""

    code: str      # bad-manifest | missing-file | extra-file | sha256-mismatch | count-mismatch
    file: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "file": self.file, "detail": self.detail}


@dataclass
class VerifyReport:
    folder: Path
    mismatches: list[Mismatch] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.summary.invalid_files == 0 \
            and not self.summary.unreadable


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest as JSON; ``ValueError`` says why it cannot be used."""
    path = folder / MANIFEST_NAME
    try:
        if not _regular(path) or path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{MANIFEST_NAME} is not a regular file of at most "
                             f"{MAX_MANIFEST_BYTES >> 20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{MANIFEST_NAME} is missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{MANIFEST_NAME} is unreadable: {exc}") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(_entry_ok(f) for f in files):
        raise ValueError(f"{MANIFEST_NAME} has no valid 'files' list")
    return dict(data)


def _entry_ok(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    name = entry.get("name")
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST_NAME)
            and "/" not in name and "\\" not in name
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("by_element"), dict)
            and all(isinstance(count, int) and not isinstance(count, bool) and count >= 0
                    for count in entry["by_element"].values()))


def _regular(path: Path) -> bool:
    """A regular file itself: never followed out of the folder by a link, never a FIFO
    or a device that would block or never end."""
    return stat.S_ISREG(path.lstat().st_mode)


def verify_export(folder: Path, on_file: Callable[[FileResult], None] | None = None
                  ) -> VerifyReport:
    report = VerifyReport(folder)
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        report.mismatches.append(Mismatch("bad-manifest", MANIFEST_NAME, str(exc)))
        return report
    entries = {entry["name"]: entry for entry in manifest["files"]}
    present = set(_files_below(folder))
    for name in sorted(present - set(entries) - {MANIFEST_NAME}):
        report.mismatches.append(Mismatch("extra-file", name, "not listed in the manifest"))
    found: Counter[str] = Counter()  # records by element: counted where read, else listed
    for name, entry in entries.items():
        if name not in present:
            report.mismatches.append(Mismatch("missing-file", name, "listed but absent"))
        elif not _regular(folder / name):
            report.mismatches.append(Mismatch(
                "missing-file", name, "listed, but a link or special file, not a regular "
                                      "file: not read"))
        else:
            found.update(_check_file(folder / name, entry, report, on_file))
            continue
        found.update({str(k): int(v) for k, v in entry["by_element"].items()})
    _check_totals(manifest.get("totals"), len(entries), found, report)
    return report


def _check_totals(totals: Any, files: int, found: Counter[str], report: VerifyReport) -> None:
    """The manifest's ``totals`` against what its files hold (an export without it, such
    as one written by hand, is not held to it)."""
    if totals is None:
        return
    expected = {"files": files, "records": sum(found.values()),
                "by_element": {k: v for k, v in sorted(found.items()) if v}}
    stated = totals if isinstance(totals, dict) else {}
    wrong = [key for key, value in expected.items() if stated.get(key) != value]
    if wrong:
        report.mismatches.append(Mismatch(
            "count-mismatch", MANIFEST_NAME,
            "totals disagree with the files: "
            + "; ".join(f"{key} {stated.get(key)!r}, files hold {expected[key]!r}"
                        for key in wrong)))


def _files_below(folder: Path) -> Iterator[str]:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            yield str((Path(root) / name).relative_to(folder))


def _check_file(path: Path, entry: dict[str, Any], report: VerifyReport,
                on_file: Callable[[FileResult], None] | None) -> Counter[str]:
    """Checks one listed file against its entry; returns its records by element."""
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        report.mismatches.append(Mismatch(
            "sha256-mismatch", path.name,
            f"sha256 {digest[:16]}… differs from the manifest's {str(entry['sha256'])[:16]}…"))
    result, counts = _validate(path)
    report.summary.add(result)
    if on_file is not None:
        on_file(result)
    expected = {str(k): int(v) for k, v in entry["by_element"].items() if int(v)}
    if dict(counts) != expected:
        report.mismatches.append(Mismatch(
            "count-mismatch", path.name,
            f"records by element {dict(sorted(counts.items()))}, manifest says "
            f"{dict(sorted(expected.items()))}"))
    stated = entry.get("records", counts.total())
    if stated != counts.total():
        report.mismatches.append(Mismatch(
            "count-mismatch", path.name,
            f"{counts.total()} records, manifest says {stated!r}"))
    return counts


def _validate(path: Path) -> tuple[FileResult, Counter[str]]:
    """``schemas.audit.validate_file``, counting records per element on the way."""
    reader = DocumentReader(path, str(path))
    counts: Counter[str] = Counter()
    record_issues: list[Issue] = []
    try:
        for check in reader:
            counts[check.element] += 1
            record_issues.extend(check.issues)
    except OSError as exc:
        return FileResult(path, reader.records, reader.valid, (), exc.strerror or str(exc)), \
            counts
    issues = reader.issues + record_issues
    if not reader.fatal:
        issues = resolve_columns(path, issues)
    issues.sort(key=lambda i: (i.line or 0, i.column or 0))
    return FileResult(path, reader.records, reader.valid, tuple(issues)), counts


# -- round trip ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    files: int
    records: int
    stored: int
    duplicates: int
    conflicts: int


def import_export(folder: Path, store: Store, *, node_id: str = IMPORT_NODE) -> ImportResult:
    """Write every file of a verified export into ``store``, one batch per file.

    Refuses (``RejectedBatch``) an export that does not verify. Idempotent: the batch ID
    is the file's HEAD/BATCHID, so importing twice changes nothing.
    """
    report = verify_export(folder)
    if not report.ok:
        first = report.mismatches[0].detail if report.mismatches else "invalid records"
        raise RejectedBatch(f"export {folder} does not verify: {first}")
    totals = [0, 0, 0, 0]
    files = read_manifest(folder)["files"]
    for entry in files:
        result, count = _import_file(folder / entry["name"], entry["sha256"], store, node_id)
        new = (0, count, 0) if result.redelivered else \
            (result.stored, result.duplicates, result.conflict_count)
        for i, value in enumerate((count, *new)):
            totals[i] += value
    return ImportResult(len(files), *totals)


def _import_file(path: Path, sha256: str, store: Store, node_id: str
                 ) -> tuple[WriteResult, int]:
    reader = DocumentReader(path, path.name)
    records: list[Record] = [check.record for check in reader if check.record is not None]
    head = reader.head
    if head is None or head.division is None:
        raise RejectedBatch(f"{path.name}: no HEAD")
    batch = IncomingBatch(head.batch_id or path.stem, node_id, head.division, sha256,
                          records, datetime.now(BEIJING), head.schema_version)
    return store.write(batch), len(records)

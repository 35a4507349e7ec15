"""Validating files and folders for auditors: the engine behind ``exgate validate``."""

from __future__ import annotations

import contextlib
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from schemas.columns import resolve_columns
from schemas.issues import Issue, IssueCap
from schemas.reader import MAX_FILE_ISSUES, DocumentReader, Limits
from schemas.record_check import RecordCheck

__all__ = ["MAX_FILE_ISSUES", "NOT_FOUND", "NOT_REGULAR", "FileResult", "Summary",
           "expand_paths", "validate_file", "validate_paths"]

# Why a path was not read, in English: ``audit_report.unreadable_reason`` gives them in
# Chinese, as it does the system's own reasons.
NOT_FOUND = "no such file or folder"
NOT_REGULAR = "not a regular file or folder"


@dataclass(frozen=True)
class FileResult:
    path: Path
    records: int
    valid_records: int
    issues: tuple[Issue, ...]
    unreadable: str | None = None  # why the file could not be read at all

    @property
    def valid(self) -> bool:
        return not self.issues and self.unreadable is None


@dataclass
class Summary:
    files: int = 0
    valid_files: int = 0
    records: int = 0
    valid_records: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    results: list[FileResult] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def invalid_files(self) -> int:
        return self.files - self.valid_files

    def add(self, result: FileResult) -> None:
        self.files += 1
        self.valid_files += result.valid
        self.records += result.records
        self.valid_records += result.valid_records
        self.by_code.update(str(issue.code) for issue in result.issues)
        self.results.append(result)
        if result.unreadable is not None:
            self.unreadable.append((result.path, result.unreadable))


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files as named and every regular ``*.xml`` file below named folders, in a stable
    order; and the paths that are missing or not regular files (a FIFO or a device
    would block or never end), named or found below a folder, and the folders that
    cannot be listed (their files were never seen)."""
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found, skipped = _xml_below(path)
            for file in found:
                if (why := _not_regular(file)) is None:
                    files.append(file)
                else:
                    skipped.append((file, why))
            missing.extend(sorted(skipped))
        elif (why := _not_regular(path)) is None:
            files.append(path)
        else:
            missing.append((path, why))
    return files, missing


def _xml_below(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The ``*.xml`` names below ``folder``, sorted, and each folder that could not be
    listed (``folder`` itself included) with why."""
    unlisted: list[tuple[Path, str]] = []

    def refused(exc: OSError) -> None:
        unlisted.append((Path(exc.filename), exc.strerror or str(exc)))

    found = [Path(root) / name for root, _dirs, names in os.walk(folder, onerror=refused)
             for name in names if name.lower().endswith(".xml")]
    return sorted(found), unlisted


def _not_regular(path: Path) -> str | None:
    """Why ``path`` is no file to read, or None. A link is followed, to a regular file
    only, as a named path is: the type is checked, not merely the name."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return NOT_FOUND
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if stat.S_ISREG(mode) else NOT_REGULAR


def validate_file(
    path: Path,
    limits: Limits | None = None,
    on_bytes: Callable[[int], None] | None = None,
    schema_version: int | None = None,
    node_division: str | None = None,
    on_record: Callable[[RecordCheck], None] | None = None,
) -> FileResult:
    """Validate one file to the end; one bad file never stops the caller's others.

    ``node_division``: an agent's own division, which its records must also lie within.
    ``on_record`` sees every record read, valid or not. At most ``MAX_FILE_ISSUES`` (or
    ``limits.max_file_issues``, when fewer) issues are listed, whatever their source
    (the file's, the envelope's, the records'), then one closing issue counts the rest;
    the issue that stopped the file is always listed.
    """
    limits = limits or Limits()
    most = min(limits.max_file_issues, MAX_FILE_ISSUES)
    reader = DocumentReader(
        path, str(path), replace(limits, max_file_issues=most),
        schema_version=schema_version, node_division=node_division, on_bytes=on_bytes,
    )
    record_issues = IssueCap(most)
    try:
        for check in reader:
            record_issues.extend(check.issues)
            if on_record is not None:
                on_record(check)
    except OSError as exc:
        return FileResult(path, reader.records, reader.valid, (), exc.strerror or str(exc))
    cap = IssueCap(most)
    cap.absorb(reader.issues)  # first: the file's own come before the records'
    cap.absorb(record_issues.with_closing(None))
    issues = cap.listed
    if not reader.fatal:
        # The file may have gone away since it was read: report without columns then.
        with contextlib.suppress(OSError):
            issues = resolve_columns(path, issues)
    issues.sort(key=lambda i: (i.line or 0, i.column or 0))
    if (closing := cap.closing(str(path))) is not None:
        issues.append(closing)  # last: it speaks of all the lines after those listed
    return FileResult(path, reader.records, reader.valid, tuple(issues))


def validate_paths(
    paths: Iterable[Path],
    limits: Limits | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    schema_version: int | None = None,
) -> Summary:
    summary = Summary()
    files, missing = expand_paths(paths)
    summary.unreadable.extend(missing)
    for path in files:
        result = validate_file(path, limits, on_bytes, schema_version)
        summary.add(result)
        if on_file is not None:
            on_file(result)
    return summary

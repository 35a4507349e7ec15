"""Validating files and folders for auditors: the engine behind ``exgate validate``."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from schemas.columns import resolve_columns
from schemas.issues import Issue
from schemas.reader import DocumentReader, Limits

__all__ = ["MAX_FILE_ISSUES", "FileResult", "Summary", "expand_paths", "validate_file",
           "validate_paths"]

# Issues kept per file: a file of millions of bad elements would otherwise hold them all
# in memory, and no reader goes past the first thousands; the rest are counted.
MAX_FILE_ISSUES = 10_000


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
    """Files as named and every ``*.xml`` below named folders, in a stable order; and
    the named paths that are missing or not files."""
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(_xml_below(path)))
        elif path.is_file():
            files.append(path)
        elif not path.exists():
            missing.append((path, "no such file or folder"))
        else:
            missing.append((path, "not a regular file or folder"))
    return files, missing


def _xml_below(folder: Path) -> Iterator[Path]:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(".xml"):
                yield Path(root) / name


def validate_file(
    path: Path,
    limits: Limits | None = None,
    on_bytes: Callable[[int], None] | None = None,
    schema_version: int | None = None,
    node_division: str | None = None,
) -> FileResult:
    """Validate one file to the end; one bad file never stops the caller's others.

    ``node_division``: an agent's own division, which its records must also lie within.
    """
    reader = DocumentReader(
        path, str(path), limits or Limits(), schema_version=schema_version,
        node_division=node_division, on_bytes=on_bytes,
    )
    record_issues: list[Issue] = []
    unlisted, first_unlisted = 0, None
    try:
        for check in reader:
            room = MAX_FILE_ISSUES - len(record_issues)
            record_issues.extend(check.issues[:room])
            if len(check.issues) > room:
                unlisted += len(check.issues) - room
                first_unlisted = first_unlisted or check.issues[room]
    except OSError as exc:
        return FileResult(path, reader.records, reader.valid, (), exc.strerror or str(exc))
    issues = reader.issues + record_issues
    if not reader.fatal:
        # The file may have gone away since it was read: report without columns then.
        with contextlib.suppress(OSError):
            issues = resolve_columns(path, issues)
    issues.sort(key=lambda i: (i.line or 0, i.column or 0))
    if first_unlisted is not None:  # last: it speaks of all the lines after those listed
        issues.append(Issue(first_unlisted.code, "more-file-issues",
                            {"count": unlisted, "shown": MAX_FILE_ISSUES}, file=str(path)))
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

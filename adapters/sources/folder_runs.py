"""The folder source's bookkeeping of the files it reads, and the report of a bad one.

``FileRun`` is what the source knows about a file while it reads it: its records, the
invalid ones and their issues (capped at ``max_report_issues``), its issues as a file,
and the progress saved with each of its chunks (``COUNTING``: how ``records`` counts).
``Group`` gathers finished small files to be sent as one chunk. ``write_report`` writes
the JSON report beside a file moved to ``error/``, with the column of each record issue.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.sources.base import Origin
from adapters.sources.folder_files import REPORT_SUFFIX
from schemas.columns import resolve_columns
from schemas.issues import Issue, IssueCode
from schemas.record_check import RecordCheck
from schemas.times import BEIJING

__all__ = ["COUNTING", "FileRun", "Group", "unreadable_issue", "write_report"]

# How ``records`` in a file's progress counts: 2 since elements under BODY that are no
# exchange element stopped being counted as records. Progress counted otherwise (left by
# an older agent with a file half read) is no place to resume: the file is read again
# from its start, and the outbox drops what it journaled already.
COUNTING = 2


@dataclass
class FileRun:
    """What the source knows about the file it is reading, for its report."""

    name: str
    path: Path
    sha256: str
    records: int = 0
    invalid: int = 0
    issues: list[Issue] = field(default_factory=list)  # of invalid records, capped
    truncated: bool = False
    file_issues: tuple[Issue, ...] = ()

    @property
    def bad(self) -> bool:
        return self.invalid > 0 or bool(self.file_issues)

    def note_invalid(self, check: RecordCheck, max_report_issues: int) -> None:
        self.invalid += 1
        room = max_report_issues - len(self.issues)
        if room < len(check.issues):
            self.truncated = True
        self.issues.extend(check.issues[:max(room, 0)])

    def progress(self, *, done: bool) -> dict[str, Any]:
        return {"file": self.name, "sha256": self.sha256, "records": self.records,
                "done": done, "counting": COUNTING}


@dataclass
class Group:
    """Finished small files waiting to be sent as one chunk."""

    checks: list[tuple[Origin, RecordCheck]] = field(default_factory=list)
    file_issues: list[Issue] = field(default_factory=list)
    runs: list[FileRun] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)

    def add(self, checks: list[tuple[Origin, RecordCheck]], progress: dict[str, Any],
            run: FileRun) -> None:
        self.checks.extend(checks)
        self.file_issues.extend(run.file_issues)
        self.runs.append(run)
        self.progress = progress

    def clear(self) -> None:
        self.checks, self.file_issues, self.runs, self.progress = [], [], [], {}


def write_report(run: FileRun, target: Path, *, source: str, node: str, lang: str) -> None:
    """The report beside ``target``, the bad file moved to ``error/``."""
    report = {
        "file": run.name,
        "moved_to": target.name,
        "sha256": run.sha256 or None,  # not known for a file unread (too large, unreadable)
        "source": source,
        "node": node,
        "checked_at": datetime.now(BEIJING).isoformat(timespec="seconds"),
        "counts": {"records": run.records, "valid": run.records - run.invalid,
                   "invalid": run.invalid, "file_issues": len(run.file_issues)},
        "issues": [i.to_json(lang) for i in _with_columns(run)],
        "truncated": run.truncated,
    }
    path = target.with_name(target.name + REPORT_SUFFIX)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


def _with_columns(run: FileRun) -> list[Issue]:
    """The report's issues with the column of each record issue's tag, as ``exgate
    validate`` gives them: the clerk's editor goes to the field. Only a bad file pays
    for this second look, at its lines with issues alone."""
    issues = [*run.file_issues, *run.issues]
    try:
        return resolve_columns(run.path, issues)
    except (OSError, UnicodeError):  # the report still goes out, without columns
        return issues


def unreadable_issue(name: str, detail: str) -> Issue:
    return Issue(IssueCode.MALFORMED_XML, "unreadable", {"detail": detail}, file=name)

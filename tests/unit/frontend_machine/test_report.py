"""What ``agent once`` prints about rejects."""

from __future__ import annotations

from adapters.sources.base import Chunk, Origin
from frontend_machine.outbox import JournalResult
from frontend_machine.report import Tally
from schemas.issues import Issue, IssueCode
from schemas.record_check import RecordCheck


def _reject(line: int, fields: tuple[str, ...]) -> tuple[Origin, RecordCheck]:
    issues = tuple(Issue(IssueCode.MISSING_FIELD, "missing-field", {"field": f, "label": f},
                         "SBXX", f, "a.xml", line) for f in fields)
    return Origin("src", "a.xml", line), RecordCheck("SBXX", line, None, issues)


def test_the_more_line_counts_issue_lines_not_records() -> None:
    tally = Tally(max_listed=3)
    chunk = Chunk((_reject(5, ("SBLSH", "SXBM")), _reject(9, ("SBLSH", "SXBM", "SQRMC"))))
    tally.add("src", chunk, JournalResult(rejected=2), "en")
    out = tally.lines("en")
    assert sum(line.startswith("  a.xml:") for line in out) == 3
    assert "  ... and 2 more" in out  # 5 issue lines, 3 shown; not "2 records - 3 lines"

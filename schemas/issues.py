"""Validation issues: a stable code, a location, and a message in Chinese or English."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from schemas.messages import render

__all__ = ["MORE_FILE_ISSUES", "Issue", "IssueCap", "IssueCode"]

MORE_FILE_ISSUES = "more-file-issues"  # the message of the issue that counts those not listed


class IssueCode(StrEnum):
    """The stable error identifiers of design §8; scripts match on these."""

    EMPTY_FILE = "empty-file"
    FILE_TOO_LARGE = "file-too-large"
    ENCODING_ERROR = "encoding-error"
    MALFORMED_XML = "malformed-xml"
    FORBIDDEN_DTD = "forbidden-dtd"
    WRONG_ROOT = "wrong-root"
    UNKNOWN_SCHEMA_VERSION = "unknown-schema-version"
    UNKNOWN_ELEMENT = "unknown-element"
    MISSING_FIELD = "missing-field"
    UNEXPECTED_FIELD = "unexpected-field"
    BAD_VALUE = "bad-value"
    BAD_CHECK_DIGIT = "bad-check-digit"
    BAD_DATE = "bad-date"
    CONDITIONAL_FIELD = "conditional-field"
    COUNT_MISMATCH = "count-mismatch"
    DIVISION_MISMATCH = "division-mismatch"
    DUPLICATE_RECORD = "duplicate-record"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a document.

    ``message_id`` selects a template in ``schemas.messages``; ``args`` fill it. The
    location (file, line, column) is attached by the reader, not by the rules. An issue
    that stopped the reading of its file carries ``unread_after`` and ``unread_column``
    (where reading stopped) in ``args``, and its message says that nothing after that
    was checked.
    """

    code: IssueCode
    message_id: str
    args: dict[str, Any] = field(default_factory=dict)
    element: str | None = None
    field: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def message(self, lang: str = "zh") -> str:
        text = render(self.message_id, self.args, lang)
        if (line := self.args.get("unread_after")) is not None:
            column = self.args.get("unread_column")
            stop = "records-not-read-line" if column is None else "records-not-read"
            text += render(stop, {"line": line, "column": column}, lang)
        return text

    def located(self, **location: Any) -> Issue:
        return replace(self, **location)

    def to_json(self, lang: str = "zh") -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "element": self.element,
            "field": self.field,
            "code": str(self.code),
            "message": self.message(lang),
        }


@dataclass
class IssueCap:
    """At most ``limit`` issues listed; the rest only counted, and named at the end by one
    closing issue: a file of millions of bad elements must not hold an issue for each.

    ``keep`` (the issue that stops a file) is always listed: when the list is full it
    takes the last place, and the issue it displaces is counted instead.
    """

    limit: int
    listed: list[Issue] = field(default_factory=list)
    unlisted: int = 0
    first_unlisted: Issue | None = None

    def add(self, issue: Issue, *, keep: bool = False) -> None:
        if len(self.listed) >= self.limit:
            if not keep:
                self._count(issue, 1)
                return
            self._count(self.listed.pop(), 1)
        self.listed.append(issue)

    def extend(self, issues: Iterable[Issue]) -> None:
        for issue in issues:
            self.add(issue)

    def absorb(self, issues: Iterable[Issue]) -> None:
        """Add ``issues``, taking another cap's closing issue as the count it names."""
        for issue in issues:
            if issue.message_id == MORE_FILE_ISSUES:
                self._count(issue, int(issue.args["count"]))
            else:
                self.add(issue)

    def with_closing(self, file: str | None) -> list[Issue]:
        """The issues listed, then the closing issue when some were not."""
        closing = self.closing(file)
        return self.listed if closing is None else [*self.listed, closing]

    def closing(self, file: str | None) -> Issue | None:
        """The issue that names how many were not listed; None when all were."""
        if self.first_unlisted is None:
            return None
        return Issue(self.first_unlisted.code, MORE_FILE_ISSUES,
                     {"count": self.unlisted, "shown": self.limit}, file=file)

    def _count(self, issue: Issue, count: int) -> None:
        self.unlisted += count
        if self.first_unlisted is None:
            self.first_unlisted = issue

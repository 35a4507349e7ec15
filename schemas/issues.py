"""Validation issues: a stable code, a location, and a message in Chinese or English."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from schemas.messages import render

__all__ = ["Issue", "IssueCode"]


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
    location (file, line, column) is attached by the reader, not by the rules.
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
        return render(self.message_id, self.args, lang)

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

"""libxml2's parse errors mapped to the file-level issue codes of design §8."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from schemas.columns import locate_undecodable
from schemas.issues import Issue, IssueCode

__all__ = ["LIBXML_TEXT_LIMIT", "declared_encoding", "syntax_issue"]

LIBXML_TEXT_LIMIT = 10_000_000  # libxml2's own cap on one text node without XML_PARSE_HUGE

_ENCODING_ERRORS = frozenset(
    {"ERR_INVALID_ENCODING", "ERR_UNSUPPORTED_ENCODING", "ERR_UNKNOWN_ENCODING"}
)
_ENTITY_ERRORS = frozenset(
    {
        "ERR_UNDECLARED_ENTITY",
        "WAR_UNDECLARED_ENTITY",
        "ERR_ENTITY_PE_INTERNAL",
        "ERR_ENTITYREF_NO_NAME",
    }
)


def syntax_issue(
    exc: etree.XMLSyntaxError, source: Path | bytes, name: str, text_limit: int
) -> Issue:
    """The one issue that stops a document: what libxml2 refused, where, and why.

    ``source`` is read again only for an encoding error, to find the exact spot of the
    undecodable bytes; ``text_limit`` is the text-node cap that was in force.
    """
    # The first logged error is the cause; exc.position is (0, 0) for some errors.
    # Per-record XSD checks log into the same list: keep only the parser's own.
    located = [
        entry
        for entry in exc.error_log
        if entry.line > 0 and entry.domain != etree.ErrorDomains.SCHEMASV
    ]
    first = located[0] if located else exc.error_log.last_error
    kind = first.type_name if first is not None else ""
    line = first.line if first is not None and first.line > 0 else None
    column = first.column if first is not None and first.line > 0 else None
    detail = (first.message if first is not None else exc.msg or "").split(", line ")[0]

    code, message_id, args = _classify(kind, detail, text_limit)
    if code is IssueCode.ENCODING_ERROR:
        encoding = declared_encoding(_prolog(source))
        args["encoding"] = encoding
        line, column = locate_undecodable(source, encoding) or (line, column)
    return Issue(code, message_id, args, file=name, line=line, column=column)


def _classify(kind: str, detail: str, text_limit: int) -> tuple[IssueCode, str, dict[str, object]]:
    if kind in _ENCODING_ERRORS:
        return IssueCode.ENCODING_ERROR, "encoding-error", {"detail": detail}
    if kind in _ENTITY_ERRORS or "entity" in detail.lower():
        return IssueCode.FORBIDDEN_DTD, "forbidden-dtd", {"detail": detail}
    if kind == "ERR_RESOURCE_LIMIT" and "text" in detail.lower():
        return IssueCode.FILE_TOO_LARGE, "text-too-large", {"limit": text_limit}
    if kind == "ERR_RESOURCE_LIMIT":
        return IssueCode.MALFORMED_XML, "too-deep", {"detail": detail}
    return IssueCode.MALFORMED_XML, "malformed-xml", {"detail": detail}


def _prolog(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:200]
    with source.open("rb") as handle:
        return handle.read(200)


def declared_encoding(prolog: bytes) -> str:
    """The encoding a document's first bytes declare: BOM, then XML declaration."""
    if prolog.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    marker = prolog.find(b"encoding=")
    if marker < 0:
        return "UTF-8"
    rest = prolog[marker + 9 :]
    quote = rest[:1]
    end = rest.find(quote, 1)
    return rest[1:end].decode("ascii", "replace") if end > 0 else "UTF-8"

"""libxml2's parse errors mapped to the file-level issue codes of design §8."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from lxml import etree

from schemas.columns import GBK_LABELS, locate_undecodable
from schemas.issues import Issue, IssueCode

__all__ = [
    "LIBXML_TEXT_LIMIT",
    "PROLOG_BYTES",
    "declared_encoding",
    "parser_encoding",
    "syntax_issue",
]

PROLOG_BYTES = 1024  # read for the XML declaration; a longer one is not read
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
        encoding = declared_encoding(_prolog(source)) or "UTF-8"
        args["encoding"] = encoding
        spot = locate_undecodable(source, encoding)
        if spot is not None:
            line, column = spot.line, spot.column
            if spot.data:
                message_id = "undecodable-bytes"
                args["data"] = " ".join(f"0x{byte:02X}" for byte in spot.data)
        elif kind == "ERR_INVALID_ENCODING":
            line = column = None  # libxml2's spot is its conversion block's start
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
        return source[:PROLOG_BYTES]
    with source.open("rb") as handle:
        return handle.read(PROLOG_BYTES)


_SPACE = "[ \t\r\n]"
# An XML declaration as XML 1.0 spells it, with the encoding (if any) in group 3.
_DECLARATION = re.compile(
    rf"<\?xml{_SPACE}+version{_SPACE}*={_SPACE}*([\"'])1\.[0-9]+\1"
    rf"(?:{_SPACE}+encoding{_SPACE}*={_SPACE}*([\"'])([A-Za-z][A-Za-z0-9._-]*)\2)?"
    rf"(?:{_SPACE}+standalone{_SPACE}*={_SPACE}*([\"'])(?:yes|no)\4)?{_SPACE}*\?>".encode()
)


def parser_encoding(prolog: bytes) -> str | None:
    """The encoding to tell the parser, overriding the document's declaration: GB18030
    for a document labelled with a GBK name (see ``columns.GBK_LABELS``) and no byte
    order mark, else None (the document's own)."""
    if prolog.startswith(codecs.BOM_UTF8):
        return None
    encoding = declared_encoding(prolog)
    return "GB18030" if encoding is not None and encoding.lower() in GBK_LABELS else None


def declared_encoding(prolog: bytes) -> str | None:
    """The encoding a document's first bytes name: a UTF-16 byte order mark or NULs,
    else the XML declaration's, else UTF-8. None when the declaration cannot be read
    (cut off, or not well-formed)."""
    if prolog.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in prolog[:4]:
        return "UTF-16"
    prolog = prolog.removeprefix(codecs.BOM_UTF8)
    if not prolog.startswith(b"<?xml"):
        return "UTF-8"
    declaration = _DECLARATION.match(prolog)
    if declaration is None:
        return None
    return (declaration.group(3) or b"UTF-8").decode()

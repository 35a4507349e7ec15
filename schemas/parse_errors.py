"""libxml2's parse errors mapped to the file-level issue codes of design §8."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from lxml import etree

from schemas.columns import GBK_LABELS, locate_undecodable, sniffed_encoding
from schemas.issues import Issue, IssueCode
from schemas.messages import Localized
from schemas.reader_source import head_bytes

__all__ = [
    "LIBXML_TEXT_LIMIT",
    "PROLOG_BYTES",
    "declared_encoding",
    "parser_encoding",
    "syntax_issue",
]

PROLOG_BYTES = 1024  # read for the XML declaration; a longer one is not read
LIBXML_TEXT_LIMIT = 10_000_000  # libxml2's own cap on one text node without XML_PARSE_HUGE
LIBXML_NAME_LIMIT = 50_000  # libxml2's cap on one name without XML_PARSE_HUGE

_ENCODING_ERRORS = frozenset(
    {"ERR_INVALID_ENCODING", "ERR_UNSUPPORTED_ENCODING", "ERR_UNKNOWN_ENCODING"}
)
_ENTITY_ERRORS = frozenset(
    {
        "ERR_UNDECLARED_ENTITY",
        "WAR_UNDECLARED_ENTITY",
        "ERR_ENTITY_PE_INTERNAL",
    }
)
# A bare "&" (clerks' commonest slip: "长沙A&B公司"): libxml2 reads it as the start of
# an entity reference with no name or no closing ";". No DTD is involved.
_AMPERSAND_ERRORS = frozenset({"ERR_ENTITYREF_SEMICOL_MISSING", "ERR_ENTITYREF_NO_NAME"})
_AMPERSAND_DETAIL = "xmlParseEntityRef: no name"
# What libxml2 found over its size caps (comments, processing instructions and CDATA
# sections say "... too big found"; names "Name too long"; a tag or attribute value
# "Buffer size limit exceeded"), named for the clerk.
_TOO_LARGE = (
    ("Comment too big", Localized("注释", "a comment"), LIBXML_TEXT_LIMIT),
    ("too big found", Localized("处理指令或 CDATA 段", "a processing instruction or CDATA section"),
     LIBXML_TEXT_LIMIT),
    ("Name too long", Localized("元素名或属性名", "an element or attribute name"),
     LIBXML_NAME_LIMIT),
    ("Buffer size limit", Localized("标签或属性值", "a tag or attribute value"),
     LIBXML_TEXT_LIMIT),
)
_DEPTH = re.compile(r"Excessive depth in document: (\d+)")


def syntax_issue(
    exc: etree.XMLSyntaxError,
    source: Path | bytes,
    name: str,
    text_limit: int,
    *,
    after_root: bool = False,
) -> Issue:
    """The one issue that stops a document: what libxml2 refused, where, and why.

    ``source`` is read again only for an encoding error, to find the exact spot of the
    undecodable bytes; ``text_limit`` is the text-node cap that was in force. Every
    such error is fatal to libxml2 (it halts its parser: nothing after it is parsed), so
    the issue says from where on no record was checked (``unread_after``), unless it
    lies ``after_root``, past the end of EXCHANGE, where no record can be.
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
    detail = (first.message if first is not None else exc.msg or "").split(", line ")[0].strip()

    code, message_id, args = _classify(kind, detail, text_limit)
    if code is IssueCode.ENCODING_ERROR:
        encoding = declared_encoding(head_bytes(source, PROLOG_BYTES)) or "UTF-8"
        args["encoding"] = encoding
        spot = locate_undecodable(source, encoding)
        if spot is not None:
            line, column = spot.line, spot.column
            if spot.data:
                message_id = "undecodable-bytes"
                args["data"] = " ".join(f"0x{byte:02X}" for byte in spot.data)
        elif kind == "ERR_INVALID_ENCODING":
            line = column = None  # libxml2's spot is its conversion block's start
    if line is not None and not after_root:
        args["unread_after"], args["unread_column"] = line, column
    return Issue(code, message_id, args, file=name, line=line, column=column)


def _classify(kind: str, detail: str, text_limit: int) -> tuple[IssueCode, str, dict[str, object]]:
    if kind in _ENCODING_ERRORS:
        return IssueCode.ENCODING_ERROR, "encoding-error", {"detail": detail}
    if kind in _AMPERSAND_ERRORS or detail.startswith(_AMPERSAND_DETAIL):
        return IssueCode.MALFORMED_XML, "unescaped-ampersand", {}
    if kind in _ENTITY_ERRORS or "entity" in detail.lower():
        return IssueCode.FORBIDDEN_DTD, "forbidden-dtd", {"detail": detail}
    if kind == "ERR_RESOURCE_LIMIT" and "text node" in detail.lower():
        return IssueCode.FILE_TOO_LARGE, "text-too-large", {"limit": text_limit}
    if (depth := _DEPTH.search(detail)) is not None:
        return IssueCode.MALFORMED_XML, "too-deep", {"limit": int(depth[1])}
    for words, what, limit in _TOO_LARGE:
        if words in detail:
            return IssueCode.FILE_TOO_LARGE, "too-large", {"what": what, "limit": limit}
    if kind == "ERR_RESOURCE_LIMIT":  # a cap not named above: still no hint for programmers
        what = Localized("文档的某一部分", "a part of the document")
        return IssueCode.FILE_TOO_LARGE, "too-large", {"what": what, "limit": LIBXML_TEXT_LIMIT}
    return IssueCode.MALFORMED_XML, "malformed-xml", {"detail": detail}


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
    order mark; UTF-32 for a UTF-32 byte order mark, which libxml2's push parser takes
    for UTF-16's; else None (the document's own)."""
    if prolog.startswith(codecs.BOM_UTF8):
        return None
    if prolog.startswith((codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE)):
        return "UTF-32"
    encoding = declared_encoding(prolog)
    return "GB18030" if encoding is not None and encoding.lower() in GBK_LABELS else None


def declared_encoding(prolog: bytes) -> str | None:
    """The encoding a document's first bytes name: UTF-16 or UTF-32 by their byte order
    mark or the form of "<?" (XML 1.0 Appendix F), else the XML declaration's, else
    UTF-8. None when the declaration cannot be read (cut off, not well-formed, or NULs
    in no form the appendix knows)."""
    if (sniffed := sniffed_encoding(prolog)) is not None:
        return sniffed
    if b"\x00" in prolog[:4]:
        return None
    prolog = prolog.removeprefix(codecs.BOM_UTF8)
    if not prolog.startswith(b"<?xml"):
        return "UTF-8"
    declaration = _DECLARATION.match(prolog)
    if declaration is None:
        return None
    return (declaration.group(3) or b"UTF-8").decode()

"""Finding the column of each issue after a streaming pass.

libxml2 reports lines but no columns for schema errors, and a streaming reader cannot
look back. So once a document is read, a second pass over only the lines that have
issues finds the start tag of the named field (or element) and reports its column,
counted in characters from 1. Whole-file issues keep the parser's own column, except
where libxml2 gives none worth having: undecodable bytes (it names the start of the
block it was converting) and a DOCTYPE (it names none), which are found here.

Also here: which codec reads a declared encoding (``python_codec``), shared by the
reader's parser, these passes and the scanner, so all of them read the same text.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from schemas.issues import Issue
from schemas.reader_source import open_raw

__all__ = [
    "GBK_LABELS",
    "Undecodable",
    "locate_doctype",
    "locate_last_text",
    "locate_undecodable",
    "python_codec",
    "resolve_columns",
    "sniffed_encoding",
]

_ENCODING_DECL = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")

# The names legacy systems give GBK text: the WHATWG Encoding Standard's labels for its
# GBK decoder (which is its GB18030 decoder) and Windows' names for code page 936. Such
# text is routinely labelled GB2312 though it holds GBK characters (喆, 堃, 镕 in names),
# and GB18030 reads every valid GB2312 and GBK sequence as the same character, but for
# GB2312's A1A4 and A1AA, which it reads as · and — (U+00B7, U+2014) as Windows does.
GBK_LABELS = frozenset(
    {
        "gbk", "gb2312", "gb_2312", "gb_2312-80", "chinese", "csgb2312", "csiso58gb231280",
        "iso-ir-58", "x-gbk", "cp936", "ms936", "windows-936", "euc-cn", "euccn",
    }
)
# What a document's first four bytes say of its encoding (XML 1.0, Appendix F): a byte
# order mark, or the "<?" of its declaration in UTF-16 or UTF-32. UTF-32's marks come
# before UTF-16's, which they begin with. A byte order mark is read by the codec.
_SNIFFED = (
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (b"\x00\x00\x00<", "UTF-32BE"),
    (b"<\x00\x00\x00", "UTF-32LE"),
    (b"\x00<\x00?", "UTF-16BE"),
    (b"<\x00?\x00", "UTF-16LE"),
)
# Characters of a line searched for a column. A longer line (a file written on one
# line) gets none: it is never held whole, and its first tag of a name is rarely the
# one an issue speaks of.
_LONGEST_LINE = 1 << 20
_DOCTYPE_WINDOW = 1 << 20  # bytes of prolog searched for a DOCTYPE
# What may come before a DOCTYPE: the XML declaration, comments, processing
# instructions and white space.
_BEFORE_DOCTYPE = re.compile(
    r"\ufeff?(?:<\?(?:[^?]|\?(?!>))*+\?>|<!--(?:[^-]|-(?!-))*+-->|[ \t\r\n]++)*+"
)


def resolve_columns(source: Path | bytes, issues: Iterable[Issue]) -> list[Issue]:
    """Return ``issues`` with ``column`` filled where it was missing."""
    issues = list(issues)
    wanted = {i.line for i in issues if i.column is None and i.line is not None}
    if not wanted:
        return issues
    texts = dict(_lines(source, wanted))
    return [_with_column(issue, texts) for issue in issues]


def _with_column(issue: Issue, texts: dict[int, str]) -> Issue:
    if issue.column is not None or issue.line is None or issue.line not in texts:
        return issue
    text = texts[issue.line]
    tag = issue.field if issue.field and issue.field not in ("HEAD", "BODY") else issue.element
    position = _tag_position(text, tag) if tag else -1
    if position < 0 and issue.element:
        position = _tag_position(text, issue.element)
    if position < 0:
        position = len(text) - len(text.lstrip())
    return issue.located(column=position + 1)


def _tag_position(text: str, tag: str) -> int:
    match = re.search(rf"<(?:[\w.\-]+:)?{re.escape(tag)}[\s/>]", text)
    return match.start() if match else -1


def locate_last_text(source: Path | bytes, text: str) -> int | None:
    """The line of the last occurrence of ``text`` (on one line) in the document, or
    None. Read in blocks: a document may be one line of gigabytes."""
    if not text:
        return None
    keep = len(text) - 1  # characters carried over: an occurrence may span two blocks
    found, line, carried = None, 1, ""
    with open_raw(source) as raw:
        encoding = _encoding(raw.read(256))
        raw.seek(0)
        reader = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="\n")
        while block := reader.read(1 << 20):
            window = carried + block
            if (at := window.rfind(text)) >= 0:
                found = line + window.count("\n", 0, at)
            carried = window[len(window) - keep:] if keep else ""
            line += window.count("\n", 0, len(window) - len(carried))
    return found


def _lines(source: Path | bytes, wanted: set[int]) -> Iterator[tuple[int, str]]:
    last = max(wanted)
    with open_raw(source) as raw:
        encoding = _encoding(raw.read(256))
        raw.seek(0)
        # Split on "\n" only, as libxml2 counts lines; str.splitlines would also split
        # on U+2028 and friends and shift every later line number.
        reader = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="\n")
        for number in range(1, last + 1):
            text = reader.readline(_LONGEST_LINE)
            if not text:
                return
            whole = text.endswith("\n") or len(text) < _LONGEST_LINE
            while not whole:  # skipped, never held: a file may be one line of gigabytes
                rest = reader.readline(_LONGEST_LINE)
                whole = not rest or rest.endswith("\n")
                text = ""
            if number in wanted and text:
                yield number, text.lstrip("\ufeff")


def sniffed_encoding(prolog: bytes) -> str | None:
    """The UTF-16 or UTF-32 form a document's first bytes show, by XML 1.0 Appendix F;
    None when they show none (an ASCII-compatible start: the declaration says)."""
    return next((name for mark, name in _SNIFFED if prolog.startswith(mark)), None)


def _encoding(prolog: bytes) -> str:
    if prolog.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if (sniffed := sniffed_encoding(prolog)) is not None:
        return sniffed.lower()
    match = _ENCODING_DECL.search(prolog)
    if match is None:
        return "utf-8"
    name = python_codec(match.group(1).decode("ascii"))
    try:
        codecs.lookup(name)
    except LookupError:
        return "utf-8"
    return name


class Undecodable(NamedTuple):
    """Where a document stops being text in its encoding, and the bytes that stop it."""

    line: int
    column: int
    data: bytes  # empty when the encoding itself is unknown


def locate_undecodable(source: Path | bytes, declared: str) -> Undecodable | None:
    """The first byte sequence that ``declared`` cannot decode, or None.

    libxml2 converts input in blocks and reports an encoding error at the start of
    the block, which can be many lines before the bad bytes; auditors need the spot.
    """
    codec = python_codec(declared)
    try:
        decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    except LookupError:
        return Undecodable(1, 1, b"")
    line, column = 1, 1
    with open_raw(source) as raw:
        while block := raw.read(65536):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                text = exc.object[: exc.start].decode(codec, errors="replace")
                line, column = _advance(line, column, text)
                return Undecodable(line, column, exc.object[exc.start : exc.end])
            line, column = _advance(line, column, text)
    return None


def locate_doctype(source: Path | bytes, declared: str) -> tuple[int, int] | None:
    """Line and column of the DOCTYPE declaration, or None when it is not found in the
    first MiB (a prolog that long is no exchange file's)."""
    try:
        decoder = codecs.getincrementaldecoder(python_codec(declared))(errors="replace")
    except LookupError:
        return None
    with open_raw(source) as raw:
        text = decoder.decode(raw.read(_DOCTYPE_WINDOW))
    before = _BEFORE_DOCTYPE.match(text)
    if before is None or not text.startswith("<!DOCTYPE", before.end()):
        return None
    return _advance(1, 1, text[: before.end()])


def _advance(line: int, column: int, text: str) -> tuple[int, int]:
    newlines = text.count("\n")
    if newlines == 0:
        return line, column + len(text)
    return line + newlines, len(text) - text.rindex("\n")


def python_codec(declared: str) -> str:
    """The Python codec that reads a document declared as ``declared``: its own, but
    GB18030 for the GBK family (``GBK_LABELS``), as the reader's parser is told to."""
    name = declared.lower()
    return "gb18030" if name in GBK_LABELS else name

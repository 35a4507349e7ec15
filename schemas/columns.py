"""Finding the column of each issue after a streaming pass.

libxml2 reports lines but no columns for schema errors, and a streaming reader cannot
look back. So once a document is read, a second pass over only the lines that have
issues finds the start tag of the named field (or element) and reports its column,
counted in characters from 1. Whole-file issues keep the parser's own column.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from schemas.issues import Issue

__all__ = ["locate_undecodable", "resolve_columns"]

_ENCODING_DECL = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")


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


def _lines(source: Path | bytes, wanted: set[int]) -> Iterator[tuple[int, str]]:
    last = max(wanted)
    with _open(source) as raw:
        encoding = _encoding(raw.read(256))
        raw.seek(0)
        # Split on "\n" only, as libxml2 counts lines; str.splitlines would also split
        # on U+2028 and friends and shift every later line number.
        reader = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="\n")
        for number, text in enumerate(reader, start=1):
            if number in wanted:
                yield number, text.lstrip("\ufeff")
            if number >= last:
                return


def _open(source: Path | bytes) -> io.BufferedReader | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def _encoding(prolog: bytes) -> str:
    if prolog.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if prolog.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    match = _ENCODING_DECL.search(prolog)
    if match is None:
        return "utf-8"
    name = _python_codec(match.group(1).decode("ascii"))
    try:
        codecs.lookup(name)
    except LookupError:
        return "utf-8"
    return name


def locate_undecodable(source: Path | bytes, declared: str) -> tuple[int, int] | None:
    """Line and column of the first byte sequence that ``declared`` cannot decode.

    libxml2 converts input in blocks and reports an encoding error at the start of
    the block, which can be many lines before the bad bytes; auditors need the spot.
    """
    try:
        decoder = codecs.getincrementaldecoder(_python_codec(declared))(errors="strict")
    except LookupError:
        return (1, 1)
    line, column = 1, 1
    with _open(source) as raw:
        while block := raw.read(65536):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                text = exc.object[: exc.start].decode(_python_codec(declared), errors="replace")
                line, column = _advance(line, column, text)
                return line, column
            line, column = _advance(line, column, text)
    return None


def _advance(line: int, column: int, text: str) -> tuple[int, int]:
    newlines = text.count("\n")
    if newlines == 0:
        return line, column + len(text)
    return line + newlines, len(text) - text.rindex("\n")


def _python_codec(declared: str) -> str:
    name = declared.lower()
    return "gb18030" if name in ("gbk", "gb2312") else name

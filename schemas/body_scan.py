"""Finding the plain records of a UTF-8 document in its text, before any parser sees them.

Exchange files and batches are written by machines: records with their fields in the
XSD's order, plain values, white space between. The scanner finds each such record
with one regular expression and proves it valid through the fast path's predicates
(``fast_check``), for a fraction of what parsing it would cost. Everything else (the
prolog, the HEAD, a record it cannot prove, stray text, comments, the end of the
document) is fed to lxml, which stays the parser of record: it receives the document's
own bytes with each proven run of records replaced by a comment of the same lines and
the same last-line width, so every line and column lxml reports is the file's.

The scanner proves records only where it knows lxml's state: just inside the first
BODY, or just after a record of BODY ended, outside any comment, CDATA section or
processing instruction. After feeding lxml anything else it asks the reader, through
``at_level``, whether lxml's last event put it back there; until then it only feeds.
A document in another encoding, or whose BODY cannot be found plainly, is fed to lxml
whole, as it was before the scanner existed, but for one cut (``split_at_undecodable``):
just before the first bytes its encoding cannot decode, so that lxml parses every record
before them.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from schemas.catalog import SchemaCatalog
from schemas.columns import python_codec
from schemas.fast_check import FastCheck
from schemas.parse_errors import declared_encoding

__all__ = ["BodyScanner", "ScannedRecord", "plain_utf8", "split_at_undecodable"]

_CHUNK = 1 << 20  # characters decoded per read
_LONGEST_RECORD = 1 << 16  # characters; a longer record is left to lxml
_PROLOG_LIMIT = 1 << 20  # characters searched for the BODY start tag
_LONGEST_END_TAG = 32
_ONLY_SPACE_LEFT = re.compile(r"[ \t\r\n]*+\Z")
# The prolog and HEAD as XML tokens: it must end outside any comment, CDATA section,
# processing instruction or tag for the BODY start tag after it to be a real one.
_MARKUP = re.compile(
    r"\ufeff?(?:[^<]++|<!--(?:[^-]|-(?!-))*+-->|<\?(?:[^?]|\?(?!>))*+\?>"
    r"|<!\[CDATA\[(?:[^\]]|\](?!\]>))*+\]\]>|<[^!?][^>\"']*+(?:(?:\"[^\"]*+\"|'[^']*+')[^>\"']*+)*+>)*+"
)


def plain_utf8(prolog: bytes) -> bool:
    """Whether a document starting with ``prolog`` is certainly UTF-8."""
    encoding = declared_encoding(prolog)
    return encoding is not None and encoding.replace("-", "").upper() == "UTF8"


def split_at_undecodable(chunks: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """``chunks`` as they come, but the one holding the first bytes ``encoding`` cannot
    decode is cut in two just before them.

    libxml2 converts each piece it is fed whole, and on bad bytes drops the good text
    before them in that piece: fed apart, every record before the bad bytes is parsed,
    and libxml2 still finds and names them. Where this decoder and libxml2's disagree,
    the cut is merely somewhere else: the pieces still join into the same input.
    """
    decoder = None
    if encoding is not None:
        with contextlib.suppress(LookupError):  # an unknown encoding is libxml2's to report
            decoder = codecs.getincrementaldecoder(python_codec(encoding))("strict")
    for chunk in chunks:
        if decoder is not None:
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                decoder = None
                if (cut := exc.start - pending) > 0:
                    yield chunk[:cut]
                    chunk = chunk[cut:]
            except UnicodeError:  # no position to cut at (UTF-16 without a BOM): libxml2 judges it
                decoder = None
        yield chunk


class _Stream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(slots=True)  # not frozen: its __init__ runs for every record
class ScannedRecord:
    """A record proven valid against the XSD from the text alone."""

    code: str
    fields: dict[str, str]
    line: int
    match: re.Match[str]
    check: FastCheck

    def field_lines(self) -> dict[str, int]:
        """The line of each field present: only asked when the rules refuse the record."""
        text, start = self.match.string, self.match.start()
        return {
            field.code: self.line + text.count("\n", start, self.match.start(index))
            for index, field in enumerate(self.check.fields, start=1)
            if self.match.start(index) >= 0
        }


class BodyScanner:
    """Splits a document into proven records and the bytes lxml must parse.

    Iterating yields, in document order, ``bytes`` to feed to lxml and
    ``ScannedRecord``s. ``at_level(tag)`` must say whether lxml's last event was the
    start of the first BODY (``tag`` is BODY's) or the end of a record of BODY with
    that tag; the reader answers it from the events it drained after each feed.
    """

    def __init__(
        self,
        stream: BinaryIO | _Stream,
        catalog: SchemaCatalog,
        prolog: bytes,
        at_level: Callable[[str, int], bool],
    ):
        self._stream = stream
        self._catalog = catalog
        self._checks = catalog.fast_checks
        self._at_level = at_level
        self._encoding = declared_encoding(prolog)
        self._plain = plain_utf8(prolog)
        self._record_ends = 0  # record end tags fed to lxml: it must have seen as many
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._text = ""
        self._pos = 0  # the cursor in _text: everything before it is fed or proven
        self._line = 1  # the line the cursor is on
        self._cut: int | None = None  # where the run of proven records before _pos began
        self._undecodable = b""  # bytes from the first that is not UTF-8 on
        self._ended = False  # nothing more will be decoded
        self._last_fed = ""  # the last character fed, for markup split across feeds
        codes = "|".join(re.escape(code) for code in catalog.elements)
        self._any_record_end = re.compile(rf"</(?:{codes})>")
        self._record_start = re.compile(rf"[ \t\r\n]*+<({codes})>")
        # Only where a tag follows has lxml seen the record's whole tail (a comment,
        # CDATA section or processing instruction may have text after it).
        self._record_end = re.compile(rf"</({codes})>[ \t\r\n]*+(?=<[^!?])")

    def __iter__(self) -> Iterator[bytes | ScannedRecord]:
        if self._plain:
            if (yield from self._prolog()):
                while (yield from self._records()) and (yield from self._stretch()):
                    pass
            yield from self._feed_to_end()
        yield from split_at_undecodable(self._raw_rest(), self._encoding)

    # -- the three stretches of a document ------------------------------------------------

    def _prolog(self) -> Generator[bytes, None, bool]:
        """Feed up to the first BODY start tag; True when lxml is then inside it."""
        marker = "<BODY>"
        while (found := self._text.find(marker)) < 0:
            if len(self._text) > _PROLOG_LIMIT or not self._fill():
                return False
        end = found + len(marker)
        prolog = self._text[:end]
        yield self._feed(end)
        return (
            prolog.count("<BODY") == 1
            and _MARKUP.fullmatch(prolog) is not None
            and self._at_level(self._catalog.tag("BODY"), self._record_ends)
        )

    def _records(self) -> Generator[bytes | ScannedRecord, None, bool]:
        """Prove records from the cursor on; True when one could not be (lxml's turn)."""
        text = self._text
        while True:
            if len(text) - self._pos < 2 * _LONGEST_RECORD and not self._ended:
                yield from self._flush_cut()
                while len(self._text) - self._pos < 2 * _LONGEST_RECORD and self._fill():
                    pass
                text = self._text
            scanned = self._scan(text)
            if scanned is None:
                return not self._at_end()
            yield scanned

    def _stretch(self) -> Generator[bytes, None, bool]:
        """Feed lxml up to a record end after which it is back at record level.

        True once it is (records may be proven again), False when the document ended
        first or the stretch opened a comment, CDATA section or processing instruction:
        where such markup closes is for lxml to know, so the rest is lxml's.
        """
        yield from self._flush_cut()
        while True:
            end = self._record_end.search(self._text, self._pos)
            if end is None:
                if self._ended:
                    return False
                keep = len(self._text) - _LONGEST_END_TAG  # an end tag may be cut off
                if keep > self._pos:
                    opens_markup = self._opens_markup(keep)
                    yield self._feed(keep)
                    if opens_markup:
                        return False
                self._fill()
                continue
            opens_markup = self._opens_markup(end.end())
            yield self._feed(end.end())
            if opens_markup:
                return False
            if self._at_level(self._catalog.tag(end.group(1)), self._record_ends):
                return True

    def _feed_to_end(self) -> Iterator[bytes]:
        yield from self._flush_cut()
        while True:
            if self._pos < len(self._text):
                yield self._feed(len(self._text))
            if not self._fill():
                return

    def _raw_rest(self) -> Iterator[bytes]:
        """What was not decoded, byte for byte: lxml finds and names the bad bytes."""
        if self._undecodable:
            yield self._undecodable
        while chunk := self._stream.read(_CHUNK):
            yield chunk

    # -- one record ------------------------------------------------------------------------

    def _scan(self, text: str) -> ScannedRecord | None:
        """The record at the cursor, proven valid, or None; the cursor moves past it.

        The record's pattern ends where white space leads to the next ``<``: stray text
        after a record is lxml's to report, as the record's tail.
        """
        start = self._record_start.match(text, self._pos)
        if start is None:
            return None
        code = start[1]
        begin = start.end() - len(code) - 2
        check = self._checks[code]
        proven = check.proven_source(text, begin, begin + _LONGEST_RECORD)
        if proven is None:
            return None
        fields, match = proven
        end = match.end()
        # "]]>" is not well-formed in content: lxml says so. A lone "]" is found several
        # times faster than the three characters, and records seldom hold one.
        if text.find("]", begin, end) >= 0 and text.find("]]>", begin, end) >= 0:
            return None
        line = self._line + text.count("\n", self._pos, begin)
        if self._cut is None:
            self._cut = self._pos
        self._line = line + text.count("\n", begin, end)
        self._pos = end
        return ScannedRecord(code, fields, line, match, check)

    # -- the buffer ------------------------------------------------------------------------

    def _at_end(self) -> bool:
        return self._ended and _ONLY_SPACE_LEFT.match(self._text, self._pos) is not None

    def _feed(self, end: int) -> bytes:
        """The text from the cursor to ``end``, as bytes for lxml; the cursor moves there."""
        piece = self._text[self._pos:end]
        self._line += piece.count("\n")
        self._pos = end
        if piece:
            self._last_fed = piece[-1]
            self._record_ends += len(self._any_record_end.findall(piece))
        return piece.encode("utf-8")

    def _opens_markup(self, end: int) -> bool:
        """Whether the text to ``end`` (with the last character fed) opens a comment,
        CDATA section, processing instruction or DOCTYPE."""
        piece = self._last_fed + self._text[self._pos:end]
        return "<!" in piece or "<?" in piece

    def _flush_cut(self) -> Iterator[bytes]:
        """Stand in for the proven records before the cursor: a comment lxml drops,
        as many lines long as they were and ending in the same column."""
        if self._cut is None:
            return
        proven = self._text[self._cut:self._pos]
        self._cut = None
        self._last_fed = ">"
        newlines = proven.count("\n")
        width = len(proven) - proven.rfind("\n") - 1  # libxml2 counts characters
        if newlines:  # a record ends in its end tag: the last line is wide enough
            yield b"<!--" + b"\n" * newlines + b" " * (width - 3) + b"-->"
        else:
            yield b"<!--" + b" " * (width - 7) + b"-->"

    def _fill(self) -> bool:
        """Decode one more chunk onto the buffer; False once the input is used up."""
        if self._ended:
            return False
        assert self._cut is None, "the proven run's stand-in is measured on the buffer"
        self._text = self._text[self._pos:]
        self._pos = 0
        chunk = self._stream.read(_CHUNK)
        pending = self._decoder.getstate()[0]
        try:
            self._text += self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            self._undecodable = pending + chunk
            self._ended = True
            return False
        self._ended = not chunk
        return True

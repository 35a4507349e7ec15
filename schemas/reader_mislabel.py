"""A document that declares a legacy encoding (GBK, GB2312, Latin-1…) but is UTF-8.

Legacy systems often export UTF-8 under an old declaration. Read as declared, its
Chinese becomes other characters, most of them valid ones: records with garbled names
would pass the XSD and be delivered, and the file would end in done/ (or fail only at
some byte that happens to be none of the encoding's, after the records before it were
taken). Real text in those encodings is all but never valid UTF-8 that holds Chinese
ideographs, so such a document is stopped before any record is read, at the line of its
first ideograph.

The check reads a legacy-labelled file once more before the parse: a genuine one only up
to its first non-ASCII character, which fails the UTF-8 decoding; a mislabelled one, or
one all ASCII, to its end.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from schemas.columns import python_codec
from schemas.parse_errors import declared_encoding
from schemas.reader_source import open_raw

__all__ = ["Mislabel", "utf8_under_legacy_label"]

_IDEOGRAPH = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_QUOTED = re.compile("[^\\x00-\\x7f<]{1,12}")  # the non-ASCII text from the ideograph on
_LINE_BREAK = re.compile("\r\n?|\n")  # as libxml2 counts lines
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Mislabel:
    """Where the UTF-8 shows: the first ideograph's line, and the text from it; and the
    encoding the document declares."""

    line: int
    text: str
    declared: str


def utf8_under_legacy_label(source: Path | bytes, prolog: bytes) -> Mislabel | None:
    """The first Chinese ideograph of a document whose bytes are all valid UTF-8 though
    it declares another encoding (not UTF-16 or UTF-32 either); None for any other.

    ``prolog``: the document's first bytes. One with a UTF-8 byte order mark is read as
    UTF-8 whatever it declares (``parse_errors.parser_encoding``).
    """
    declared = declared_encoding(prolog)
    if declared is None or prolog.startswith(codecs.BOM_UTF8):
        return None
    try:
        name = codecs.lookup(python_codec(declared)).name  # x-gbk and others: GB18030
    except LookupError:
        return None  # lxml reports an unknown encoding itself
    if name.startswith("utf"):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    found: Mislabel | None = None
    lines, after_cr = 1, False
    try:
        with open_raw(source) as raw:
            for chunk in iter(partial(raw.read, _CHUNK), b""):
                text = decoder.decode(chunk)
                if found is None and text:
                    if after_cr and text.startswith("\n"):
                        lines -= 1  # a CR LF cut between two chunks: one break
                    after_cr = text.endswith("\r")
                    if (ideograph := _IDEOGRAPH.search(text)) is None:
                        lines += len(_LINE_BREAK.findall(text))
                        continue
                    start = ideograph.start()
                    quoted = _QUOTED.match(text, start)
                    assert quoted is not None  # the ideograph itself matches
                    lines += len(_LINE_BREAK.findall(text, 0, start))
                    found = Mislabel(lines, quoted.group(), declared)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return found

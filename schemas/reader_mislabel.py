"""A document that declares a legacy encoding (GBK, GB2312, Latin-1…) but is UTF-8.

Legacy systems often export UTF-8 under an old declaration. Read as declared, its
Chinese becomes other characters, most of them valid ones: records with garbled names
would pass the XSD and be delivered, and the file would end in done/ (or fail only at
some byte that happens to be none of the encoding's, after the records before it were
taken). Real text in those encodings is all but never valid UTF-8 that holds Chinese
ideographs, so such a document is stopped before any record is read, at the line of its
first ideograph.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from schemas.reader_source import open_raw

__all__ = ["Mislabel", "utf8_under_legacy_label"]

_IDEOGRAPH = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_QUOTED = re.compile("[^\\x00-\\x7f<]{1,12}")  # the non-ASCII text from the ideograph on
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Mislabel:
    """Where the UTF-8 shows: the first ideograph's line, and the text from it."""

    line: int
    text: str


def utf8_under_legacy_label(source: Path | bytes, declared: str | None) -> Mislabel | None:
    """The first Chinese ideograph of a document whose bytes are all valid UTF-8 though
    it declares another encoding (not UTF-16 or UTF-32 either); None for any other.

    A document really in its declared encoding fails the UTF-8 decoding at once, at its
    first non-ASCII character, so the whole file is read only for a mislabelled one.
    """
    if declared is None:
        return None
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        return None  # lxml reports an unknown encoding itself
    if name.startswith("utf"):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    found: Mislabel | None = None
    lines = 1
    try:
        with open_raw(source) as raw:
            for chunk in iter(partial(raw.read, _CHUNK), b""):
                text = decoder.decode(chunk)
                if found is None:
                    if (ideograph := _IDEOGRAPH.search(text)) is None:
                        lines += text.count("\n")
                        continue
                    start = ideograph.start()
                    quoted = _QUOTED.match(text, start)
                    assert quoted is not None  # the ideograph itself matches
                    found = Mislabel(lines + text.count("\n", 0, start), quoted.group())
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return found

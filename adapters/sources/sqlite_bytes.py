"""How SQLite text that is not UTF-8 travels through the database source.

SQLite stores whatever bytes a legacy writer hands it. ``sqlite_text`` reads them as
surrogate escapes (PEP 383: byte 0x80-0xFF becomes U+DC80-U+DCFF), which nothing
else can carry: the outbox, JSON written as UTF-8 and the driver's own parameters all
refuse lone surrogates. So each place such text goes has its own form:

- a field value becomes a ``bad-value`` reject (``db_rejects``);
- text an operator reads (a cursor row's locator, a quoted value) shows ``\\xNN``;
- a saved cursor position keeps the exact bytes, in hex;
- a query bound to that position compares the exact bytes, as ``CAST(blob AS TEXT)``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, LargeBinary, String, cast, literal

from schemas.xml_text import NOT_XML

__all__ = [
    "bound_text",
    "from_hex",
    "holds_undecoded",
    "printable",
    "sqlite_text",
    "to_hex",
    "undecoded_byte",
]

# No driver hands out lone surrogates otherwise: they cannot even be stored as UTF-8.
_UNDECODED = re.compile("[\udc80-\udcff]")


def sqlite_text(raw: bytes) -> str:
    """SQLite's ``text_factory``: UTF-8, with invalid bytes kept as surrogate escapes.

    The default factory raises "Could not decode to UTF-8 column" for the whole fetch,
    so a single bad row would hold back its page forever. Valid text decodes exactly
    as before.
    """
    return raw.decode("utf-8", "surrogateescape")


def holds_undecoded(text: str) -> bool:
    return _UNDECODED.search(text) is not None


def undecoded_byte(text: str) -> str | None:
    """The first byte ``sqlite_text`` could not decode, as ``\\xNN``; None if none."""
    found = _UNDECODED.search(text)
    return None if found is None else f"\\x{ord(found.group()) - 0xDC00:02x}"


def printable(text: str) -> str:
    """``text`` with undecoded bytes as ``\\xNN`` and other non-XML characters as
    ``\\uNNNN``: safe to store, log and print."""
    return NOT_XML.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    point = ord(match.group())
    return f"\\x{point - 0xDC00:02x}" if 0xDC80 <= point <= 0xDCFF else f"\\u{point:04x}"


def to_hex(text: str) -> str:
    """The bytes SQLite holds for ``text`` (as ``sqlite_text`` read them), in hex."""
    return _held_bytes(text).hex()


def from_hex(digits: str) -> str:
    """The inverse of ``to_hex``: the text exactly as ``sqlite_text`` reads those bytes."""
    return bytes.fromhex(digits).decode("utf-8", "surrogateescape")


def bound_text(value: Any) -> Any:
    """``value`` as a query parameter; text holding undecoded bytes as those very bytes.

    A BLOB parameter would sort after every TEXT value; cast to TEXT it compares byte
    by byte, as SQLite orders the column itself.
    """
    if isinstance(value, str) and holds_undecoded(value):
        blob: ColumnElement[Any] = literal(_held_bytes(value), LargeBinary())
        return cast(blob, String())
    return value


def _held_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")

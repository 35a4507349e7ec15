"""The bytes of one document for the reader, and how lxml is told to read them.

A document is a path or bytes in memory: its size, its first bytes, and streams over it,
counted when the caller follows progress. lxml reads it hardened (no DTD, no entities,
no network) and in the encoding the reader tells it (``parse_errors.parser_encoding``:
GB18030 for a GB2312/GBK label). Apart from ``DocumentReader`` because none of it
depends on what is parsed: the pre-pass and the main pass open the same source with the
same options, and the passes that locate issues afterwards (``columns``,
``parse_errors``) read the same bytes. It imports nothing of ``schemas``, so that those
modules, which the reader imports, can import it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["CountingStream", "head_bytes", "open_counted", "open_raw", "parser_options",
           "source_size"]

_HARDENED = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def source_size(source: Path | bytes) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def head_bytes(source: Path | bytes, count: int) -> bytes:
    if isinstance(source, bytes):
        return source[:count]
    with source.open("rb") as handle:
        return handle.read(count)


def open_raw(source: Path | bytes) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def open_counted(
    source: Path | bytes, on_bytes: Callable[[int], None] | None
) -> BinaryIO | CountingStream:
    stream = open_raw(source)
    return stream if on_bytes is None else CountingStream(stream, on_bytes)


def parser_options(encoding: str | None) -> dict[str, Any]:
    """lxml's options for a document read in ``encoding`` (None: its own)."""
    options: dict[str, Any] = dict(_HARDENED)
    if encoding is not None:
        options["encoding"] = encoding
    return options


class CountingStream(io.RawIOBase):
    """A read-only stream that reports how many bytes the parser has consumed."""

    def __init__(self, inner: BinaryIO, on_bytes: Callable[[int], None]):
        super().__init__()
        self._inner, self._on_bytes = inner, on_bytes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self._on_bytes(len(data))
        return data

    def close(self) -> None:
        self._inner.close()
        super().close()

"""Records as they flow through exgate: small, immutable, typed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import Any

__all__ = ["Head", "Record", "slot_setters"]


@dataclass(frozen=True, slots=True, init=False)
class Record:
    """One exchange record: an element code and its field values.

    Times are normalised to ``yyyy-MM-dd HH:mm:ss`` Beijing time by the validator,
    so the same case sent in two time notations has one identity.
    """

    element: str
    fields: Mapping[str, str]
    key: tuple[str, ...]
    version: int
    line: int | None = None

    def __init__(
        self,
        element: str,
        fields: Mapping[str, str],
        key: tuple[str, ...],
        version: int,
        line: int | None = None,
    ) -> None:
        # Not dataclass's __init__: frozen, it calls object.__setattr__ for each field,
        # and the validator makes a Record for every record it reads (see slot_setters).
        _set_element(self, element)
        _set_fields(self, fields)
        _set_key(self, key)
        _set_version(self, version)
        _set_line(self, line)

    @property
    def division(self) -> str:
        return self.fields["XZQHDM"]

    @property
    def key_text(self) -> str:
        """The business key as one printable string, ``SBLSH+CLXH`` joined by ``|``."""
        return "|".join(self.key)

    def digest(self) -> str:
        """sha256 of the canonical content: equal digests mean a duplicate, not a conflict.

        The content is ``element\x1d`` then "name\x1fvalue" pairs in name order, joined
        by "\x1e": the test pins the result. The records of a batch share a few sets of
        field names, so the frame of names in order is built once per set, not sorted
        again for every record (``_digest_frame``).
        """
        frame, values = _digest_frame(self.element, tuple(self.fields))
        return hashlib.sha256((frame % values(self.fields)).encode()).hexdigest()


_Frame = tuple[str, Callable[[Mapping[str, str]], Any]]
# By element and field names as a record holds them: at most a few per element in
# practice; past the cap a frame is built for each record, as it always was.
_FRAMES: dict[tuple[str, tuple[str, ...]], _Frame] = {}
_MAX_FRAMES = 4096


def _digest_frame(element: str, names: tuple[str, ...]) -> _Frame:
    """The digest's canonical text with a ``%s`` for each value, and the getter of the
    values (``%`` takes a lone value as well as a tuple of them)."""
    key = (element, names)
    found = _FRAMES.get(key)
    if found is not None:
        return found
    ordered = sorted(names)
    frame = "\x1e".join(f"{name.replace('%', '%%')}\x1f%s" for name in ordered)
    values = itemgetter(*ordered) if ordered else _no_values
    found = (f"{element.replace('%', '%%')}\x1d{frame}", values)
    if len(_FRAMES) < _MAX_FRAMES:
        _FRAMES[key] = found
    return found


def _no_values(fields: Mapping[str, str]) -> tuple[str, ...]:
    return ()


def slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The setters of a frozen, slotted dataclass's fields, in their order.

    They write a slot as the generated ``__init__`` does, without its lookup through
    ``object.__setattr__``: about half the cost, for classes made once per record.
    """
    return tuple(vars(cls)[field.name].__set__ for field in fields(cls))


_set_element, _set_fields, _set_key, _set_version, _set_line = slot_setters(Record)


@dataclass(frozen=True, slots=True)
class Head:
    """The HEAD of an exchange document."""

    fields: Mapping[str, str]
    schema_version: int
    line: int | None = None

    @property
    def division(self) -> str | None:
        return self.fields.get("XZQHDM")

    @property
    def batch_id(self) -> str | None:
        return self.fields.get("BATCHID")

    @property
    def node_id(self) -> str | None:
        return self.fields.get("NODEID")

    @property
    def count(self) -> int | None:
        value = (self.fields.get("COUNT") or "").strip()  # xs:integer collapses white space
        if not (value.isascii() and value.isdigit()):
            return None
        digits = value.lstrip("0") or "0"  # leading zeros are valid, however many
        return int(digits) if len(digits) <= 18 else None  # past the XSD's maximum anyway

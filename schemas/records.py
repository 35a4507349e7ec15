"""Records as they flow through exgate: small, immutable, typed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
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
        """sha256 of the canonical content: equal digests mean a duplicate, not a conflict."""
        # "name\x1fvalue" pairs in name order (names are unique, so sorting the items
        # never compares values), joined by "\x1e": the test pins the result.
        canonical = "\x1e".join(map("\x1f".join, sorted(self.fields.items())))
        return hashlib.sha256(f"{self.element}\x1d{canonical}".encode()).hexdigest()


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

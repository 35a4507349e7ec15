"""One element's records proven valid without lxml, from its fields' predicates.

``FastCheck`` proves a record given as an lxml element, as plain text in a document
(the scanner's) or as a database row. An element or a record in text is read by one
regex with a group per field, in the XSD's order, where each field's inline lookaheads
(``type_predicates``) prove its value in C; the fields without that form are judged by
their predicates after the match, as every column of a row is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from lxml import etree

from schemas.type_predicates import Predicate
from schemas.xml_text import is_xml_text

__all__ = ["FastCheck"]

# Fields this many distinct values deep are judged by their predicate every time.
_REMEMBERED = 4096
_SPACE = "[ \t\n\r]*"  # XML white space only: Python's \s would also take U+3000
# Namespace declarations are all a record's start tag may carry (lxml writes every
# one in scope); the default one must be ours, so unprefixed fields are in it too.
_PREFIXED = '(?: xmlns:[^=\\s]+="[^"]*")*'
# A value as written in a document's text that parses to exactly itself: no markup, no
# escapes, no CR (the parser turns it into LF) and no character XML 1.0 forbids.
_SOURCE_VALUE = "([^<&\\r\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]+)"


@dataclass(frozen=True)
class _Field:
    code: str
    accepts: Predicate
    inline: str | None  # the predicate as lookaheads in the record regex, if it has that form
    good: set[str]  # values already accepted: most fields repeat a few values


@dataclass(frozen=True)
class FastCheck:
    """Proves the records of one element valid without lxml, or says it cannot.

    A None answer is not a rejection: the caller then asks lxml, which decides and
    says exactly what is wrong.
    """

    namespace: str
    element: str
    fields: tuple[_Field, ...]  # in the XSD's order
    required: frozenset[str]

    # The record regexes compile on first use (some 50 ms an element): a database
    # source needs neither, and a reader only those of the elements it meets.
    @cached_property
    def serialized(self) -> re.Pattern[str]:
        return _serialized_pattern(self.namespace, self.element, self.fields, self.required)

    @cached_property
    def source(self) -> re.Pattern[str]:
        return _source_pattern(self.element, self.fields, self.required)

    @cached_property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.fields)

    @cached_property
    def optional(self) -> tuple[str, ...]:
        return tuple(code for code in self.codes if code not in self.required)

    @cached_property
    def left_to_python(self) -> tuple[tuple[int, set[str], Predicate], ...]:
        """(group index, good, accepts) of each field the record regex does not prove."""
        return tuple(
            (index, f.good, f.accepts) for index, f in enumerate(self.fields) if f.inline is None
        )

    @cached_property
    def checks_by_name(self) -> Mapping[str, tuple[set[str], Predicate]]:
        return {f.code: (f.good, f.accepts) for f in self.fields}

    @classmethod
    def build(cls, namespace: str, element: str, types: Mapping[str, tuple[Predicate, str | None]],
              required: frozenset[str]) -> FastCheck:
        """``types``: each field's predicate and inline form (see ``inline_type``)."""
        fields = tuple(
            _Field(code, accepts, inline, set()) for code, (accepts, inline) in types.items()
        )
        return cls(namespace, element, fields, required)

    def proven_fields(self, element: etree._Element) -> dict[str, str] | None:
        """The fields of a record element the XSD certainly accepts, else None.

        The record is read from its serialization by one regex that admits only
        fields in the XSD's order, each plain text without attributes, children,
        comments or escapes, and white space between them. Touching each child
        element from Python costs more than the whole of this. Attributes, stray
        text, nested, repeated, unknown or missing fields, or simply another order
        all mean None: lxml then judges the record.
        """
        if len(element.attrib):  # never proven; and a start tag may hold 10 MB of them
            return None
        match = self.serialized.fullmatch(
            etree.tostring(element, encoding="unicode", with_tail=False)
        )
        return None if match is None else self._proven_groups(match)

    def proven_source(
        self, text: str, start: int, end: int
    ) -> tuple[dict[str, str], re.Match[str]] | None:
        """The fields of a record written plainly from ``text[start]`` (and before
        ``end``), when the XSD certainly accepts them, and the match (group ``i + 1``
        holds ``fields[i]``).

        The same demands as ``proven_fields``, on the document's own text: the unprefixed
        element in the default namespace, its fields in the XSD's order, each a plain
        value that parses to exactly itself. The caller vouches for the namespace and
        for the text around the record.
        """
        match = self.source.match(text, start, end)
        if match is None or (fields := self._proven_groups(match)) is None:
            return None
        return fields, match

    def _proven_groups(self, match: re.Match[str]) -> dict[str, str] | None:
        """The fields the match holds, once the ones its regex does not prove are."""
        values = match.groups()
        for index, good, accepts in self.left_to_python:
            value = values[index]
            # Inlined rather than shared with proven_row: it runs for every field.
            if value is not None and value not in good:
                if not accepts(value):
                    return None
                if len(good) < _REMEMBERED:
                    good.add(value)
        fields = dict(zip(self.codes, values, strict=True))
        for code in self.optional:
            if fields[code] is None:  # an optional field the record does not have
                del fields[code]
        return fields

    def proven_row(self, row: Mapping[str, str | None], *,
                   xml_text: bool = False) -> dict[str, str] | None:
        """The non-empty fields of a database row, when the XSD certainly accepts them.

        ``xml_text``: the caller has made sure every value is XML 1.0 text, so it is
        not scanned again.
        """
        checks = self.checks_by_name
        fields: dict[str, str] = {}
        for code, value in row.items():
            if not value:
                continue  # an empty column (None or "") is an absent field
            check = checks.get(code)
            if check is None:
                return None
            good, accepts = check
            # Inlined: it runs for every column of every row.
            if value not in good:
                if not accepts(value):
                    return None
                if len(good) < _REMEMBERED:
                    good.add(value)
            fields[code] = value
        if not self.required <= fields.keys():
            return None
        if not xml_text and not is_xml_text("".join(fields.values())):
            return None
        return fields


def _serialized_pattern(
    namespace: str, element: str, fields: tuple[_Field, ...], required: frozenset[str]
) -> re.Pattern[str]:
    """The record as lxml serializes it, fields in the XSD's order, one group a value."""
    default = f' xmlns="{re.escape(namespace)}"'
    return _record_pattern(f"<{re.escape(element)}{_PREFIXED}{default}{_PREFIXED}>",
                           "([^<&]+)", fields, required, f"</{re.escape(element)}>")


def _source_pattern(
    element: str, fields: tuple[_Field, ...], required: frozenset[str]
) -> re.Pattern[str]:
    """The record as a document writes it plainly, fields in the XSD's order."""
    # White space, then a tag: text after the record (perhaps after a comment, CDATA
    # section or processing instruction) is its tail, for lxml to report.
    return _record_pattern(f"<{re.escape(element)}>", _SOURCE_VALUE, fields, required,
                           f"</{re.escape(element)}>(?={_SPACE}<[^!?])")


def _record_pattern(start: str, value: str, fields: tuple[_Field, ...],
                    required: frozenset[str], end: str) -> re.Pattern[str]:
    """One group a field's value; a value's inline demands run at its start (the value
    runs to the '<' of its end tag, which is where they stop)."""
    parts = [start]
    for field in fields:
        tag = re.escape(field.code)
        text = f"{_SPACE}<{tag}>{field.inline or ''}{value}</{tag}>"
        parts.append(text if field.code in required else f"(?:{text})?")
    parts.append(f"{_SPACE}{end}")
    return re.compile("".join(parts))

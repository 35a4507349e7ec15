"""The XSD's field types compiled into Python predicates: the validator's fast path.

lxml spends about 10 µs proving a record valid, most of it on facts a few regular
expressions prove in Python. The predicates here are built from the same XSD, through
xmlschema's facets, so the XSD stays the single source of truth. They are
conservative: a predicate accepts a value only when the XSD certainly does, and any
type or facet it does not know makes it accept nothing. Whatever the fast path cannot
prove goes to lxml, which has the final word and names the exact error.

``tests/unit/schemas/test_fast_path.py`` holds the promise on many generated values:
whatever a predicate accepts, lxml accepts too.

The scanner (``body_scan``) proves records from a document's text with one regex per
element. There, each field's demands run as lookaheads at the value's start
(``inline_type``), so a plain record costs one match and no call per field; a field
whose type has no such form (decimals) is checked by its predicate after the match.
The record regexes themselves are ``fast_check``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from schemas.pattern_inline import STOP, without_stop

__all__ = ["Predicate", "compile_type", "inline_type"]

Predicate = Callable[[str], object]  # truthy when the value is certainly valid

_XSD = "http://www.w3.org/2001/XMLSchema"
_KNOWN_FACETS = frozenset(
    f"{{{_XSD}}}{name}"
    for name in (
        "pattern", "enumeration", "length", "minLength", "maxLength", "minInclusive",
        "maxInclusive", "totalDigits", "fractionDigits", "whiteSpace",
    )
)
# Built-in bases the fast path understands, with the lower bound each one implies.
_INTEGER_BASES: Mapping[str, int | None] = {
    "integer": None,
    "nonNegativeInteger": 0,
    "positiveInteger": 1,
}
# Canonical-looking lexical forms only: no white space and no '+', which the XSD
# would collapse or accept but which are left to lxml to judge.
_LONGEST_NUMBER = 64  # characters
_INTEGER_FORM = r"-?[0-9]+"
_DECIMAL_FORM = r"-?[0-9]+(?:\.[0-9]+)?"


def _never(_value: str) -> bool:
    return False


@dataclass
class _Facets:
    """What one field type demands, gathered along its derivation chain."""

    base: str = ""
    pattern_groups: list[tuple[re.Pattern[str], ...]] | None = None
    enumeration: frozenset[Any] | None = None
    min_length: int = 0
    max_length: int | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    total_digits: int | None = None
    fraction_digits: int | None = None
    white_space: str = "preserve"


def compile_type(xsd_type: Any) -> Predicate:
    """A predicate that accepts text only when ``xsd_type`` (an xmlschema type) does."""
    facets = _gather(xsd_type)
    if facets is None:
        return _never
    if facets.base == "string":
        return _string_predicate(facets)
    if facets.base in _INTEGER_BASES or facets.base == "decimal":
        return _number_predicate(facets)
    return _never


def inline_type(xsd_type: Any) -> str | None:
    """The predicate of ``compile_type`` as lookaheads to run at a plain value's start
    in a document's text, where the value runs up to the next ``<``; None when it has
    no such form (numbers, and patterns ``pattern_inline`` cannot rewrite).

    Inside the scanner's record regex they prove the value in C, with no call from
    Python: on values without ``<`` they accept exactly what the predicate accepts.
    """
    facets = _gather(xsd_type)
    if facets is None:
        return None
    if facets.base == "string":
        return _string_inline(facets)
    return _integer_inline(facets) if facets.base in _INTEGER_BASES else None


def _gather(xsd_type: Any) -> _Facets | None:
    """The facets of every derivation step, or None when one is beyond the fast path."""
    facets = _Facets(pattern_groups=[], white_space=xsd_type.white_space or "preserve")
    current = xsd_type
    while current is not None and current.target_namespace != _XSD:
        if type(current).__name__ != "XsdAtomicRestriction":
            return None
        if not set(current.facets) <= _KNOWN_FACETS:
            return None
        if not _merge(facets, current):
            return None
        current = current.base_type
    if current is None:
        return None
    facets.base = current.local_name
    low = _INTEGER_BASES.get(facets.base)
    if low is not None:
        facets.low = max(Decimal(low), facets.low) if facets.low is not None else Decimal(low)
    return facets


def _merge(facets: _Facets, step: Any) -> bool:
    """Fold one restriction step into ``facets``; each step can only narrow the type."""
    if step.patterns is not None:
        assert facets.pattern_groups is not None
        facets.pattern_groups.append(tuple(step.patterns.patterns))
    if step.enumeration is not None:
        values = frozenset(step.enumeration)
        facets.enumeration = values if facets.enumeration is None else facets.enumeration & values
    own = step.facets
    for name in ("minLength", "length"):
        if (facet := own.get(f"{{{_XSD}}}{name}")) is not None:
            facets.min_length = max(facets.min_length, int(facet.value))
    for name in ("maxLength", "length"):
        if (facet := own.get(f"{{{_XSD}}}{name}")) is not None:
            facets.max_length = _narrower(facets.max_length, int(facet.value))
    if (facet := own.get(f"{{{_XSD}}}minInclusive")) is not None:
        value = Decimal(str(facet.value))
        facets.low = value if facets.low is None else max(facets.low, value)
    if (facet := own.get(f"{{{_XSD}}}maxInclusive")) is not None:
        value = Decimal(str(facet.value))
        facets.high = value if facets.high is None else min(facets.high, value)
    if (facet := own.get(f"{{{_XSD}}}totalDigits")) is not None:
        facets.total_digits = _narrower(facets.total_digits, int(facet.value))
    if (facet := own.get(f"{{{_XSD}}}fractionDigits")) is not None:
        facets.fraction_digits = _narrower(facets.fraction_digits, int(facet.value))
    return True


def _narrower(current: int | None, value: int) -> int:
    return value if current is None else min(current, value)


class _Span(NamedTuple):
    """How a demand reads a value: any of its characters, and where it ends."""

    any_char: str
    end: str


_ALONE = _Span(r"[\s\S]", r"\Z")  # a value on its own, as the predicates see it
_IN_TEXT = _Span(f"[^{STOP}]", STOP)  # a plain value in a document, up to the '<' ending it


def _string_predicate(facets: _Facets) -> Predicate:
    if _numeric(facets):
        return _never  # numeric facets on a string type: not a type the fast path knows
    return _one_regex([*_string_demands(facets, _ALONE), *_pattern_demands(facets)])


def _string_inline(facets: _Facets) -> str | None:
    patterns = _inline_pattern_demands(facets)
    if _numeric(facets) or patterns is None:
        return None
    return _compiling([*_string_demands(facets, _IN_TEXT), *patterns])


def _compiling(demands: list[str]) -> str | None:
    """The demands as one regex text, or None if Python cannot compile it (the record
    regex must always compile; such a field is left to its predicate)."""
    text = "".join(demands)
    try:
        re.compile(text)
    except re.error:
        return None
    return text


def _numeric(facets: _Facets) -> bool:
    return facets.low is not None or facets.high is not None or facets.total_digits is not None


def _string_demands(facets: _Facets, span: _Span) -> list[str]:
    """Length, white space and enumeration, as lookaheads from the value's start."""
    any_char, end = span
    demands = []
    if facets.min_length or facets.max_length is not None:  # else any length will do
        longest = "" if facets.max_length is None else str(facets.max_length)
        demands.append(f"(?={any_char}{{{facets.min_length},{longest}}}{end})")
    if facets.white_space != "preserve":
        # A replaced or collapsed type is judged after white space is normalised; only
        # text that normalisation leaves as it is can be judged here as written.
        demands.append(
            f"(?!{any_char}*[\t\n\r])(?! )(?!{any_char}* {end})(?!{any_char}*  )"
        )
    if facets.enumeration is not None:
        # A choice holding the end mark can never be a value read up to it.
        choices = "|".join(
            re.escape(text) for value in sorted(facets.enumeration, key=str)
            if STOP not in (text := str(value)) or span is _ALONE
        )
        demands.append(f"(?=(?:{choices}){end})" if choices else "(?!)")
    return demands


def _pattern_demands(facets: _Facets) -> list[str]:
    # Within a step the patterns are alternatives; the steps must all hold. xmlschema's
    # translations carry their own anchors, so each one is a lookahead from the start.
    return [
        "(?=" + "|".join(f"(?:{p.pattern})" for p in group) + ")"
        for group in facets.pattern_groups or ()
    ]


# How xmlschema writes every translated pattern: the XSD's regex, anchored at both ends.
_ANCHORED = re.compile(r"\^\(\?:(?P<inner>.*)\)\$\(\?!\\n\\Z\)", re.DOTALL)


def _inline_pattern_demands(facets: _Facets) -> list[str] | None:
    """The pattern demands read up to the '<' ending a value, or None if one cannot be."""
    demands = []
    for group in facets.pattern_groups or ():
        choices = []
        for pattern in group:
            anchored = _ANCHORED.fullmatch(pattern.pattern)
            inner = None if anchored is None else without_stop(anchored["inner"])
            if inner is None:
                return None
            choices.append(f"(?:{inner}){STOP}")
        demands.append("(?=" + "|".join(choices) + ")")
    return demands


def _integer_inline(facets: _Facets) -> str | None:
    """Part of an integer type, as lookaheads: the numbers written plainly (no sign, no
    leading zero) with as few digits as the bounds certainly admit. Any other number
    fails the record regex, and the record goes to lxml."""
    if facets.enumeration is not None or facets.min_length or facets.max_length is not None:
        return None
    patterns = _inline_pattern_demands(facets)
    low, high = facets.low, facets.high
    if patterns is None or (low is not None and low > 1) or (high is not None and high < 0):
        return None
    # The most digits d with 10**d - 1 <= high: every d-digit number is in range.
    digits = _LONGEST_NUMBER if high is None else len(str(int(high) + 1)) - 1
    if facets.total_digits is not None:
        digits = min(digits, facets.total_digits)
    if digits < 1:
        return None
    zero = "0|" if low is None or low <= 0 else ""
    return _compiling([f"(?=(?:{zero}[1-9][0-9]{{0,{digits - 1}}}){STOP})", *patterns])


def _one_regex(demands: list[str]) -> Predicate:
    """All demands as one compiled regex: its ``match`` is the whole predicate, in C."""
    try:
        # No flags: DOTALL or the like would change what the translated patterns mean.
        return re.compile("".join(demands)).match
    except re.error:
        return _never  # a translation Python cannot combine: lxml judges these values


def _number_predicate(facets: _Facets) -> Predicate:
    if facets.enumeration is not None or facets.min_length or facets.max_length is not None:
        return _never  # enumerated or length-limited numbers: left to lxml
    integer = facets.base in _INTEGER_BASES
    form = _INTEGER_FORM if integer else _DECIMAL_FORM
    lexical = _one_regex([f"(?={form}\\Z)", *_pattern_demands(facets)])
    low, high = facets.low, facets.high
    total, fraction = facets.total_digits, facets.fraction_digits

    def accepts(value: str) -> bool:
        # Beyond any facet's reach, and int() refuses over 4,300 digits: lxml judges it.
        if len(value) > _LONGEST_NUMBER or not lexical(value):
            return False
        number = int(value) if integer else Decimal(value)
        if (low is not None and number < low) or (high is not None and number > high):
            return False
        if total is None and fraction is None:
            return True
        # Counting the digits as written over-counts leading and trailing zeros, which
        # only ever sends a valid value to lxml, never lets an invalid one through.
        whole, _, part = value.lstrip("-").partition(".")
        if total is not None and len(whole) + len(part) > total:
            return False
        return fraction is None or len(part) <= fraction

    return accepts

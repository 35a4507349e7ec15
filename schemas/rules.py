"""Semantic rules the XSD cannot express, as pure functions.

Each rule takes the fields of one record that already passed the XSD (a field with a
type error is left out, so a bad value is reported once) and returns a list of
``Issue``s without a location; the reader attaches file, line and column. Lists, not
generators: the rules run for every record, and an empty list is the cheaper answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from schemas.catalog import ElementSpec
from schemas.checkdigits import (
    Flaw,
    credit_code_flaw,
    credit_code_strangers,
    credit_code_valid,
    resident_id_flaw,
    resident_id_strangers,
    resident_id_valid,
)
from schemas.divisions import within
from schemas.issues import Issue, IssueCode
from schemas.messages import Localized
from schemas.times import format_time, parse_time

__all__ = [
    "Finding",
    "Rule",
    "canonical_time",
    "check_applicant_id",
    "check_conditional_fields",
    "check_credit_codes",
    "check_division",
    "check_extension",
    "credit_code_finding",
    "normalise_values",
    "resident_id_finding",
    "rules_for",
]

Fields = Mapping[str, str]

# (element, trigger field, trigger values, required fields)
_CONDITIONAL: tuple[tuple[str, str, frozenset[str], tuple[str, ...]], ...] = (
    ("YSL", "YSLZT", frozenset({"2"}), ("BSLYY",)),
    ("SL", "SLZT", frozenset({"2", "4"}), ("BSLYY",)),
    ("BJ", "BJJG", frozenset({"0"}), ("ZJMC", "ZJBH")),
)
_ID_CARD, _CREDIT_CODE_ID = "10", "20"
_MAX_EXTENSION_DAYS = 15


def _issue(
    spec: ElementSpec, code: IssueCode, message_id: str, field: str, **args: object
) -> Issue:
    label = spec.fields[field].label if field in spec.fields else field
    return Issue(code, message_id, {"field": field, "label": label, **args}, spec.code, field)


class Finding(NamedTuple):
    """What is wrong with a code, before it is placed in a record: an issue's code,
    message id and arguments (besides the field and its label)."""

    code: IssueCode
    message_id: str
    args: dict[str, Any]


# A wrong length or a wrong character is a bad value; only a code that could be one
# but for its check character is a bad check digit.
_CREDIT_FLAWS = {
    Flaw.LENGTH: (IssueCode.BAD_VALUE, "credit-code-length"),
    Flaw.CHARACTERS: (IssueCode.BAD_VALUE, "credit-code-characters"),
    Flaw.CHECK: (IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-credit"),
}
_ID_FLAWS = {
    Flaw.LENGTH: (IssueCode.BAD_VALUE, "id-number-length"),
    Flaw.CHARACTERS: (IssueCode.BAD_VALUE, "id-number-characters"),
    Flaw.CHECK: (IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-id"),
}


def credit_code_finding(value: str) -> Finding | None:
    """Why ``value`` is no GB 32100 credit code (length, characters, check); None if it is."""
    return _finding(value, credit_code_flaw(value), _CREDIT_FLAWS, credit_code_strangers)


def resident_id_finding(value: str) -> Finding | None:
    """Why ``value`` is no GB 11643 ID number (length, characters, check); None if it is."""
    return _finding(value, resident_id_flaw(value), _ID_FLAWS, resident_id_strangers)


def _finding(value: str, flaw: Flaw | None, flaws: Mapping[Flaw, tuple[IssueCode, str]],
             strangers: Callable[[str], str]) -> Finding | None:
    if flaw is None:
        return None
    code, message_id = flaws[flaw]
    return Finding(code, message_id, {"value": value, "length": len(value),
                                      "chars": _quoted(strangers(value))})


def _quoted(chars: str) -> Localized:
    """Each character quoted on its own, so a space or a full-width digit shows."""
    return Localized("、".join(f"“{ch}”" for ch in chars), ", ".join(f"'{ch}'" for ch in chars))


def _found(spec: ElementSpec, field: str, finding: Finding | None) -> list[Issue]:
    return [] if finding is None else \
        [_issue(spec, finding.code, finding.message_id, field, **finding.args)]


def check_credit_codes(fields: Fields, spec: ElementSpec) -> list[Issue]:
    """Every credit-code field (TYSHXYDM, SJJGDM, SLBM, BJBM) passes GB 32100."""
    issues = []
    for name in spec.credit_code_fields:  # a loop: a comprehension costs a call per record
        if (value := fields.get(name)) is not None and not credit_code_valid(value):
            issues.extend(_found(spec, name, credit_code_finding(value)))
    return issues


def check_applicant_id(fields: Fields, spec: ElementSpec) -> list[Issue]:
    """SQRZJHM passes the check its SQRZJLX names: 10 → GB 11643, 20 → GB 32100.

    The valid case costs one cached check; why a number fails is only worked out then.
    """
    number, kind = fields.get("SQRZJHM"), fields.get("SQRZJLX")
    if number is None or kind is None:
        return []
    if kind == _ID_CARD and not resident_id_valid(number):
        return _found(spec, "SQRZJHM", resident_id_finding(number))
    if kind == _CREDIT_CODE_ID and not credit_code_valid(number):
        return _found(spec, "SQRZJHM", credit_code_finding(number))
    return []


def check_conditional_fields(fields: Fields, spec: ElementSpec) -> list[Issue]:
    """BSLYY when refused (YSL 2; SL 2 or 4); ZJMC and ZJBH when a certificate is issued."""
    issues: list[Issue] = []
    for element, trigger, values, required in _CONDITIONAL:
        if spec.code == element and fields.get(trigger) in values:
            issues.extend(
                _issue(spec, IssueCode.CONDITIONAL_FIELD, "conditional-field", name,
                       when_field=trigger, when_value=fields[trigger])
                for name in required
                if name not in fields
            )
    return issues


def check_extension(fields: Fields, spec: ElementSpec) -> list[Issue]:
    """An extension (TBCXZL A) is counted in working days and lasts 1 to 15 of them."""
    if spec.code != "TBCXSQ" or fields.get("TBCXZL") != "A":
        return []
    issues = []
    unit, length = fields.get("TBCXSXDW"), fields.get("TBCXSX")
    if unit is not None and unit != "G":
        issues.append(_issue(spec, IssueCode.BAD_VALUE, "extension-unit", "TBCXSXDW", value=unit))
    if length is not None and not 0 < int(length) <= _MAX_EXTENSION_DAYS:
        issues.append(
            _issue(spec, IssueCode.BAD_VALUE, "extension-length", "TBCXSX", value=length)
        )
    return issues


def check_division(fields: Fields, spec: ElementSpec, head_division: str | None, *,
                   of_node: bool = False) -> list[Issue]:
    """The record's XZQHDM equals the HEAD's or lies within it; ``of_node``: the division
    is the sending node's own (a database row has no HEAD), and the issue says so."""
    value = fields.get("XZQHDM")
    if value is None or head_division is None or value == head_division:
        return []
    if _within(head_division, value):
        return []
    if of_node:
        return [_issue(spec, IssueCode.DIVISION_MISMATCH, "outside-node", "XZQHDM",
                       value=value, node=head_division)]
    return [_issue(spec, IssueCode.DIVISION_MISMATCH, "division-mismatch", "XZQHDM",
                   value=value, head=head_division)]


def normalise_values(
    fields: Fields, spec: ElementSpec, latest: datetime
) -> tuple[dict[str, str], list[Issue]]:
    """The canonical values that differ from ``fields``, and the bad times.

    - Times become ``yyyy-MM-dd HH:mm:ss`` Beijing time; a time after ``latest`` ("now +
      one day") or not on the calendar is ``bad-date`` and keeps its value.
    - Numbers lose the white space the XSD tolerates, and integers their leading zeros,
      so `` 01 `` and ``1`` are one business key.
    - A resident ID's check character is upper-cased (``x`` → ``X``).

    Only the changes: the caller applies them to the record it is building, which is
    cheaper than a whole new mapping per record.
    """
    changes: dict[str, str] = {}
    issues = []
    latest_text = _latest_text(latest)
    for name in spec.time_fields:
        value = fields.get(name)
        if value is None:
            continue
        canonical = canonical_time(value)
        if canonical is None:
            issues.append(_issue(spec, IssueCode.BAD_DATE, "bad-date", name, value=value))
        elif canonical > latest_text:  # same fixed-width form: text order is time order
            issues.append(_issue(spec, IssueCode.BAD_DATE, "future-date", name, value=value))
        elif canonical != value:
            changes[name] = canonical
    for name in spec.numeric_fields:
        value = fields.get(name)
        if value is None or (value.isascii() and value.isdigit() and value[:1] != "0"):
            continue  # already canonical: the common case costs no conversion
        trimmed = value.strip()
        changes[name] = _canonical_integer(trimmed) if spec.fields[name].is_integer else trimmed
    if fields.get("SQRZJLX") == _ID_CARD and (number := fields.get("SQRZJHM")) is not None \
            and (upper := number.upper()) != number:  # else the caller has nothing to apply
        changes["SQRZJHM"] = upper
    return changes, issues


def _canonical_integer(text: str) -> str:
    """An XSD integer's canonical text, without ``int()`` (which refuses 4,300+ digits)."""
    sign = "-" if text.startswith("-") else ""
    digits = text.lstrip("+-").lstrip("0") or "0"
    return digits if digits == "0" else sign + digits


def canonical_time(text: str) -> str | None:
    """``text`` as ``yyyy-MM-dd HH:mm:ss`` Beijing time, or None if it is not a real time."""
    size = len(text)
    if size == 19 and text[10] == " ":
        return text if _CLOCK.fullmatch(text, 11) and _real_date(text[:10]) else None
    if size == 14 and text.isascii() and text.isdigit():
        day = _compact_day(text[:8])
        if day is None or _COMPACT_CLOCK.fullmatch(text, 8) is None:
            return None
        return f"{day} {text[8:10]}:{text[10:12]}:{text[12:]}"
    if _beijing_date_time(text):
        return f"{text[:10]} {text[11:19]}"
    moment = parse_time(text)  # ISO 8601 in another zone: rare and costly
    return None if moment is None else format_time(moment)


def _beijing_date_time(text: str) -> bool:
    """An ISO 8601 time, naive or at +08:00: already Beijing time, so its date and clock
    are the canonical ones and need no conversion. A fraction of a second changes
    nothing either: the canonical form keeps whole seconds.

    Year 1's first hours count too: ``parse_time`` goes through UTC, which puts them
    before ``datetime.min``, though 0001-01-01T00:00:00Z (08:00 in Beijing) passes.
    """
    zone = text[19:]
    if zone[:1] == "." and (fraction := _FRACTION.match(zone)) is not None:
        zone = zone[fraction.end():]
    return (
        text[10:11] == "T"
        and zone in _BEIJING_ZONES
        and _CLOCK.fullmatch(text, 11, 19) is not None
        and _real_date(text[:10])
    )


_BEIJING_ZONES = ("", "+08:00")
_FRACTION = re.compile(r"\.[0-9]+")
_CLOCK = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_COMPACT_CLOCK = re.compile(r"(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@lru_cache(maxsize=4096)  # a file spans a few hundred days; their check is cached
def _real_date(text: str) -> bool:
    """``yyyy-MM-dd`` naming a day on the calendar (no 2026-02-30)."""
    if _DATE.fullmatch(text) is None:
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _compact_day(text: str) -> str | None:
    """``yyyyMMdd`` as ``yyyy-MM-dd`` when it names a day on the calendar, else None."""
    spelled = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return spelled if _real_date(spelled) else None


_latest_seen: list[tuple[datetime, str]] = []


def _latest_text(latest: datetime) -> str:
    """``latest`` in the exchange form; one reader passes the same object for a whole file."""
    if _latest_seen and _latest_seen[0][0] is latest:
        return _latest_seen[0][1]
    text = format_time(latest)
    _latest_seen[:] = [(latest, text)]
    return text


Rule = Callable[[Fields, ElementSpec], list[Issue]]


def rules_for(spec: ElementSpec) -> tuple[Rule, ...]:
    """The record rules that can apply to ``spec``'s element, chosen once per element."""
    rules: list[Rule] = []
    if spec.credit_code_fields:
        rules.append(check_credit_codes)
    if "SQRZJHM" in spec.fields:
        rules.append(check_applicant_id)
    if any(element == spec.code for element, *_ in _CONDITIONAL):
        rules.append(check_conditional_fields)
    if spec.code == "TBCXSQ":
        rules.append(check_extension)
    return tuple(rules)


@lru_cache(maxsize=4096)
def _within(outer: str, inner: str) -> bool:
    return within(outer, inner)  # a file repeats a handful of division pairs

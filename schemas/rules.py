"""Semantic rules the XSD cannot express, as pure functions.

Each rule takes the fields of one record that already passed the XSD (a field with a
type error is left out, so a bad value is reported once) and yields ``Issue``s without
a location; the reader attaches file, line and column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from schemas.catalog import ElementSpec
from schemas.checkdigits import credit_code_valid, resident_id_valid
from schemas.divisions import within
from schemas.issues import Issue, IssueCode
from schemas.times import format_time, parse_time

__all__ = [
    "RECORD_RULES",
    "check_applicant_id",
    "check_conditional_fields",
    "check_credit_codes",
    "check_division",
    "check_extension",
    "normalise_times",
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


def _issue(spec: ElementSpec, code: IssueCode, message_id: str, field: str, **args: object) -> Issue:
    label = spec.fields[field].label if field in spec.fields else field
    return Issue(code, message_id, {"field": field, "label": label, **args}, spec.code, field)


def check_credit_codes(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """Every credit-code field (TYSHXYDM, SJJGDM, SLBM, BJBM) passes GB 32100."""
    for name in spec.credit_code_fields:
        value = fields.get(name)
        if value is not None and not credit_code_valid(value):
            yield _issue(spec, IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-credit", name, value=value)


def check_applicant_id(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """SQRZJHM passes the check its SQRZJLX names: 10 → GB 11643, 20 → GB 32100."""
    number, kind = fields.get("SQRZJHM"), fields.get("SQRZJLX")
    if number is None or kind is None:
        return
    if kind == _ID_CARD and not resident_id_valid(number):
        yield _issue(spec, IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-id", "SQRZJHM", value=number)
    elif kind == _CREDIT_CODE_ID and not credit_code_valid(number):
        yield _issue(spec, IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-credit", "SQRZJHM", value=number)


def check_conditional_fields(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """BSLYY when refused (YSL 2; SL 2 or 4); ZJMC and ZJBH when a certificate is issued."""
    for element, trigger, values, required in _CONDITIONAL:
        if spec.code != element or fields.get(trigger) not in values:
            continue
        for name in required:
            if name not in fields:
                yield _issue(
                    spec, IssueCode.CONDITIONAL_FIELD, "conditional-field", name,
                    when_field=trigger, when_value=fields[trigger],
                )


def check_extension(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """An extension (TBCXZL A) is counted in working days and lasts 1 to 15 of them."""
    if spec.code != "TBCXSQ" or fields.get("TBCXZL") != "A":
        return
    unit, length = fields.get("TBCXSXDW"), fields.get("TBCXSX")
    if unit is not None and unit != "G":
        yield _issue(spec, IssueCode.BAD_VALUE, "extension-unit", "TBCXSXDW", value=unit)
    if length is not None and not 0 < int(length) <= _MAX_EXTENSION_DAYS:
        yield _issue(spec, IssueCode.BAD_VALUE, "extension-length", "TBCXSX", value=length)


def check_division(fields: Fields, spec: ElementSpec, head_division: str | None) -> Iterator[Issue]:
    """The record's XZQHDM equals the HEAD's or lies within it."""
    value = fields.get("XZQHDM")
    if value is None or head_division is None or value == head_division:
        return
    if not within(head_division, value):
        yield _issue(spec, IssueCode.DIVISION_MISMATCH, "division-mismatch", "XZQHDM",
                     value=value, head=head_division)


def normalise_times(
    fields: Fields, spec: ElementSpec, latest: datetime
) -> tuple[dict[str, str], list[Issue]]:
    """Parse every time field; return the fields with canonical times, and the bad ones.

    ``latest`` is "now + one day": a later time is reported as ``bad-date``.
    """
    normalised: dict[str, str] | None = None  # copied only when a value changes
    issues = []
    for name in spec.time_fields:
        value = fields.get(name)
        if value is None:
            continue
        moment = parse_time(value)
        if moment is None:
            issues.append(_issue(spec, IssueCode.BAD_DATE, "bad-date", name, value=value))
        elif moment > latest:
            issues.append(_issue(spec, IssueCode.BAD_DATE, "future-date", name, value=value))
        elif len(value) != 19 or value[10] != " ":
            normalised = normalised or dict(fields)
            normalised[name] = format_time(moment)
    return (normalised if normalised is not None else dict(fields)), issues


# Rules that need nothing but the record; run in this order, after the XSD and times.
RECORD_RULES = (check_credit_codes, check_applicant_id, check_conditional_fields, check_extension)

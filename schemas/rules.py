"""Semantic rules the XSD cannot express, as pure functions.

Each rule takes the fields of one record that already passed the XSD (a field with a
type error is left out, so a bad value is reported once) and yields ``Issue``s without
a location; the reader attaches file, line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import lru_cache

from schemas.catalog import ElementSpec
from schemas.checkdigits import credit_code_valid, resident_id_valid
from schemas.divisions import within
from schemas.issues import Issue, IssueCode
from schemas.times import format_time, parse_time

__all__ = [
    "check_applicant_id",
    "check_conditional_fields",
    "check_credit_codes",
    "check_division",
    "check_extension",
    "normalise_values",
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


def check_credit_codes(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """Every credit-code field (TYSHXYDM, SJJGDM, SLBM, BJBM) passes GB 32100."""
    for name in spec.credit_code_fields:
        value = fields.get(name)
        if value is not None and not credit_code_valid(value):
            yield _issue(
                spec, IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-credit", name, value=value
            )


def check_applicant_id(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """SQRZJHM passes the check its SQRZJLX names: 10 → GB 11643, 20 → GB 32100."""
    number, kind = fields.get("SQRZJHM"), fields.get("SQRZJLX")
    if number is None or kind is None:
        return
    if kind == _ID_CARD and not resident_id_valid(number):
        yield _issue(spec, IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-id", "SQRZJHM", value=number)
    elif kind == _CREDIT_CODE_ID and not credit_code_valid(number):
        yield _issue(
            spec, IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-credit", "SQRZJHM", value=number
        )


def check_conditional_fields(fields: Fields, spec: ElementSpec) -> Iterator[Issue]:
    """BSLYY when refused (YSL 2; SL 2 or 4); ZJMC and ZJBH when a certificate is issued."""
    for element, trigger, values, required in _CONDITIONAL:
        if spec.code != element or fields.get(trigger) not in values:
            continue
        for name in required:
            if name not in fields:
                yield _issue(
                    spec,
                    IssueCode.CONDITIONAL_FIELD,
                    "conditional-field",
                    name,
                    when_field=trigger,
                    when_value=fields[trigger],
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
    if not _within(head_division, value):
        yield _issue(
            spec,
            IssueCode.DIVISION_MISMATCH,
            "division-mismatch",
            "XZQHDM",
            value=value,
            head=head_division,
        )


def normalise_values(
    fields: Fields, spec: ElementSpec, latest: datetime
) -> tuple[dict[str, str], list[Issue]]:
    """Canonical values, and the bad times.

    - Times become ``yyyy-MM-dd HH:mm:ss`` Beijing time; a time after ``latest`` ("now +
      one day") or not on the calendar is ``bad-date``.
    - Numbers lose the white space the XSD tolerates, and integers their leading zeros,
      so `` 01 `` and ``1`` are one business key.
    - A resident ID's check character is upper-cased (``x`` → ``X``).
    """
    normalised = dict(fields)
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
            normalised[name] = format_time(moment)
    for name in spec.numeric_fields:
        value = fields.get(name)
        if value is not None:
            trimmed = value.strip()
            normalised[name] = str(int(trimmed)) if spec.fields[name].is_integer else trimmed
    if fields.get("SQRZJLX") == _ID_CARD and "SQRZJHM" in fields:
        normalised["SQRZJHM"] = fields["SQRZJHM"].upper()
    return normalised, issues


def rules_for(spec: ElementSpec) -> tuple[Callable[[Fields, ElementSpec], Iterator[Issue]], ...]:
    """The record rules that can apply to ``spec``'s element, chosen once per element."""
    rules: list[Callable[[Fields, ElementSpec], Iterator[Issue]]] = []
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

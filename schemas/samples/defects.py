"""Injecting exactly one defect into a record, of a kind that maps to one design §8 code.

Every injection is chosen so the validator reports precisely one issue for it: fields
that other rules read (YSLZT, SLZT, BJJG trigger conditional rules; SQRZJLX selects the
ID check; TBCXZL/TBCXSX/TBCXSXDW feed the extension rule) are never corrupted, and a
conditional defect removes exactly one of the fields its rule requires.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from schemas.catalog import ElementSpec, SchemaCatalog
from schemas.checkdigits import CREDIT_CODE_ALPHABET
from schemas.issues import IssueCode
from schemas.samples.places import Province
from schemas.times import format_time, parse_time

__all__ = ["KINDS", "DefectInjector", "Injection"]

KINDS: tuple[IssueCode, ...] = (
    IssueCode.MISSING_FIELD, IssueCode.UNEXPECTED_FIELD, IssueCode.BAD_VALUE,
    IssueCode.BAD_CHECK_DIGIT, IssueCode.BAD_DATE, IssueCode.CONDITIONAL_FIELD,
    IssueCode.DIVISION_MISMATCH, IssueCode.DUPLICATE_RECORD,
)
_RULE_INPUTS = frozenset({"YSLZT", "SLZT", "BJJG", "SQRZJLX", "TBCXZL", "TBCXSX", "TBCXSXDW"})
_CONDITIONAL = {"YSL": ("YSLZT", "2", "BSLYY"), "SL": ("SLZT", "24", "BSLYY"),
                "BJ": ("BJJG", "0", "ZJMC ZJBH")}
_EXTRA_FIELDS = ("BZ", "CZRXM", "SJLY", "YXBZ", "SFJE", "LXDH")
_ID_CHECK_CHARS = "0123456789X"

# (field, bad value, detail) per element; "*" applies to every element
_Bad = tuple[str, Callable[[str], str], str]
_BAD_VALUES: dict[str, tuple[_Bad, ...]] = {
    "*": (("SJBBH", lambda v: "0", "positive-int"),
          ("XZQHDM", lambda v: v[:4] + "A" + v[5:], "pattern")),
    "JGXX": (("JGMC", lambda v: v + "办" * 200, "length"),),
    "SXXX": (("SXLX", lambda v: "11", "enumeration"), ("SFSF", lambda v: "2", "enumeration"),
             ("FDSXDW", lambda v: "D", "enumeration")),
    "SBXX": (("TJFS", lambda v: "5", "enumeration"), ("SQRLX", lambda v: "4", "enumeration"),
             ("SBLSH", lambda v: v + "-" + "0" * 40, "length")),
    "SBCL": (("CLLX", lambda v: "3", "enumeration"), ("CLSL", lambda v: "-1", "negative"),
             ("CLHASH", lambda v: "not-a-sha256", "pattern")),
    "YSL": (("BLRXM", lambda v: "", "empty"),),
    "SL": (("CNSXDW", lambda v: "D", "enumeration"), ("CNSX", lambda v: "-3", "negative")),
    "SPGC": (("HJZT", lambda v: "3", "enumeration"), ("HJDM", lambda v: "CB-" + "0" * 10, "length"),
             ("BZH", lambda v: "0", "positive-int")),
    "BZGZ": (("GZRXM", lambda v: v + "某" * 200, "length"),),
    "BZSL": (("BZCLQD", lambda v: "", "empty"),),
    "TBCXSQ": (("XH", lambda v: "0", "positive-int"),),
    "TBCXJG": (("XH", lambda v: "-1", "positive-int"),),
    "BJ": (("BJJGMS", lambda v: "", "empty"),),
    "SF": (("SFJE", lambda v: "-" + v, "negative-amount"),
           ("SFJE", lambda v: v + "5", "fraction-digits")),
    "LQDJ": (("LQFS", lambda v: "4", "enumeration"),),
}
_BAD_DATES: tuple[tuple[Callable[[int], str], str], ...] = (
    (lambda y: f"{y}-02-30 10:15:00", "feb-30"),
    (lambda y: f"{y}0230101500", "feb-30"),
    (lambda y: f"{y}-13-01 09:00:00", "month-13"),
    (lambda y: f"{y}/03/15 10:00", "garbage"),
    (lambda y: "待定", "garbage"),
    (lambda y: "2099-12-31 09:00:00", "far-future"),
    (lambda y: "20990101080000", "far-future"),
)


@dataclass(frozen=True, slots=True)
class Injection:
    """What to write instead of the clean record, and where the issue will be reported."""

    element: str
    fields: list[tuple[str, str]]
    code: IssueCode
    field: str | None
    at_field: bool  # the issue's line is the field's (True) or the record's start line
    kind: str  # e.g. "bad-value/enumeration", for humans reading DEFECTS.json


class DefectInjector:
    """Chooses and applies defects; ``rng`` is separate from the cases' so that the
    same seed yields the same cases at any invalid rate."""

    def __init__(self, rng: random.Random, catalog: SchemaCatalog, province: Province,
                 home_city: str):
        self.rng = rng
        self.catalog = catalog
        self.foreign = tuple(code for city in province.cities if city.code != home_city
                             for code, _ in city.counties)

    def choose(self, element: str, fields: dict[str, str]) -> IssueCode:
        kind = self.rng.choice(KINDS)
        if kind is IssueCode.CONDITIONAL_FIELD and element not in _CONDITIONAL:
            kind = self.rng.choice(KINDS[:5] + KINDS[6:])
        if kind is IssueCode.DIVISION_MISMATCH and not self.foreign:
            kind = IssueCode.BAD_CHECK_DIGIT
        return kind

    def inject(self, kind: IssueCode, element: str, fields: dict[str, str]) -> Injection:
        """Apply ``kind``; a duplicate is the record copied with a later GXSJ."""
        spec = self.catalog.elements[element]
        values = {name: fields[name] for name in spec.fields if name in fields}
        apply = {
            IssueCode.MISSING_FIELD: self._missing,
            IssueCode.UNEXPECTED_FIELD: self._unexpected,
            IssueCode.BAD_VALUE: self._bad_value,
            IssueCode.BAD_CHECK_DIGIT: self._bad_check_digit,
            IssueCode.BAD_DATE: self._bad_date,
            IssueCode.CONDITIONAL_FIELD: self._conditional,
            IssueCode.DIVISION_MISMATCH: self._division,
            IssueCode.DUPLICATE_RECORD: self._duplicate,
        }[kind]
        return apply(spec, values)

    def _missing(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        name = self.rng.choice([n for n in spec.required_fields if n not in _RULE_INPUTS])
        del values[name]
        return _injection(spec, values, IssueCode.MISSING_FIELD, name, False, "missing-field")

    def _unexpected(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        name = self.rng.choice([n for n in _EXTRA_FIELDS if n not in spec.fields])
        pairs = list(values.items())
        pairs.insert(self.rng.randint(0, len(pairs)), (name, "备注信息"))
        return Injection(spec.code, pairs, IssueCode.UNEXPECTED_FIELD, name, True,
                         "unexpected-field")

    def _bad_value(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        options = _BAD_VALUES["*"] + _BAD_VALUES.get(spec.code, ())
        name, corrupt, detail = self.rng.choice(options)
        values[name] = corrupt(values.get(name, "0" * 64))
        return _injection(spec, values, IssueCode.BAD_VALUE, name, True, f"bad-value/{detail}")

    def _bad_check_digit(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        names = [n for n in spec.credit_code_fields if n in values]
        if values.get("SQRZJLX") in ("10", "20"):
            names.append("SQRZJHM")
        name = self.rng.choice(names)
        value = values[name]
        resident = name == "SQRZJHM" and values["SQRZJLX"] == "10"
        alphabet = _ID_CHECK_CHARS if resident else CREDIT_CODE_ALPHABET
        values[name] = value[:17] + self.rng.choice(alphabet.replace(value[17], ""))
        detail = "resident-id" if resident else "credit-code"
        return _injection(spec, values, IssueCode.BAD_CHECK_DIGIT, name, True,
                          f"bad-check-digit/{detail}")

    def _bad_date(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        name = self.rng.choice([n for n in spec.time_fields if n in values])
        make, detail = self.rng.choice(_BAD_DATES)
        values[name] = make(int(values[name][:4]))
        return _injection(spec, values, IssueCode.BAD_DATE, name, True, f"bad-date/{detail}")

    def _conditional(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        trigger, triggers, required = _CONDITIONAL[spec.code]
        values[trigger] = self.rng.choice(triggers)
        names = required.split()
        missing = self.rng.choice(names)
        for name in names:  # the other required fields stay, so exactly one is missing
            values.setdefault(name, "JY" + "1" * 14 if name == "ZJBH" else "许可证")
        values.pop(missing)
        return _injection(spec, values, IssueCode.CONDITIONAL_FIELD, missing, False,
                          f"conditional-field/{trigger}={values[trigger]}")

    def _division(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        values["XZQHDM"] = self.rng.choice(self.foreign)
        return _injection(spec, values, IssueCode.DIVISION_MISMATCH, "XZQHDM", True,
                          "division-mismatch")

    def _duplicate(self, spec: ElementSpec, values: dict[str, str]) -> Injection:
        moment = parse_time(values["GXSJ"])
        assert moment is not None, "duplicates are made of valid records"
        values["GXSJ"] = format_time(moment + timedelta(minutes=self.rng.randint(1, 30)))
        return _injection(spec, values, IssueCode.DUPLICATE_RECORD, None, False,
                          "duplicate-record/same-key-and-version")


def _injection(spec: ElementSpec, values: dict[str, str], code: IssueCode, field: str | None,
               at_field: bool, kind: str) -> Injection:
    pairs = [(name, values[name]) for name in spec.fields if name in values]
    return Injection(spec.code, pairs, code, field, at_field, kind)

"""Translating libxml2 schema errors into exgate issues with element and field codes."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

from schemas.catalog import FieldSpec
from schemas.issues import Issue, IssueCode
from schemas.messages import Localized

__all__ = ["value_issues"]

_SUBJECT = re.compile(r"^Element '(?:\{[^}]*\})?([^']+)'(?:, attribute '([^']+)')?: (.*)$", re.S)
_ENUM_SET = re.compile(r"set \{(.*)\}")

# libxml2 error type → (short Chinese reason, short English reason)
_REASONS: dict[str, tuple[str, str]] = {
    "SCHEMAV_CVC_ENUMERATION_VALID": (
        "不在代码表 {{{choices}}} 中",
        "not in the code list {{{choices}}}",
    ),
    "SCHEMAV_CVC_PATTERN_VALID": ("格式不符", "does not match the required pattern"),
    "SCHEMAV_CVC_MAXLENGTH_VALID": ("超过最大长度", "is longer than allowed"),
    "SCHEMAV_CVC_MINLENGTH_VALID": ("不能为空", "must not be empty"),
    "SCHEMAV_CVC_TOTALDIGITS_VALID": (
        "数字位数过多（最多16位）",
        "has too many digits (16 at most)",
    ),
    "SCHEMAV_CVC_FRACTIONDIGITS_VALID": (
        "小数位数过多（最多2位）",
        "has too many decimals (2 at most)",
    ),
    "SCHEMAV_CVC_MININCLUSIVE_VALID": ("小于允许的最小值", "is below the minimum"),
    "SCHEMAV_CVC_MAXINCLUSIVE_VALID": ("大于允许的最大值", "is above the maximum"),
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": (
        "类型不符（应为{type}）",
        "has the wrong type ({type} expected)",
    ),
    "SCHEMAV_CVC_TYPE_3_1_2": ("不能包含子元素", "must not contain child elements"),
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": ("不能带属性", "must not carry attributes"),
    "SCHEMAV_CVC_TYPE_3_1_1": ("不能带属性", "must not carry attributes"),
}
_TYPE_NAMES = {"PositiveInt": "正整数", "NonNegativeInt": "非负整数", "Amount": "金额"}


def value_issues(
    schema: etree.XMLSchema,
    element: etree._Element,
    element_code: str,
    fields: Mapping[str, FieldSpec],
    lines: Mapping[str, int],
) -> list[Issue]:
    """Validate ``element`` (already cleaned of unknown and repeated fields) and turn
    each value-level error into one issue per field.

    Structural errors (missing children) are skipped: the reader reports those from
    the catalogue, where every missing field is listed, not only the first.
    """
    schema.validate(element)
    issues: dict[str, Issue] = {}
    for error in schema.error_log:
        match = _SUBJECT.match(error.message)
        if match is None or error.type_name == "SCHEMAV_ELEMENT_CONTENT":
            continue
        name, detail = match.group(1), match.group(3)
        spec = fields.get(name)
        if spec is None or name in issues:
            continue
        issues[name] = _issue_for(error, spec, element_code, element, lines.get(name), detail)
    return list(issues.values())


def _issue_for(
    error: etree._LogEntry,
    spec: FieldSpec,
    element_code: str,
    element: etree._Element,
    line: int | None,
    detail: str,
) -> Issue:
    value = _field_text(element, spec.code)
    base = {"field": spec.code, "label": spec.label, "value": _shorten(value)}
    if spec.is_time:
        return Issue(IssueCode.BAD_DATE, "bad-date", base, element_code, spec.code, line=line)
    reason = _REASONS.get(error.type_name)
    if reason is None:
        zh = en = detail.strip()
    else:
        found = _ENUM_SET.search(detail)
        choices = ", ".join(sorted(found.group(1).replace("'", "").split(", "))) if found else ""
        type_zh = _TYPE_NAMES.get(spec.type_name, spec.type_name)
        zh = reason[0].format(choices=choices, type=type_zh)
        en = reason[1].format(choices=choices, type=spec.type_name)
    return Issue(
        IssueCode.BAD_VALUE,
        "bad-value",
        {**base, "detail": Localized(zh, en)},
        element_code,
        spec.code,
        line=line,
    )


def _field_text(element: etree._Element, code: str) -> str:
    for child in element:
        if isinstance(child.tag, str) and child.tag.endswith("}" + code):
            return child.text or ""
    return ""


def _shorten(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + "…"

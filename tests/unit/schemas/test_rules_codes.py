"""ID numbers and credit codes: a wrong length or wrong characters is a bad value with a
message of its own; only a code that could be one but for its check character is a bad
check digit."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.audit import validate_file
from schemas.catalog import load_catalog
from schemas.checkdigits import Flaw, credit_code_flaw, resident_id_flaw
from schemas.rules import check_applicant_id, check_credit_codes, credit_code_finding
from tests.unit.schemas.documents import ORG, PERSON_ID, document, record

SBXX = load_catalog().elements["SBXX"]


@pytest.mark.parametrize(("number", "flaw"), [
    (PERSON_ID, None),
    ("11010519491231002x", None),
    ("110105491231002", Flaw.LENGTH),            # 15 digits: the old format
    ("11010519491231002", Flaw.LENGTH),          # the check character left out
    ("11010519491231002XX", Flaw.LENGTH),
    ("", Flaw.LENGTH),
    ("１１0105194912310021", Flaw.CHARACTERS),   # full-width digits
    ("1101051949123100X2", Flaw.CHARACTERS),     # X only in the last place
    ("11010519491231002Y", Flaw.CHARACTERS),
    ("110105194912310021", Flaw.CHECK),
])
def test_resident_id_flaws(number: str, flaw: Flaw | None) -> None:
    assert resident_id_flaw(number) is flaw


@pytest.mark.parametrize(("code", "flaw"), [
    (ORG, None),
    ("12451422MB0173307", Flaw.LENGTH),
    ("12451422MB0173307FF", Flaw.LENGTH),
    ("12451422mb0173307F", Flaw.CHARACTERS),
    ("12451422MI0173307F", Flaw.CHARACTERS),     # I is not in the GB 32100 alphabet
    ("12451422MB0173307E", Flaw.CHECK),
])
def test_credit_code_flaws(code: str, flaw: Flaw | None) -> None:
    assert credit_code_flaw(code) is flaw


def _applicant(kind: str, number: str) -> list[tuple[str, str, str, str]]:
    fields = record("SBXX", SQRZJLX=kind, SQRZJHM=number)[1]
    return [(i.code, i.message_id, i.message("zh"), i.message("en"))
            for i in check_applicant_id(fields, SBXX)]


@pytest.mark.parametrize(("number", "zh", "en"), [
    ("110105491231002", "为 15 位；身份证号码应为 18 位：17 位数字加 1 位校验码"
                        "（15 位的旧式身份证号码须先升位为 18 位）",
     "has 15 characters; it must be 18 characters: 17 digits and a check character "
     "(a 15-digit ID of the old format must be converted to 18)"),
    ("11010519491231002", "为 17 位；身份证号码应为 18 位", "has 17 characters"),
], ids=["old-15-digits", "17-digits"])
def test_an_id_number_of_the_wrong_length_says_so(number: str, zh: str, en: str) -> None:
    [(code, message_id, text_zh, text_en)] = _applicant("10", number)
    assert (code, message_id) == ("bad-value", "id-number-length")
    assert zh in text_zh and "校验码错误" not in text_zh
    assert en in text_en and "check character (" in text_en


def test_full_width_digits_in_an_id_number_are_named() -> None:
    [(code, message_id, zh, en)] = _applicant("10", "１１0105194912310021")
    assert (code, message_id) == ("bad-value", "id-number-characters")
    assert "含有 ASCII 数字以外的字符 “１”（全角数字？）" in zh
    assert "holds characters other than ASCII digits: '１' (full-width digits?)" in en


def test_a_credit_code_of_the_wrong_length_or_characters_says_so() -> None:
    [(code, message_id, zh, en)] = _applicant("20", "12451422MB0173307")
    assert (code, message_id) == ("bad-value", "credit-code-length")
    assert "为 17 位；统一社会信用代码应为 18 位" in zh and "must be 18 characters" in en
    [(code, message_id, zh, en)] = _applicant("20", "12451422mb0173307F")
    assert (code, message_id) == ("bad-value", "credit-code-characters")
    assert "不允许的字符 “m”、“b”" in zh and "（不含 I、O、S、V、Z）" in zh
    assert "not allowed: 'm', 'b'" in en and "except I, O, S, V and Z" in en


@pytest.mark.parametrize(("kind", "number", "message_id"), [
    ("10", "110105194912310021", "bad-check-digit-id"),
    ("20", "12451422MB0173307E", "bad-check-digit-credit"),
])
def test_only_a_wrong_check_character_is_a_bad_check_digit(kind: str, number: str,
                                                           message_id: str) -> None:
    [(code, found, zh, _en)] = _applicant(kind, number)
    assert (code, found) == ("bad-check-digit", message_id)
    assert "校验码错误" in zh


def test_valid_codes_yield_nothing() -> None:
    assert _applicant("10", PERSON_ID) == [] and _applicant("20", ORG) == []
    assert check_credit_codes(record("SL")[1], load_catalog().elements["SL"]) == []
    assert credit_code_finding(ORG) is None


def test_the_validator_reports_the_length_at_the_field(tmp_path: Path) -> None:
    """Through the whole reader, with the stable code: fields in the XSD's order (the
    fast path) and reversed (lxml)."""
    element, fields = record("SBXX", SQRZJHM="110105491231002")
    for name, order in {"plain": fields, "reversed": dict(reversed(fields.items()))}.items():
        path = tmp_path / f"{name}.xml"
        path.write_bytes(document([(element, order)]))
        issues = [(i.code, i.element, i.field, i.message_id)
                  for i in validate_file(path).issues]
        assert ("bad-value", "SBXX", "SQRZJHM", "id-number-length") in issues, name

"""The pure building blocks, each tested on its own."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from schemas.catalog import load_catalog
from schemas.checkdigits import (
    CREDIT_CODE_ALPHABET,
    credit_code_check_char,
    credit_code_valid,
    resident_id_check_char,
    resident_id_valid,
)
from schemas.divisions import Level, division_path, is_division, level_of, within
from schemas.records import Record
from schemas.rules import (
    canonical_time,
    check_applicant_id,
    check_conditional_fields,
    check_credit_codes,
    check_division,
    check_extension,
    normalise_values,
    rules_for,
)
from schemas.times import BEIJING, format_time, parse_time

CATALOG = load_catalog()


@pytest.mark.parametrize("code", ["12451422MB0173307F", "91350100M000100Y43"])
def test_real_credit_codes_pass(code: str) -> None:
    assert credit_code_valid(code)
    assert credit_code_check_char(code[:17]) == code[17]


@pytest.mark.parametrize(
    "code",
    [
        "12451422MB0173307E",
        "12451422MB0173307",
        "12451422MB0173307FF",
        "12451422MI0173307F",
        "12451422mb0173307F",
    ],
)
def test_wrong_credit_codes_fail(code: str) -> None:
    assert not credit_code_valid(code)


def test_credit_code_valid_agrees_with_the_check_character() -> None:
    """The per-record check sums all 18 values; ``credit_code_check_char`` computes C18."""
    for n in range(0, 31**17, 31**17 // 997):  # every character in every place, many sums
        digits = []
        for _ in range(17):
            n, value = divmod(n, 31)
            digits.append(CREDIT_CODE_ALPHABET[value])
        first17 = "".join(digits)
        right = credit_code_check_char(first17)
        for last in CREDIT_CODE_ALPHABET:
            assert credit_code_valid(first17 + last) == (last == right), first17
    assert not credit_code_valid("91350100M000100Y4I")  # I is no character of the alphabet


def test_resident_id_check() -> None:
    assert resident_id_valid("11010519491231002X")
    assert resident_id_valid("11010519491231002x")
    assert resident_id_check_char("11010519491231002") == "X"
    assert not resident_id_valid("110105194912310021")
    assert not resident_id_valid("1101051949123100２X")  # full-width digit
    assert not resident_id_valid("11010519491231002")


def test_check_characters_follow_their_formulas() -> None:
    """The check characters are the standards' weighted sums, at every position: each
    code below has one non-zero character, at each place and of each value."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    for place in range(17):
        for value, char in enumerate(alphabet):
            code = "0" * place + char + "0" * (16 - place)
            assert credit_code_check_char(code) == alphabet[(31 - value * 3**place % 31) % 31]
            if value < 10:
                weight = 2 ** (17 - place) % 11
                assert resident_id_check_char(code) == "10X98765432"[value * weight % 11]
    # Other Unicode digits are read as digits, as int() reads them; a letter is refused.
    assert resident_id_check_char("1101051949123100２") == resident_id_check_char(
        "11010519491231002")
    with pytest.raises(ValueError):
        resident_id_check_char("1101051949123100A")
    with pytest.raises(KeyError):
        credit_code_check_char("1245142IMB0173307")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20 09:58:01", "2026-11-20 09:58:01"),
        ("20261120095801", "2026-11-20 09:58:01"),
        ("2026-11-20T09:58:01", "2026-11-20 09:58:01"),
        ("2026-11-20T01:58:01Z", "2026-11-20 09:58:01"),
        ("2026-11-20T09:58:01.250+08:00", "2026-11-20 09:58:01"),
        ("2026-11-19T20:58:01-05:00", "2026-11-20 09:58:01"),
    ],
)
def test_times_parse_as_beijing(text: str, expected: str) -> None:
    moment = parse_time(text)
    assert moment is not None and format_time(moment) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-29 00:00:00",
        "2026-13-01 00:00:00",
        "20261120246000",
        "2026-11-20",
        "now",
        "2026-11-20 9:58:01",
    ],
)
def test_not_real_times(text: str) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T09:58:01+08:00",
        "2026-11-20T09:58:01",
        "2028-02-29T23:59:59+08:00",
        "2026-02-29T09:58:01+08:00",
        "2026-11-20T24:00:00+08:00",
        "2026-11-20T09:58:60",
        "2026-W47-5T09:58:01",  # an ISO week date: parse_time knows it
        "0001-01-01T08:00:00+08:00",
        "9999-12-31T23:59:59+08:00",
        "20261120095801",
        "20280229235959",
        "20260229095801",
        "20261131095801",
        "20261120246000",
        "20261120095960",
        "00010101000000",
        "2026-11-20 09:58:01",
        "2026-02-30 09:58:01",
        "2026-11-20 23:60:00",
    ],
)
def test_time_shortcuts_agree_with_parsing(text: str) -> None:
    moment = parse_time(text)
    assert canonical_time(text) == (None if moment is None else format_time(moment))


def test_leap_day_is_real() -> None:
    assert parse_time("2028-02-29 12:00:00") is not None


def test_division_levels_and_paths() -> None:
    assert level_of("430000") is Level.PROVINCE
    assert level_of("430100") is Level.CITY
    assert level_of("430102") is Level.COUNTY
    assert division_path("430102") == ("430000", "430100", "430102")
    assert division_path("430100") == ("430000", "430100", "430100")
    assert division_path("430000") == ("430000", "430000", "430000")
    assert division_path("110105") == ("110000", "110100", "110105")  # municipality district


@pytest.mark.parametrize(("code", "known"), [
    ("430102", True), ("110000", True), ("820000", True), ("659001", True),
    ("403102", False),  # a typo of 430102: there is no province 40
    ("990000", False), ("000000", False), ("4301", False), ("4301020", False),
    ("４３０１０２", False),  # full-width digits are no code
])
def test_a_division_code_names_a_province(code: str, known: bool) -> None:
    assert is_division(code) is known


def test_within() -> None:
    assert within("430000", "430102") and within("430100", "430102")
    assert within("430102", "430103")  # same city: a county may report its city's cases
    assert not within("430102", "430202")
    assert not within("430000", "440102")


def _fields(element: str, **values: str) -> dict[str, str]:
    from tests.unit.schemas.documents import record

    return record(element, **values)[1]


def test_rules_yield_nothing_for_valid_records() -> None:
    for code, spec in CATALOG.elements.items():
        fields = _fields(code)
        assert list(check_credit_codes(fields, spec)) == []
        assert list(check_applicant_id(fields, spec)) == []
        assert list(check_conditional_fields(fields, spec)) == []
        assert list(check_extension(fields, spec)) == []
        assert list(check_division(fields, spec, "430102")) == []


def test_applicant_id_other_types_are_not_checked() -> None:
    spec = CATALOG.elements["SBXX"]
    assert list(check_applicant_id(_fields("SBXX", SQRZJLX="30", SQRZJHM="E12345678"), spec)) == []


def test_extension_b_has_no_limit() -> None:
    spec = CATALOG.elements["TBCXSQ"]
    fields = _fields("TBCXSQ", TBCXZL="B", TBCXSX="60", TBCXSXDW="Z")
    assert list(check_extension(fields, spec)) == []


def test_normalise_values_reports_future_and_keeps_fields() -> None:
    spec = CATALOG.elements["SL"]
    now = datetime(2026, 11, 20, 12, 0, tzinfo=BEIJING)
    fields = _fields("SL", SLSJ="2026-11-21 11:59:59", GXSJ="2026-11-21 12:00:01")
    before = dict(fields)
    changes, issues = normalise_values(fields, spec, now + timedelta(days=1))
    assert [(i.code, i.field) for i in issues] == [("bad-date", "GXSJ")]
    assert "SLSJ" not in changes  # already canonical
    assert "GXSJ" not in changes  # a bad time keeps its value
    assert fields == before  # pure: the changes are the caller's to apply


def test_catalog_reads_keys_and_labels_from_the_xsd() -> None:
    assert CATALOG.elements["SPGC"].key == ("SBLSH", "BZH")
    assert CATALOG.elements["SBXX"].fields["SBLSH"].label == "申办流水号"
    assert CATALOG.elements["BJ"].fields["ZJMC"].required is False
    assert [e.number for e in CATALOG.elements.values()] == list(range(1, 15))


def test_numbers_lose_tolerated_white_space_and_leading_zeros() -> None:
    spec = CATALOG.elements["SF"]
    latest = datetime(2030, 1, 1, tzinfo=BEIJING)
    fields = _fields("SF", SJBBH=" 02 ", SFJE=" 120.50\n")
    changes, issues = normalise_values(fields, spec, latest)
    assert issues == []
    assert (changes["SJBBH"], changes["SFJE"]) == ("2", "120.50")


def test_resident_id_check_character_is_upper_cased() -> None:
    spec = CATALOG.elements["SBXX"]
    changes, _ = normalise_values(
        _fields("SBXX", SQRZJHM="11010519491231002x"), spec, datetime(2030, 1, 1, tzinfo=BEIJING)
    )
    assert changes["SQRZJHM"] == "11010519491231002X"


def test_rules_are_chosen_per_element() -> None:
    assert check_extension in rules_for(CATALOG.elements["TBCXSQ"])
    assert check_extension not in rules_for(CATALOG.elements["SBXX"])
    assert check_conditional_fields in rules_for(CATALOG.elements["BJ"])
    assert check_applicant_id not in rules_for(CATALOG.elements["SL"])


def test_record_digest_is_stable() -> None:
    """Outboxes and stores keep digests across upgrades: the formula must not move.

    Field order does not matter; names and values, the element and the escaping do.
    """
    fields = {"SBLSH": "A&1", "XZQHDM": "430102", "SQRMC": "张三", "SJBBH": "2"}
    record = Record("SBXX", fields, ("A&1",), 2)
    assert record.digest() == "8334adbaa9f2f5888174e222da4690bfc559dd9cfd05e732f8093b56a7102102"
    assert Record("SBXX", dict(reversed(fields.items())), ("A&1",), 2).digest() \
        == record.digest()
    assert Record("BJXX", fields, ("A&1",), 2).digest() != record.digest()
    assert Record("SBXX", {**fields, "SQRMC": "李四"}, ("A&1",), 2).digest() != record.digest()


def _digest_as_written(record: Record) -> str:
    """The digest's formula spelled out, sorting each record's items."""
    canonical = "\x1e".join(map("\x1f".join, sorted(record.fields.items())))
    return hashlib.sha256(f"{record.element}\x1d{canonical}".encode()).hexdigest()


@pytest.mark.parametrize("element, fields", [
    ("SBXX", {"XZQHDM": "430102", "SJBBH": "1", "SQRMC": "张三", "SBLSH": "A"}),
    ("SBXX", {"SBLSH": "A", "XZQHDM": "430102", "SJBBH": "1"}),  # a field fewer, other order
    ("SBXX", {"SJBBH": "1", "SQRMC": "100%s %(x)s {0}", "SBLSH": "%"}),  # values like formats
    ("S%sB", {"A%s": "1", "%": "%%"}),  # names like formats
    ("SBXX", {"SJBBH": "1"}),  # one value: ``%`` takes it bare
    ("SBXX", {}),
])
def test_record_digest_frame_is_the_formula(element: str, fields: dict[str, str]) -> None:
    """The frame a set of names shares gives each record the digest the formula does,
    the first time and from the cache."""
    for _ in range(2):
        record = Record(element, dict(fields), ("A",), 1)
        assert record.digest() == _digest_as_written(record)

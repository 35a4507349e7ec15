"""Every rule and error code of design §8: a minimal file fails with exactly that code,
at the right line, element and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.audit import validate_file
from schemas.catalog import load_catalog
from schemas.issues import Issue
from schemas.reader import DocumentReader
from tests.unit.schemas.documents import NS, VALID, document, record

FIRST_RECORD_LINE = 5


def issues_of(tmp_path: Path, data: bytes) -> list[Issue]:
    path = tmp_path / "case.xml"
    path.write_bytes(data)
    return list(validate_file(path).issues)


def only(issues: list[Issue]) -> Issue:
    assert len(issues) == 1, [(i.code, i.field, i.message("en")) for i in issues]
    return issues[0]


@pytest.mark.parametrize("element", list(VALID))
def test_a_valid_record_of_each_element_passes(tmp_path: Path, element: str) -> None:
    result = validate_file(_write(tmp_path, document([record(element)])))
    assert result.issues == ()
    assert (result.records, result.valid_records) == (1, 1)


def test_the_test_data_covers_all_14_elements() -> None:
    assert set(VALID) == set(load_catalog().elements)
    assert len(VALID) == 14


RECORD_CASES = [
    # (id, record, code, element, field)
    ("missing", record("SBXX", SQRMC=None), "missing-field", "SBXX", "SQRMC"),
    ("enum", record("SBXX", SQRLX="7"), "bad-value", "SBXX", "SQRLX"),
    ("pattern", record("SBXX", XZQHDM="4301"), "bad-value", "SBXX", "XZQHDM"),
    ("length", record("SBXX", SBLSH="S" * 51), "bad-value", "SBXX", "SBLSH"),
    ("blank name", record("SBXX", SQRMC="   "), "bad-value", "SBXX", "SQRMC"),
    ("blank text", record("SPGC", SPYJ=" \n "), "bad-value", "SPGC", "SPYJ"),
    ("negative amount", record("SF", SFJE="-1.00"), "bad-value", "SF", "SFJE"),
    ("three decimals", record("SF", SFJE="1.005"), "bad-value", "SF", "SFJE"),
    ("zero version", record("SL", SJBBH="0"), "bad-value", "SL", "SJBBH"),
    (
        "credit check",
        record("JGXX", TYSHXYDM="12451422MB0173307E"),
        "bad-check-digit",
        "JGXX",
        "TYSHXYDM",
    ),
    ("org code check", record("BJ", BJBM="12451422MB0173307E"), "bad-check-digit", "BJ", "BJBM"),
    (
        "id check",
        record("SBXX", SQRZJHM="110105194912310021"),
        "bad-check-digit",
        "SBXX",
        "SQRZJHM",
    ),
    (
        "id as credit",
        record("SBXX", SQRZJLX="20", SQRZJHM="12451422MB0173307E"),
        "bad-check-digit",
        "SBXX",
        "SQRZJHM",
    ),
    ("feb 30", record("SL", SLSJ="2026-02-30 10:00:00"), "bad-date", "SL", "SLSJ"),
    ("garbage time", record("SL", SLSJ="yesterday"), "bad-date", "SL", "SLSJ"),
    ("hour 24", record("SL", SLSJ="20261120240000"), "bad-date", "SL", "SLSJ"),
    ("future", record("SPGC", SPSJ="2099-01-01 00:00:00"), "bad-date", "SPGC", "SPSJ"),
    ("refused without reason", record("YSL", YSLZT="2"), "conditional-field", "YSL", "BSLYY"),
    ("not accepted without reason", record("SL", SLZT="2"), "conditional-field", "SL", "BSLYY"),
    ("rejected without reason", record("SL", SLZT="4"), "conditional-field", "SL", "BSLYY"),
    ("certificate without name", record("BJ", ZJMC=None), "conditional-field", "BJ", "ZJMC"),
    ("certificate without number", record("BJ", ZJBH=None), "conditional-field", "BJ", "ZJBH"),
    (
        "extension in calendar days",
        record("TBCXSQ", TBCXSXDW="Z"),
        "bad-value",
        "TBCXSQ",
        "TBCXSXDW",
    ),
    ("extension too long", record("TBCXSQ", TBCXSX="16"), "bad-value", "TBCXSQ", "TBCXSX"),
    ("other province", record("SBXX", XZQHDM="440103"), "division-mismatch", "SBXX", "XZQHDM"),
    ("other city", record("SBXX", XZQHDM="430202"), "division-mismatch", "SBXX", "XZQHDM"),
]


@pytest.mark.parametrize(
    ("rec", "code", "element", "field"),
    [c[1:] for c in RECORD_CASES],
    ids=[c[0] for c in RECORD_CASES],
)
def test_record_rule_reports_exactly_its_code(
    tmp_path: Path,
    rec: tuple[str, dict[str, str]],
    code: str,
    element: str,
    field: str,
) -> None:
    issue = only(issues_of(tmp_path, document([record("JGXX"), rec])))
    assert (str(issue.code), issue.element, issue.field) == (code, element, field)
    assert issue.line == FIRST_RECORD_LINE + 1
    line_text = document([record("JGXX"), rec]).decode().splitlines()[issue.line - 1]
    absent = code in ("missing-field", "conditional-field")  # point at the record instead
    expected_tag = f"<{element}>" if absent else f"<{field}>"
    assert issue.column == line_text.index(expected_tag) + 1


def test_conditional_fields_present_pass(tmp_path: Path) -> None:
    rec = record("SL", SLZT="2", BSLYY="材料不符合法定形式")
    assert issues_of(tmp_path, document([rec])) == []


def test_unexpected_field(tmp_path: Path) -> None:
    element, fields = record("SBCL")
    fields["FOO"] = "1"
    issue = only(issues_of(tmp_path, document([(element, fields)])))
    assert (issue.code, issue.element, issue.field, issue.line) == (
        "unexpected-field",
        "SBCL",
        "FOO",
        FIRST_RECORD_LINE,
    )


def test_every_problem_of_one_record_is_reported_not_just_the_first(tmp_path: Path) -> None:
    element, fields = record("SBXX", SQRLX="7", SQRMC=None, SBSJ="2026-02-30 00:00:00")
    fields = {"FOO": "x", **fields}  # libxml2 alone would stop at FOO
    found = {(str(i.code), i.field) for i in issues_of(tmp_path, document([(element, fields)]))}
    assert found == {
        ("unexpected-field", "FOO"),
        ("bad-value", "SQRLX"),
        ("missing-field", "SQRMC"),
        ("bad-date", "SBSJ"),
    }


def test_unknown_element(tmp_path: Path) -> None:
    issue = only(
        issues_of(tmp_path, document([record("SBXX")], extra_body="<QTXX><A>1</A></QTXX>"))
    )
    assert (issue.code, issue.element, issue.field, issue.line) == (
        "unknown-element",
        "QTXX",
        None,
        FIRST_RECORD_LINE + 1,
    )


def test_count_mismatch(tmp_path: Path) -> None:
    issue = only(issues_of(tmp_path, document([record("SBXX")], head={"COUNT": "2"})))
    assert (issue.code, issue.element, issue.field, issue.line) == (
        "count-mismatch",
        "HEAD",
        "COUNT",
        3,
    )


def test_count_that_matches_passes(tmp_path: Path) -> None:
    assert issues_of(tmp_path, document([record("SBXX"), record("SL")], head={"COUNT": "2"})) == []


def test_duplicate_record_with_other_content(tmp_path: Path) -> None:
    data = document([record("SBXX"), record("SBXX", SQRMC="李雷")])
    issue = only(issues_of(tmp_path, data))
    assert (issue.code, issue.element, issue.line) == (
        "duplicate-record",
        "SBXX",
        FIRST_RECORD_LINE + 1,
    )


def test_identical_duplicate_is_not_an_error(tmp_path: Path) -> None:
    assert issues_of(tmp_path, document([record("SBXX"), record("SBXX")])) == []


def test_new_version_of_the_same_key_is_not_a_duplicate(tmp_path: Path) -> None:
    assert (
        issues_of(tmp_path, document([record("SBXX"), record("SBXX", SJBBH="2", SQRMC="李雷")]))
        == []
    )


def test_city_head_accepts_its_counties_and_province_head_its_cities(tmp_path: Path) -> None:
    data = document([record("SBXX", XZQHDM="430103")], head={"XZQHDM": "430100"})
    assert issues_of(tmp_path, data) == []
    data = document([record("SBXX", XZQHDM="430202")], head={"XZQHDM": "430000"})
    assert issues_of(tmp_path, data) == []


def test_bad_head_field(tmp_path: Path) -> None:
    issue = only(issues_of(tmp_path, document([record("SBXX")], head={"CREATED": "never"})))
    assert (issue.code, issue.element, issue.field, issue.line) == (
        "bad-date",
        "HEAD",
        "CREATED",
        3,
    )


FILE_CASES = [
    ("empty", b"", "empty-file", None),
    ("blank", b"  \n\n ", "empty-file", None),
    (
        "malformed",
        b'<?xml version="1.0"?>\n<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">\n<HEAD>\n</EXCHANGE>',
        "malformed-xml",
        4,
    ),
    ("wrong root", b'<?xml version="1.0"?>\n<html><body/></html>', "wrong-root", 2),
    ("no namespace", b'<?xml version="1.0"?>\n<EXCHANGE version="1"/>', "wrong-root", 2),
    (
        "unknown version",
        b'<?xml version="1.0"?>\n<EXCHANGE xmlns="urn:exgate:exchange:9" version="9"/>',
        "unknown-schema-version",
        2,
    ),
    (
        "version attribute",
        b'<?xml version="1.0"?>\n<EXCHANGE xmlns="urn:exgate:exchange:1" version="2"/>',
        "unknown-schema-version",
        2,
    ),
    (
        "doctype",
        b'<?xml version="1.0"?>\n<!DOCTYPE EXCHANGE>\n<EXCHANGE xmlns="urn:exgate:exchange:1" version="1"/>',
        "forbidden-dtd",
        2,
    ),
    (
        "undeclared entity",
        b'<?xml version="1.0"?>\n<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">&x;</EXCHANGE>',
        "forbidden-dtd",
        2,
    ),
    (
        "declared utf-8, gbk bytes",
        '<?xml version="1.0" encoding="UTF-8"?>\n<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">\n中文</EXCHANGE>'.encode(
            "gbk"
        ),
        "encoding-error",
        3,
    ),
    (
        "declared gbk, invalid bytes",
        b'<?xml version="1.0" encoding="GBK"?>\n<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">\n\x81\x20</EXCHANGE>',
        "encoding-error",
        3,
    ),
]


@pytest.mark.parametrize(
    ("data", "code", "line"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_file_level_code(tmp_path: Path, data: bytes, code: str, line: int | None) -> None:
    issue = only(issues_of(tmp_path, data))
    assert str(issue.code) == code
    assert issue.line == line
    assert issue.element is None and issue.field is None


def test_file_too_large(tmp_path: Path) -> None:
    from schemas.reader import Limits

    path = _write(tmp_path, document([record("SBXX")]))
    issue = only(list(validate_file(path, Limits(max_file_bytes=100)).issues))
    assert issue.code == "file-too-large"


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK", "GB18030", "UTF-16"])
def test_declared_encodings_are_honoured(tmp_path: Path, encoding: str) -> None:
    from schemas.reader import DocumentReader

    data = (
        document([record("SBXX", SQRMC="欧阳𠀀娜")], encoding=encoding)
        if encoding in ("GB18030", "UTF-8", "UTF-16")
        else document([record("SBXX", SQRMC="欧阳娜")], encoding=encoding)
    )
    reader = DocumentReader(data, "enc.xml")
    checks = list(reader)
    assert reader.issues == [] and checks[0].record is not None
    assert checks[0].record.fields["SQRMC"].startswith("欧阳")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    assert issues_of(tmp_path, b"\xef\xbb\xbf" + document([record("SBXX")])) == []


def test_times_are_normalised_to_one_notation() -> None:
    from schemas.reader import DocumentReader

    data = document([record("SL", SLSJ="20261120095801", GXSJ="2026-11-20T01:58:01Z")])
    (check,) = list(DocumentReader(data, "t.xml"))
    assert check.record is not None
    assert check.record.fields["SLSJ"] == "2026-11-20 09:58:01"
    assert check.record.fields["GXSJ"] == "2026-11-20 09:58:01"


def test_bad_record_does_not_lose_the_good_ones_beside_it(tmp_path: Path) -> None:
    from schemas.reader import DocumentReader

    data = document([record("SBXX"), record("SL", SLZT="9"), record("BJ")])
    checks = list(DocumentReader(data, "t.xml"))
    assert [c.valid for c in checks] == [True, False, True]


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "case.xml"
    path.write_bytes(data)
    return path


def test_namespace_constant_matches_catalog() -> None:
    assert load_catalog().namespace == NS


def test_count_with_white_space_is_still_checked(tmp_path: Path) -> None:
    issue = only(issues_of(tmp_path, document([record("SBXX")], head={"COUNT": " 2 "})))
    assert issue.code == "count-mismatch"


def test_integer_keys_with_white_space_are_one_key(tmp_path: Path) -> None:
    data = document([record("SBCL", CLXH="1"), record("SBCL", CLXH=" 01 ", CLSL="3")])
    issue = only(issues_of(tmp_path, data))
    assert (issue.code, issue.element) == ("duplicate-record", "SBCL")


def test_an_agent_rejects_records_outside_its_node_division() -> None:
    from schemas.reader import DocumentReader

    data = document([record("SBXX"), record("SL", XZQHDM="430202")], head={"XZQHDM": "430000"})
    checks = list(DocumentReader(data, "t.xml", node_division="430102"))
    assert [c.valid for c in checks] == [True, False]
    (issue,) = checks[1].issues
    assert (issue.code, issue.field, issue.line) == ("division-mismatch", "XZQHDM", 6)
    assert "430102" in issue.message("en")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("SJBBH", "9" * 5000, "bad-value"),
    ("GXSJ", "0001-01-01T00:00:00+14:00", "bad-date"),
    ("GXSJ", "9999-12-31T23:59:59-10:00", "bad-date"),
])
def test_values_at_the_edges_of_python_are_issues_not_crashes(
        field: str, value: str, code: str) -> None:
    reader = DocumentReader(document([record("JGXX", **{field: value})]), "edge.xml")
    [check] = list(reader)
    assert [str(i.code) for i in check.issues] == [code]
    assert check.issues[0].field == field and check.issues[0].line == 5


def test_leading_zeros_by_the_thousand_are_still_the_number() -> None:
    zeros = "0" * 4400
    reader = DocumentReader(
        document([record("JGXX", SJBBH=f"{zeros}7")], head={"COUNT": f"{zeros}1"}), "z.xml")
    [check] = list(reader)
    assert check.record is not None and check.record.version == 7
    assert check.record.fields["SJBBH"] == "7"
    assert reader.issues == [] and reader.head is not None and reader.head.count == 1


def test_identical_duplicate_in_another_field_order_is_not_an_error(tmp_path: Path) -> None:
    element, fields = record("SBXX")
    shuffled = (element, dict(reversed(fields.items())))  # xs:all: any order is the same record
    assert issues_of(tmp_path, document([record("SBXX"), shuffled])) == []


def test_same_value_in_another_optional_field_is_other_content(tmp_path: Path) -> None:
    first = record("BJ", BJJG="1", ZJMC="营业执照", ZJBH=None)
    second = record("BJ", BJJG="1", ZJMC=None, ZJBH="营业执照")
    issue = only(issues_of(tmp_path, document([first, second])))
    assert (issue.code, issue.element) == ("duplicate-record", "BJ")

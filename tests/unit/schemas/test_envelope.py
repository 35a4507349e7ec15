"""Misshapen documents: what the XSD refuses is reported, and the good records beside it
still go through; nothing crashes the reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.progress import TextColumn

from cli import main
from schemas.audit import validate_file
from schemas.reader import DocumentReader
from schemas.validate_command import _progress_for
from tests.unit.schemas.documents import NS, document, record

GOOD = document([record("SBXX"), record("SL")]).decode()
HEAD_LINE = GOOD.splitlines()[2]


def read(text: str) -> tuple[DocumentReader, list[tuple[str, str | None, str]]]:
    """The reader, and every issue as (code, field, message in English)."""
    reader = DocumentReader(text.encode(), "case.xml")
    checks = list(reader)
    found = [(str(i.code), i.field, i.message("en")) for i in reader.issues]
    found += [(str(i.code), i.field, i.message("en")) for c in checks for i in c.issues]
    return reader, found


def test_a_head_inside_body_is_an_unknown_element_not_a_crash() -> None:
    reader, found = read(GOOD.replace("<BODY>", "<BODY>" + HEAD_LINE))
    assert [code for code, _, _ in found] == ["unknown-element"]
    assert reader.valid == 2


def test_a_second_body_is_reported() -> None:
    second = "<BODY><JGXX/></BODY>".replace("<JGXX/>", GOOD.splitlines()[4])
    reader, found = read(GOOD.replace("</BODY>", "</BODY>" + second))
    assert [(code, field) for code, field, _ in found] == [("unexpected-field", "BODY")]
    assert (reader.records, reader.valid) == (3, 3)  # the second BODY's record is still read


def test_a_missing_body_is_reported() -> None:
    _, found = read(GOOD.split("<BODY>")[0] + "</EXCHANGE>")
    assert [(code, field) for code, field, _ in found] == [("missing-field", "BODY")]


def test_attributes_and_text_on_a_record_are_reported_and_its_neighbours_pass() -> None:
    reader, found = read(GOOD.replace("<SBXX>", '<SBXX note="x">'))
    assert [(code, field) for code, field, _ in found] == [("unexpected-field", None)]
    assert "note" in found[0][2] and reader.valid == 1
    reader, found = read(GOOD.replace("<SBXX>", "<SBXX>junk"))
    assert [(code, field) for code, field, _ in found] == [("unexpected-field", None)]
    assert "junk" in found[0][2] and reader.valid == 1


def test_text_between_records_is_reported() -> None:
    reader, found = read(GOOD.replace("</SBXX>\n", "</SBXX>stray\n"))
    assert [code for code, _, _ in found] == ["unexpected-field"]
    assert "stray" in found[0][2] and reader.valid == 2


def test_unknown_attributes_on_exchange_are_reported_schema_location_is_not() -> None:
    _, found = read(GOOD.replace('version="1">', 'version="1" sender="x">'))
    assert [code for code, _, _ in found] == ["unexpected-field"] and "sender" in found[0][2]
    xsi = (
        'version="1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{NS} exchange-1.xsd">'
    )
    _, found = read(GOOD.replace('version="1">', xsi))
    assert found == []


def test_max_file_mb_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(GOOD, "utf-8")
    result = CliRunner().invoke(main, ["validate", "--max-file-mb", "0", str(path)])
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(("lang", "label"), [("zh", "校验"), ("en", "validating")])
def test_progress_sizing_survives_a_dangling_link_in_a_folder(tmp_path: Path, lang: str,
                                                              label: str) -> None:
    (tmp_path / "gone.xml").symlink_to(tmp_path / "nowhere")
    for n in range(25):
        (tmp_path / f"{n}.xml").write_text(GOOD, "utf-8")
    with _progress_for((tmp_path,), show=True, lang=lang) as progress:
        assert progress is not None
        [column, *_] = progress._progress.columns
        assert isinstance(column, TextColumn) and column.text_format == label


def test_attributes_on_body_are_reported_as_the_xsd_does() -> None:
    reader, found = read(GOOD.replace("<BODY>", '<BODY foo="1">'))
    assert found == [("unexpected-field", None,
                      "BODY (报文体) must not carry the attribute foo; remove it")]
    assert reader.valid == 2
    xsi = '<BODY xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="x">'
    assert read(GOOD.replace("<BODY>", xsi))[1] == []  # xsi:* as on EXCHANGE


def test_elements_that_are_no_records_are_not_counted_as_records() -> None:
    text = document([record("SL")], head={"COUNT": "1"}).decode()
    reader, found = read(text.replace("</BODY>", "<XX/></BODY>"))
    assert [code for code, _, _ in found] == ["unknown-element"]  # and no count-mismatch
    assert (reader.records, reader.valid) == (1, 1)


def test_a_body_inside_body_is_an_unknown_element_not_a_crash() -> None:
    reader, found = read(GOOD.replace("</BODY>", "<BODY/></BODY>"))
    assert [code for code, _, _ in found] == ["unknown-element"]
    assert (reader.records, reader.valid) == (2, 2)


def test_a_missing_version_attribute_is_named_as_missing() -> None:
    reader, _ = read(GOOD.replace(' version="1">', ">"))
    (issue,) = reader.issues
    assert (issue.code, issue.line) == ("unknown-schema-version", 2)
    assert issue.message("zh") == 'EXCHANGE 缺少必需的 version 属性；应写 version="1"'
    assert issue.message("en") == (
        'EXCHANGE lacks its required version attribute; write version="1"')


@pytest.mark.parametrize(
    ("before", "after", "line"),
    [
        ("</HEAD>\n<BODY>", "</HEAD>\nstray\n<BODY>", 4),
        ("</HEAD>\n<BODY>", "</HEAD>\n\n  stray\n\n<BODY>", 5),
        ("</BODY>\n", "</BODY>\nafter\n", 8),
        ("</BODY>\n</EXCHANGE>\n", "</BODY>\n</EXCHANGE>\n".replace("\n</", "\n\nafter</"), 9),
        ('version="1">\n', 'version="1">\nbefore\n', 3),
    ],
)
def test_stray_text_in_exchange_is_reported_on_its_own_line(
    before: str, after: str, line: int
) -> None:
    reader, _ = read(GOOD.replace(before, after))
    assert [(i.message_id, i.line) for i in reader.issues] == [("stray-text", line)]


def test_stray_text_after_the_last_section_of_a_file_is_found_on_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "after.xml"
    path.write_text(GOOD.replace("</BODY>\n", "</BODY>\n\nafter\n"), "utf-8")
    (issue,) = validate_file(path).issues
    assert (issue.message_id, issue.line, issue.column) == ("stray-text", 9, 1)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.replace(f'<EXCHANGE xmlns="{NS}"', f'<ex:EXCHANGE xmlns:ex="{NS}"')
         .replace("</EXCHANGE>", "</ex:EXCHANGE>"),
         [("HEAD", "HEAD is in no namespace, expected namespace " + NS),
          ("BODY", "BODY is in no namespace, expected namespace " + NS)]),
        (lambda t: t.replace("<BODY>", '<BODY xmlns="urn:other">'),
         [("BODY", f"BODY is in namespace 'urn:other', expected namespace {NS}")]),
    ],
    ids=["prefixed-root", "other-body"],
)
def test_a_section_in_another_namespace_gets_one_message_naming_it(
    change: Any, expected: list[tuple[str, str]]
) -> None:
    reader, found = read(change(GOOD))
    assert [(field, message.split(";")[0]) for _, field, message in found] == expected
    assert reader.records == 0


def test_a_record_in_another_namespace_names_the_namespace() -> None:
    reader, found = read(GOOD.replace("<SL>", '<SL xmlns="urn:other">'))
    assert found == [("unknown-element", None, "SL is in namespace 'urn:other', expected "
                      f"namespace {NS}; its content was not read")]
    assert (reader.records, reader.valid) == (1, 1)

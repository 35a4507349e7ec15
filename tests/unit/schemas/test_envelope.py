"""Misshapen documents: what the XSD refuses is reported, and the good records beside it
still go through; nothing crashes the reader."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli import main
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


def test_progress_sizing_survives_a_dangling_link_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "gone.xml").symlink_to(tmp_path / "nowhere")
    for n in range(25):
        (tmp_path / f"{n}.xml").write_text(GOOD, "utf-8")
    with _progress_for((tmp_path,), show=True) as progress:
        assert progress is not None

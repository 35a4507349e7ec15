"""The streaming writer: round trips, catalogue order, line bookkeeping, the defect path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from lxml import etree

from schemas.catalog import load_catalog
from schemas.reader import DocumentReader
from schemas.record_check import RecordCheck
from schemas.records import Record
from schemas.writer import DocumentWriter, Layout, document_bytes, record_xml
from tests.unit.schemas.documents import ORG, VALID, T, record

HEAD = {"XZQHDM": "430102", "TYSHXYDM": ORG, "CREATED": T}
ENCODINGS = ("UTF-8", "GB18030", "GBK", "UTF-16")


def read(data: bytes | Path) -> tuple[DocumentReader, list[RecordCheck]]:
    reader = DocumentReader(data, "doc.xml")
    return reader, list(reader)


def issues(checks: list[RecordCheck]) -> set[tuple[int | None, str, str | None, str]]:
    return {(i.line, i.element or "", i.field, str(i.code)) for c in checks for i in c.issues}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("layout", list(Layout))
def test_every_element_round_trips(encoding: str, layout: Layout) -> None:
    drafts = [record(element) for element in VALID]
    data = document_bytes({**HEAD, "COUNT": str(len(drafts))}, drafts, encoding=encoding,
                          layout=layout)
    reader, checks = read(data)
    assert reader.issues == [] and issues(checks) == set()
    assert [(c.element, dict(c.record.fields)) for c in checks if c.record] == \
        [(e, f) for e, f in drafts]
    assert reader.head is not None and reader.head.count == len(drafts)


def test_records_read_back_write_the_same_document() -> None:
    first = document_bytes(HEAD, [record(e) for e in VALID])
    _, checks = read(first)
    records = [c.record for c in checks if isinstance(c.record, Record)]
    assert document_bytes(HEAD, records) == first


def test_fields_follow_the_catalogue_order_whatever_the_input_order() -> None:
    element, fields = record("SBXX")
    data = document_bytes(HEAD, [(element, dict(reversed(list(fields.items()))))])
    root = etree.fromstring(data)
    written = [etree.QName(child).localname for child in root[1][0]]
    assert written == [name for name in load_catalog().elements["SBXX"].fields if name in fields]


def test_the_document_has_declaration_namespace_version_and_head_in_order() -> None:
    data = document_bytes({"NODEID": "node-1", **HEAD, "BATCHID": "b1"}, [], encoding="GB18030")
    assert data.startswith(b"<?xml version='1.0' encoding='GB18030'?>\n<EXCHANGE")
    root = etree.fromstring(data)
    assert root.tag == "{urn:exgate:exchange:1}EXCHANGE" and root.get("version") == "1"
    head = [etree.QName(child).localname for child in root[0]]
    assert head == ["XZQHDM", "TYSHXYDM", "CREATED", "BATCHID", "NODEID"]
    assert [etree.QName(child).localname for child in root] == ["HEAD", "BODY"]


def test_created_defaults_to_now_and_empty_optional_fields_are_left_out() -> None:
    element, fields = record("SXXX", SFYJ="")
    data = document_bytes({"XZQHDM": "430102", "TYSHXYDM": ORG}, [(element, fields)])
    reader, checks = read(data)
    assert reader.head is not None and len(reader.head.fields["CREATED"]) == 19
    assert checks[0].record is not None and "SFYJ" not in checks[0].record.fields


def test_reported_lines_match_what_the_writer_returned() -> None:
    buffer = io.BytesIO()
    text = "第一行\n第二行 <&> \"引号\"\n第三行"
    with DocumentWriter(buffer, HEAD) as writer:
        landed = [writer.write(record("SPGC", SPYJ=text, BZH=str(n))) for n in range(1, 4)]
        landed.append(writer.write(record("LQDJ")))
    _, checks = read(buffer.getvalue())
    assert [c.line for c in checks] == [w.line for w in landed]
    assert checks[0].record is not None and checks[0].record.fields["SPYJ"] == text
    # one line per field, two more inside SPYJ, one for </SPGC>, then the next record
    assert landed[1].line - landed[0].line == len(landed[0].field_lines) + 2 + 1 + 1


def test_compact_layout_puts_one_record_per_line() -> None:
    data = document_bytes(HEAD, [record("SBXX"), record("SBCL")], layout=Layout.COMPACT)
    lines = data.decode().splitlines()
    assert lines[-4].startswith("    <SBXX><XZQHDM>") and lines[-4].endswith("</SBXX>")
    assert lines[-3].startswith("    <SBCL>") and lines[-1] == "</EXCHANGE>"


@pytest.mark.parametrize(("draft", "message"), [
    (("NOPE", {}), "unknown element"),
    (record("SBXX", BZ="x"), "has no field"),
    (record("SBXX", SQRMC=None), "lacks required"),
    (record("SBXX", SQRMC=""), "lacks required"),
])
def test_the_default_path_refuses_structurally_invalid_records(
    draft: tuple[str, dict[str, str]], message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        document_bytes(HEAD, [draft])


def test_the_head_is_checked_too() -> None:
    with pytest.raises(ValueError, match="no field"):
        document_bytes({**HEAD, "SENDER": "x"}, [])
    with pytest.raises(ValueError, match="lacks required"):
        document_bytes({"XZQHDM": "430102"}, [])


def test_write_unchecked_emits_defects_where_it_says() -> None:
    buffer = io.BytesIO()
    element, fields = record("SBXX")
    with DocumentWriter(buffer, HEAD) as writer:
        extra = writer.write_unchecked(element, [*fields.items(), ("BZ", "备注")])
        missing = writer.write_unchecked(element, [(k, v) for k, v in fields.items()
                                                   if k != "SBSJ"])
    _, checks = read(buffer.getvalue())
    assert issues(checks) == {
        (extra.field_lines["BZ"], "SBXX", "BZ", "unexpected-field"),
        (missing.line, "SBXX", "SBSJ", "missing-field"),
    }


def test_a_path_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    with DocumentWriter(target, HEAD, encoding="UTF-16") as writer:
        writer.write(record("JGXX"))
        assert not target.exists() and (tmp_path / "out.xml.part").exists()
    reader, _ = read(target)
    assert reader.valid == 1 and list(tmp_path.iterdir()) == [target]


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    with pytest.raises(ValueError), DocumentWriter(target, HEAD) as writer:
        writer.write(record("JGXX"))
        writer.write(("NOPE", {}))
    assert list(tmp_path.iterdir()) == []


def test_the_writer_must_be_entered() -> None:
    writer = DocumentWriter(io.BytesIO(), HEAD)
    with pytest.raises(RuntimeError, match="context manager"):
        writer.write(record("JGXX"))


def test_characters_the_encoding_lacks_become_character_references() -> None:
    data = document_bytes(HEAD, [record("SBXX", SQRMC="𠀀王€")], encoding="GBK")
    assert b"&#131072;" in data
    _, checks = read(data)
    assert checks[0].record is not None and checks[0].record.fields["SQRMC"] == "𠀀王€"


@pytest.mark.parametrize("layout", list(Layout))
def test_the_utf8_template_writes_what_lxml_writes(layout: Layout) -> None:
    odd = "a&b<c>d\"e'f\r\n\tg\u3000\u2028\U0001f600 ]]> &amp;"
    records = [record(code) for code in VALID]
    records += [record("JGXX", JGMC=odd), record("SXXX", SFYJ=" 两端空格 ", SXMC="x\ny")]
    head = {"XZQHDM": "430102", "TYSHXYDM": ORG, "CREATED": T, "BATCHID": "B&1<2>"}
    buffer = io.BytesIO()
    with DocumentWriter(buffer, head, layout=layout) as writer:
        writer.write_many(records)
    assert document_bytes(head, records, layout=layout) == buffer.getvalue()
    empty = io.BytesIO()
    with DocumentWriter(empty, head, layout=layout):
        pass
    assert document_bytes(head, [], layout=layout) == empty.getvalue()


@pytest.mark.parametrize("layout", list(Layout))
def test_a_record_s_shape_template_writes_what_lxml_writes(layout: Layout) -> None:
    """``record_xml`` fills a template per shape (element, field names, layout): every
    shape, seen once or again, with values it cannot take as they are, is still written
    as lxml writes it."""
    full = record("BJ")[1]
    shapes = [full, dict(reversed(full.items())), {k: v for k, v in full.items() if k != "ZJMC"},
              full | {"ZJMC": ""}, full | {"ZJMC": None}, full | {"ZJMC": "a<b&c"},
              full | {"ZJMC": "%s %(x)s %%"}, full | {"SJBBH": 7}, full | {"ZJMC": 0}]
    records = [Record("BJ", shape, ("k",), 1) for shape in shapes]
    records += [("BJ", shape) for shape in shapes]
    head = {"XZQHDM": "430102", "TYSHXYDM": ORG, "CREATED": T}
    for _ in range(2):
        buffer = io.BytesIO()
        with DocumentWriter(buffer, head, layout=layout) as writer:
            writer.write_many(records)
        assert document_bytes(head, records, layout=layout) == buffer.getvalue()


def test_the_utf8_template_refuses_what_lxml_refuses() -> None:
    with pytest.raises(ValueError, match="XML compatible"):
        document_bytes({"XZQHDM": "430102", "TYSHXYDM": ORG}, [record("JGXX", JGMC="a\x01")])
    with pytest.raises(ValueError, match="lacks required"):
        document_bytes({"XZQHDM": "430102", "TYSHXYDM": ORG}, [record("JGXX", JGMC=None)])
    with pytest.raises(ValueError, match="no field"):
        document_bytes({"XZQHDM": "430102", "TYSHXYDM": ORG}, [record("JGXX", OTHER="1")])


def test_a_layout_given_as_its_string_first_leaves_the_indented_template_alone() -> None:
    # "indented" equals Layout.INDENTED and hashes alike; the template cache once served
    # the compact one it had built for the string to the member.
    bj = Record("BJ", record("BJ")[1], ("k",), 1)
    record_xml(bj, "indented")  # type: ignore[arg-type]
    assert "\n      <" in record_xml(bj, Layout.INDENTED)
    assert "\n      <" not in record_xml(bj, Layout.COMPACT)

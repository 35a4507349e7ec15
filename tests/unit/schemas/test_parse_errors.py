"""A document that stops being XML, or text, reports where it stops, and every record
before that point still counts, whatever the file's size or encoding.

GB2312 and GBK documents are read as GB18030: legacy systems label GBK text GB2312,
and GB18030 reads every valid GB2312 and GBK sequence the same (see ``GBK_LABELS``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.audit import validate_file
from schemas.columns import locate_doctype, locate_undecodable
from schemas.parse_errors import parser_encoding
from schemas.reader import DocumentReader
from tests.unit.schemas.documents import document, record

GOOD = [record("SBXX", SBLSH=f"SB{n:04d}") for n in range(10)]  # records on lines 5..14
BROKEN_AT = 15  # the line after them


def _read(source: bytes) -> DocumentReader:
    doc = DocumentReader(source, "doc.xml")
    list(doc)
    return doc


def _broken(encoding: str, bad: bytes, records: int = len(GOOD)) -> bytes:
    """``records`` good records, then line 15: a record whose name holds ``bad``."""
    many = [record("SBXX", SBLSH=f"SB{n:04d}") for n in range(records)]
    text = document([*many, record("SBXX", SQRMC="@@")], encoding=encoding)
    return text.replace(b"@@", bad)


@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030"])
@pytest.mark.parametrize("size", ["small", "big"])
def test_records_before_a_syntax_error_count_in_files_of_any_size(
    encoding: str, size: str
) -> None:
    records = len(GOOD) if size == "small" else 400  # 4 KB or 150 KB: one prolog read or more
    source = _broken(encoding, "张三</SQRMCX>".encode(encoding), records)
    doc = _read(source)
    (issue,) = doc.issues
    assert (issue.code, issue.line) == ("malformed-xml", 5 + records)
    assert (doc.records, doc.valid, doc.fatal) == (records, records, True)


def test_an_error_just_after_the_root_start_tag_is_reported_in_its_place() -> None:
    source = document(GOOD).replace(b"<HEAD>", b"<HEAD x=>", 1)
    doc = _read(source)
    assert [(i.code, i.line) for i in doc.issues] == [("malformed-xml", 3)]


@pytest.mark.parametrize("declared", ["GB2312", "gb2312", "GBK", "CP936", "GB18030"])
def test_gbk_text_labelled_gb2312_or_gbk_is_read(declared: str) -> None:
    names = ["王喆", "李堃", "朱镕基", "欧阳𠀀娜", "阿卜杜·热合曼"]
    body = [record("SBXX", SBLSH=f"SB{n}", SQRMC=name) for n, name in enumerate(names)]
    source = document(body, encoding="GB18030").replace(b'"GB18030"', f'"{declared}"'.encode())
    doc = DocumentReader(source, "gb.xml")
    checks = list(doc)
    assert (doc.issues, doc.records, doc.valid) == ([], 5, 5)
    assert [c.record.fields["SQRMC"] for c in checks if c.record] == names


def test_gb2312_middle_dot_is_read_as_windows_and_gb18030_read_it() -> None:
    source = document([record("SBXX", SQRMC="张三")], encoding="GB2312")
    source = source.replace("张三".encode("gb2312"), b"\xa1\xa4\xa1\xaa")
    (check,) = list(DocumentReader(source, "dot.xml"))
    assert check.record is not None and check.record.fields["SQRMC"] == "\u00b7\u2014"


@pytest.mark.parametrize(
    ("encoding", "bad", "shown"),
    [
        ("UTF-8", b"\xff", "0xFF"),
        ("GB18030", b"\x81\x20", "0x81"),
        ("GB2312", b"\x81\x20", "0x81"),
        ("GB18030", b"\xfe\x39\xfe\x39", "0xFE"),  # four bytes past U+10FFFF
    ],
)
@pytest.mark.parametrize("size", ["small", "big"])
def test_undecodable_bytes_are_reported_where_they_are_after_the_records_before(
    tmp_path: Path, encoding: str, bad: bytes, shown: str, size: str
) -> None:
    records = len(GOOD) if size == "small" else 400
    codec = "utf-8" if encoding == "UTF-8" else "gb18030"
    source = _broken(encoding, "张".encode(codec) + bad, records)
    line = source.split(b"\n")[4 + records]
    column = len(line[: line.index(bad)].decode(codec)) + 1
    doc = _read(source)
    (issue,) = doc.issues
    assert (issue.code, issue.message_id) == ("encoding-error", "undecodable-bytes")
    assert (issue.line, issue.column) == (5 + records, column)
    assert issue.args["data"] == shown and shown in issue.message("en")
    assert (doc.records, doc.valid) == (records, records)
    path = tmp_path / "bad.xml"
    path.write_bytes(source)
    assert validate_file(path).issues == (issue.located(file=str(path)),)


def test_a_document_that_decodes_has_no_undecodable_spot() -> None:
    assert locate_undecodable(document(GOOD, encoding="GB18030"), "GB2312") is None


def test_the_parser_is_told_gb18030_only_for_gbk_labels_without_a_byte_order_mark() -> None:
    declaration = b'<?xml version="1.0" encoding="%s"?>'
    assert parser_encoding(declaration % b"GB2312") == "GB18030"
    assert parser_encoding(declaration % b"x-gbk") == "GB18030"
    assert parser_encoding(declaration % b"GB18030") is None
    assert parser_encoding(declaration % b"UTF-8") is None
    assert parser_encoding(b"\xef\xbb\xbf" + declaration % b"GBK") is None


DECLARATION = {"UTF-8": 38, "UTF-16": 39, "GB2312": 39}  # its width in document()


@pytest.mark.parametrize(
    ("prolog", "line", "column"),
    [
        ("\n<!DOCTYPE EXCHANGE>", 2, 1),
        ("\n<!-- <!DOCTYPE no> -->\n<?pi x?>\n  <!DOCTYPE EXCHANGE [<!ENTITY a 'b'>]>", 4, 3),
        (' <!DOCTYPE EXCHANGE SYSTEM "file:///etc/passwd">', 1, None),  # after the declaration
    ],
)
@pytest.mark.parametrize("encoding", list(DECLARATION))
def test_a_doctype_is_reported_on_its_own_line(
    prolog: str, line: int, column: int | None, encoding: str
) -> None:
    declaration, rest = document(GOOD, encoding=encoding).decode(encoding).split("\n", 1)
    assert len(declaration.lstrip("\ufeff")) == DECLARATION[encoding]
    source = f"{declaration}{prolog}\n{rest}".encode(encoding)
    doc = _read(source)
    expected = column or DECLARATION[encoding] + 2
    assert [(i.code, i.line, i.column) for i in doc.issues] == [("forbidden-dtd", line, expected)]
    assert doc.records == 0


def test_a_doctype_past_the_searched_prolog_is_reported_without_a_place() -> None:
    declaration, rest = document(GOOD).split(b"\n", 1)
    comment = b"<!--" + b" " * (1 << 20) + b"-->"
    source = declaration + comment + b"<!DOCTYPE EXCHANGE>\n" + rest
    assert locate_doctype(source, "UTF-8") is None
    doc = _read(source)
    assert [(i.code, i.line, i.column) for i in doc.issues] == [("forbidden-dtd", None, None)]

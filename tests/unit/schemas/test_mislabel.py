"""A document that declares a legacy encoding but is written in UTF-8 is stopped whole."""

from __future__ import annotations

import codecs

import pytest

from schemas.reader import DocumentReader
from schemas.reader_mislabel import Mislabel, utf8_under_legacy_label
from tests.unit.schemas.documents import document, record


def _relabelled(data: bytes, encoding: str) -> bytes:
    return data.replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode(), 1)


@pytest.mark.parametrize("encoding", ["GBK", "gb2312", "x-gbk", "windows-936", "GB18030",
                                      "ISO-8859-1", "Big5"])
def test_utf8_under_a_legacy_label_stops_the_file_before_any_record(encoding: str) -> None:
    # Read as GB18030, such bytes mostly decode: the records passed with garbled names.
    data = _relabelled(document([record("SBXX", SQRMC="张三"), record("SBXX")]), encoding)
    reader = DocumentReader(data, "mis.xml")
    assert list(reader) == []
    [issue] = reader.issues
    assert (issue.code, issue.file, issue.line) == ("encoding-error", "mis.xml", 5)
    said = issue.message("en")
    assert said.startswith(f"the file declares the encoding {encoding} but its bytes are "
                           'UTF-8 (read as UTF-8: "张三")')
    assert 'declare encoding="UTF-8"' in said
    assert f"文件声明的编码是 {encoding}，但其字节是 UTF-8" in issue.message("zh")


def test_a_legacy_document_is_read_as_declared_even_where_a_character_is_valid_utf8() -> None:
    # "省" is CA A1 in GBK: a valid UTF-8 sequence, but of no Chinese ideograph.
    data = document([record("SBXX", SQRMC="省")], encoding="GBK")
    assert data.decode("utf-8")  # the whole file is valid UTF-8
    reader = DocumentReader(data, "gbk.xml")
    [check] = list(reader)
    assert reader.issues == [] and check.record is not None
    assert check.record.fields["SQRMC"] == "省"


@pytest.mark.parametrize("encoding", ["UTF-8", "utf-16", "UTF-32", "no-such-encoding"])
def test_a_unicode_or_unknown_label_is_never_a_mislabel(encoding: str) -> None:
    data = f'<?xml version="1.0" encoding="{encoding}"?>\n<A>中文</A>'.encode()
    assert utf8_under_legacy_label(data, data) is None


def test_a_utf8_byte_order_mark_outweighs_a_legacy_label() -> None:
    """The parser reads such a file as UTF-8, correctly: nothing to stop."""
    data = codecs.BOM_UTF8 + _relabelled(document([record("SBXX", SQRMC="张三")]), "GBK")
    reader = DocumentReader(data, "bom.xml")
    [check] = list(reader)
    assert reader.issues == [] and check.record is not None
    assert check.record.fields["SQRMC"] == "张三"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_the_line_is_counted_as_the_parser_counts_it(newline: str) -> None:
    data = newline.join(['<?xml version="1.0" encoding="GBK"?>', "<A>", "", "<B>张三</B>"])
    assert utf8_under_legacy_label(data.encode(), data.encode()) == Mislabel(4, "张三", "GBK")


@pytest.mark.parametrize("split", [1, 2])
def test_the_line_counts_across_chunks_and_a_character_split_between_two(split: int) -> None:
    """The first ideograph lies past the first 64 KiB, its bytes on both sides of it."""
    declaration = b'<?xml version="1.0" encoding="GBK"?>\n'
    lines = b"<!-- x -->\n" * 5000
    pad = (1 << 16) - split - len(declaration) - len(lines) - len(b"<!---->\n<A>")
    data = (declaration + lines + b"<!--" + b"x" * pad + b"-->\n<A>" + "湘江新区</A>\n".encode())
    assert data[(1 << 16) - split:].startswith("湘".encode())
    assert utf8_under_legacy_label(data, data) == Mislabel(5003, "湘江新区", "GBK")


def test_a_stray_byte_anywhere_means_it_is_not_utf8() -> None:
    data = b'<?xml version="1.0" encoding="GBK"?>\n<A>\xe6\xb9\x98</A>\n<B>\xff</B>'
    assert utf8_under_legacy_label(data, data) is None
    cut = data[:-5] + b"\xe6"  # ends in the middle of a character
    assert utf8_under_legacy_label(cut, cut) is None


def test_a_crlf_cut_between_two_chunks_is_one_line_break() -> None:
    declaration = b'<?xml version="1.0" encoding="GBK"?>\r\n'
    pad = (1 << 16) - 1 - len(declaration) - len(b"<!---->")
    data = declaration + b"<!--" + b"x" * pad + b"-->\r\n<A>" + "张三</A>".encode()
    assert data[:1 << 16].endswith(b"\r") and data[1 << 16:].startswith(b"\n")
    assert utf8_under_legacy_label(data, data) == Mislabel(3, "张三", "GBK")

"""A document that declares a legacy encoding but is written in UTF-8 is stopped whole."""

from __future__ import annotations

import pytest

from schemas.reader import DocumentReader
from schemas.reader_mislabel import Mislabel, utf8_under_legacy_label
from tests.unit.schemas.documents import document, record


def _relabelled(data: bytes, encoding: str) -> bytes:
    return data.replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode(), 1)


@pytest.mark.parametrize("encoding", ["GBK", "gb2312", "GB18030", "ISO-8859-1", "Big5"])
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


@pytest.mark.parametrize("encoding", ["UTF-8", "utf-16", "UTF-32"])
def test_a_unicode_label_is_never_a_mislabel(encoding: str) -> None:
    assert utf8_under_legacy_label("中文".encode(), encoding) is None


@pytest.mark.parametrize("split", [1, 2])
def test_the_line_counts_across_chunks_and_a_character_split_between_two(split: int) -> None:
    """The first ideograph lies past the first 64 KiB, its bytes on both sides of it."""
    declaration = b'<?xml version="1.0" encoding="GBK"?>\n'
    lines = b"<!-- x -->\n" * 5000
    pad = (1 << 16) - split - len(declaration) - len(lines) - len(b"<!---->\n<A>")
    data = (declaration + lines + b"<!--" + b"x" * pad + b"-->\n<A>" + "湘江新区</A>\n".encode())
    assert data[(1 << 16) - split:].startswith("湘".encode())
    assert utf8_under_legacy_label(data, "GBK") == Mislabel(5003, "湘江新区")


def test_a_stray_byte_anywhere_means_it_is_not_utf8() -> None:
    data = b'<?xml version="1.0" encoding="GBK"?>\n<A>\xe6\xb9\x98</A>\n<B>\xff</B>'
    assert utf8_under_legacy_label(data, "GBK") is None
    assert utf8_under_legacy_label(data[:-5] + b"\xe6", "GBK") is None  # cut mid-character

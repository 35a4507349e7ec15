"""The scanner's promise: a document reads the same with it as with lxml alone.

Every document here is read twice, once as the reader normally does (plain records
proven from the text, the rest fed to lxml) and once with the scanner switched off
(lxml parses everything), at several buffer sizes. Records, their issues with line
and column, the file's issues and its counts must all be equal, and for the documents
written plainly the fast path must really have been taken.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import astuple
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import body_scan, reader
from schemas.parse_errors import PROLOG_BYTES, declared_encoding
from schemas.reader import DocumentReader, Limits
from schemas.samples import generate
from schemas.times import BEIJING
from schemas.writer import Layout
from tests.unit.schemas.documents import document, record

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=BEIJING)
_VALID = [record(code) for code in ("JGXX", "SXXX", "SBXX", "SBCL", "SL", "TBCXJG", "BJ", "SF")]


def _outcome(source: bytes, limits: Limits | None = None) -> tuple[Any, ...]:
    doc = DocumentReader(source, "doc.xml", limits=limits or Limits(), now=NOW)
    checks = [
        (c.element, c.line, c.record and astuple(c.record), [astuple(i) for i in c.issues])
        for c in doc
    ]
    head = doc.head and astuple(doc.head)
    return checks, [astuple(i) for i in doc.issues], doc.records, doc.valid, doc.fatal, head


@pytest.fixture(params=[7, 300, 1 << 20], ids=["chunk7", "chunk300", "chunk1M"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(body_scan, "_CHUNK", request.param)
    return int(request.param)


class _Counted:
    """Counts the records lxml checked: zero means the scanner proved them all."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.by_lxml = 0
        check_record = reader.check_record  # type: ignore[attr-defined]

        def counted(*args: Any) -> Any:
            self.by_lxml += 1
            return check_record(*args)

        monkeypatch.setattr("schemas.reader.check_record", counted)


def _same_either_way(
    source: bytes, monkeypatch: pytest.MonkeyPatch, limits: Limits | None = None
) -> tuple[tuple[Any, ...], int]:
    """Both outcomes, asserted equal; returns it and how many records lxml checked."""
    counted = _Counted(monkeypatch)
    scanned = _outcome(source, limits)
    by_lxml = counted.by_lxml
    with monkeypatch.context() as off:
        off.setattr(body_scan, "plain_utf8", lambda _prolog: False)
        # Whole chunks: lxml alone attributes a record's stray tail to the record only
        # when the tail arrived with it.
        off.setattr(body_scan, "_CHUNK", 1 << 20)
        alone = _outcome(source, limits)
    assert scanned == alone
    return scanned, by_lxml


def _lines(*records: tuple[str, dict[str, str]], extra: str = "") -> str:
    return document(records, extra_body=extra).decode()


# -- documents the fast path proves whole ---------------------------------------------------


def test_a_plain_document_is_proven_without_lxml(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, by_lxml = _same_either_way(_lines(*_VALID).encode(), monkeypatch)
    assert by_lxml == 0
    checks, issues, records, valid, fatal, _ = outcome
    assert (records, valid, fatal, issues) == (len(_VALID), len(_VALID), False, [])
    assert [c[1] for c in checks] == list(range(5, 5 + len(_VALID)))


@pytest.mark.parametrize("layout", list(Layout))
def test_generated_files_with_defects_read_the_same(
    layout: Layout, tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = generate(tmp_path / layout.name, cases=60, invalid_rate=0.15, layout=layout)
    source = samples.files[0].path.read_bytes()
    (checks, *_), by_lxml = _same_either_way(source, monkeypatch)
    refused = sum(1 for c in checks if c[2] is None)
    assert refused > 10  # defects of every kind were in the file
    assert by_lxml < len(checks) / 2  # and the plain records around them were proven


@pytest.mark.parametrize("newline", ["\r\n", "\r", ""], ids=["crlf", "cr", "minified"])
def test_other_line_ends_read_the_same(
    newline: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = record("SBXX", SQRZJHM="110105194912310021")  # a check digit the rules refuse
    text = _lines(*_VALID, bad, *_VALID).replace("\n", newline)
    (checks, *_), by_lxml = _same_either_way(text.encode(), monkeypatch)
    assert by_lxml == 0
    assert [i[0] for c in checks for i in c[3]] == ["bad-check-digit"]


def test_a_byte_order_mark_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _, by_lxml = _same_either_way(b"\xef\xbb\xbf" + _lines(*_VALID).encode(), monkeypatch)
    assert by_lxml == 0


@pytest.mark.parametrize("name", ["A]B", "A]]B", "A]>B", "A] ]>B", "]]"])
def test_brackets_short_of_a_cdata_end_are_proven(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "]" is looked for first, "]]>" (lxml's to refuse) only then: a value with
    brackets but no "]]>" is still the scanner's."""
    text = _lines(*_VALID, record("JGXX", JGMC=name), *_VALID)
    _, by_lxml = _same_either_way(text.encode(), monkeypatch)
    assert by_lxml == 0


# -- what the scanner must leave to lxml ----------------------------------------------------

_BETWEEN = {
    "comment": "<!-- a note -->",
    "comment-hiding-a-record": "<!-- " + _lines(record("JGXX")).split("\n")[4] + " -->",
    "cdata-hiding-a-record": "<![CDATA[<JGXX></JGXX>]]>",
    "processing-instruction": "<?exgate note?>",
    "stray-text": "stray words",
    "unknown-element": "<FOO><BAR>1</BAR></FOO>",
    "attribute": '<JGXX id="1"><XZQHDM>430102</XZQHDM></JGXX>',
    "prefixed": f'<x:JGXX xmlns:x="{"urn:exgate:exchange:1"}"/>',
    "other-namespace": '<JGXX xmlns="urn:other"><JGMC>x</JGMC></JGXX>',
    "nested-record": "<SF>" + _lines(record("JGXX")).split("\n")[4] + "</SF>",
    "entity": _lines(record("JGXX", JGMC="A&amp;B")).split("\n")[4],
    "character-reference": _lines(record("JGXX", JGMC="A&#20013;B")).split("\n")[4],
    "cdata-value": _lines(record("JGXX", JGMC="<![CDATA[A]]>")).split("\n")[4],
    "cdata-end-in-value": _lines(record("JGXX", JGMC="A]]>B")).split("\n")[4],
    "control-character": _lines(record("JGXX", JGMC="A\x01B")).split("\n")[4],
    "carriage-return-in-value": _lines(record("JGXX", JGMC="A\rB")).split("\n")[4],
    "fields-out-of-order": "<JGXX><JGMC>局</JGMC><XZQHDM>430102</XZQHDM></JGXX>",
    "missing-field": _lines(record("JGXX", GXSJ=None)).split("\n")[4],
    "bad-value": _lines(record("JGXX", XZQHDM="43010")).split("\n")[4],
    "mismatched-tag": "<JGXX><JGMC>x</JGMD></JGXX>",
    "unclosed-record": "<JGXX><JGMC>x</JGMC>",
    "self-closed-record": "<JGXX/>",
    "second-body": "</BODY><BODY>",
}


@pytest.mark.parametrize("between", list(_BETWEEN), ids=list(_BETWEEN))
def test_anything_unusual_between_records_reads_the_same(
    between: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _lines(*_VALID).replace("</SBXX>\n", f"</SBXX>\n{_BETWEEN[between]}\n", 1)
    _same_either_way(text.encode(), monkeypatch)


@pytest.mark.parametrize("between", ["stray-text", "mismatched-tag", "unclosed-record"])
def test_minified_documents_keep_their_columns(
    between: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first 64 KiB (the prolog pass reports errors before that), on one line
    with multi-byte text: lxml counts columns in characters, and so must the stand-ins."""
    many = [record("JGXX", JGMC="芙蓉区行政审批服务局")] * 400 + list(_VALID)
    text = _lines(*many).replace("</SBXX>\n", f"</SBXX>{_BETWEEN[between]}", 1)
    source = text.replace("\n", "").encode()
    assert source.index(b"</SBXX>") > 65536
    (_, issues, *_), _ = _same_either_way(source, monkeypatch)
    assert issues and all(i[6] == 1 and i[7] is not None for i in issues if i[1] != "stray-text")


# Found by differential fuzzing: each read differently before it was fixed.
_P = _lines().split("<BODY>")[0].encode()
_F = (b"<XZQHDM>430102</XZQHDM><TYSHXYDM>12451422MB0173307F</TYSHXYDM><SJBBH>1</SJBBH>"
      b"<GXSJ>2026-11-20 09:58:01</GXSJ>")
_GOOD = b"<JGXX>" + _F + b"<JGMC>A</JGMC></JGXX>"
_BAD = _GOOD.replace(b"430102", b"43010", 1)  # the XSD refuses it: lxml checks it
_END = b"\n</BODY>\n</EXCHANGE>\n"
_FOUND = {
    # records lxml parsed before a syntax error were lost with the feed that raised
    "records-before-a-syntax-error": _P + b"<BODY>" + b" " * 65536 + _GOOD + b"\n<X></Y>" + _END,
    # an end tag lxml gives no event for (another namespace) looked like record level
    "end-tag-in-another-namespace": _P + b"<BODY>\n" + _BAD + b'\n<JGXX xmlns="u"></JGXX>\n'
    + _GOOD + _END,
    "record-nested-after-one": _P + b"<BODY>\n" + _BAD + b'\n<FOO><JGXX xmlns="u"></JGXX>\n'
    + _GOOD + b"</FOO>" + _END,
    # lxml stops emitting events at an undeclared entity, without raising at once
    "undeclared-entity": _P + b"<BODY>\n" + _BAD + b"&foo;\n" + _GOOD + b"\n"
    + _GOOD.replace(b">A<", b">B<") + _END,
    # the tail of an lxml record cut in two by a feed (an end tag inside CDATA)
    "tail-across-feeds": _P + b"<BODY>\n" + _BAD + b"<![CDATA[</JGXX>\n<]]>\n" + _GOOD + _END,
    # an encoding declared with spaces around '=': not UTF-8, so not scanned
    "spaced-encoding-declaration": (_P + b"<BODY>\n" + _GOOD.replace(b">A<", "中".join("><").encode())
                                    + _END).replace(b'encoding="UTF-8"', b'encoding = "ISO-8859-1"'),
}


@pytest.mark.parametrize("found", list(_FOUND), ids=list(_FOUND))
def test_documents_found_by_fuzzing_read_the_same(
    found: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_either_way(_FOUND[found], monkeypatch)


def test_records_before_a_syntax_error_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    (checks, issues, *_), _ = _same_either_way(_FOUND["records-before-a-syntax-error"],
                                               monkeypatch)
    assert [c[2] is not None for c in checks] == [True]
    assert [i[1] for i in issues] == ["malformed-xml"]


def test_records_after_lxml_took_over_are_proven_again(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = _lines(record("JGXX", XZQHDM="43010")).split("\n")[4]
    text = _lines(*_VALID, *_VALID).replace("</SBXX>\n", f"</SBXX>\n{bad}\n", 1)
    (checks, *_), by_lxml = _same_either_way(text.encode(), monkeypatch)
    assert by_lxml == 1  # only the bad record
    assert sum(1 for c in checks if c[2] is not None) == 2 * len(_VALID)


def test_after_a_comment_in_the_body_lxml_reads_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _lines(*_VALID, *_VALID).replace("</SBXX>\n", "</SBXX>\n<!-- x -->\n", 1)
    _, by_lxml = _same_either_way(text.encode(), monkeypatch)
    assert by_lxml == 2 * len(_VALID) - 2  # the third record, before the comment, and on


@pytest.mark.parametrize(
    "prolog",
    [
        "<!-- <BODY> -->",  # a BODY start tag inside a comment
        "<!-- a generated file -->",
        '<?xml-stylesheet href="x"?>',
    ],
)
def test_the_body_start_is_found_only_outside_markup(
    prolog: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _lines(*_VALID).replace("<HEAD>", f"{prolog}<HEAD>", 1)
    _same_either_way(text.encode(), monkeypatch)


@pytest.mark.parametrize(
    "change",
    [
        ("<BODY>", '<BODY id="1">'),  # not the plain start tag: lxml reads it all
        ("<BODY>", "<BODY><!-- <BODY> -->"),
        ('<EXCHANGE xmlns="urn:exgate:exchange:1"', '<x:EXCHANGE xmlns:x="urn:exgate:exchange:1"'),
        ("</HEAD>\n<BODY>", "</HEAD>"),  # no BODY
    ],
)
def test_unusual_envelopes_read_the_same(
    change: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _lines(*_VALID).replace(*change, 1)
    if change[1].startswith("<x:"):
        text = text.replace("</EXCHANGE>", "</x:EXCHANGE>")
    _same_either_way(text.encode(), monkeypatch)


def test_a_head_after_the_body_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _lines(*_VALID)
    head = text[text.index("<HEAD>"):text.index("</HEAD>") + 7]
    moved = text.replace(head, "", 1).replace("</BODY>", f"</BODY>{head}", 1)
    _same_either_way(moved.encode(), monkeypatch)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_documents_read_the_same(
    cut: float, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _lines(*_VALID, *_VALID).encode()
    (_, issues, *_), _ = _same_either_way(source[: int(len(source) * cut)], monkeypatch)
    assert [i[0] for i in issues] == ["malformed-xml"]


@pytest.mark.parametrize("where", ["first", "last"])
def test_bytes_that_are_not_utf8_are_found_by_lxml(
    where: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _lines(*_VALID, *_VALID).encode()
    at = (source.index if where == "first" else source.rindex)(b"<SFRXM>") + 7
    (_, issues, *_), _ = _same_either_way(source[:at] + b"\xff\xfe" + source[at:], monkeypatch)
    assert [i[0] for i in issues] == ["encoding-error"]


def test_other_encodings_are_left_to_lxml(monkeypatch: pytest.MonkeyPatch) -> None:
    source = document(_VALID, encoding="GB18030")
    (_, issues, records, valid, *_), by_lxml = _same_either_way(source, monkeypatch)
    assert (issues, records, valid, by_lxml) == ([], len(_VALID), len(_VALID), len(_VALID))


def test_duplicates_and_count_are_judged_across_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    changed = record("JGXX", JGMC="另一个局")  # same key and version, other content
    odd = "<JGXX><JGMC>x</JGMC><XZQHDM>430102</XZQHDM></JGXX>"
    text = _lines(*_VALID, changed, *_VALID, extra=odd).replace("<HEAD>", "<HEAD><COUNT>3</COUNT>")
    (checks, issues, *_), _ = _same_either_way(text.encode(), monkeypatch)
    assert "duplicate-record" in [i[1] for c in checks for i in c[3]]
    assert "count-mismatch" in [i[1] for i in issues]


def test_the_text_limit_holds_for_proven_records_the_rules_refuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long_name = record("SBXX", SQRMC="张" * 40, SQRZJHM="110105194912310021")
    source = _lines(*_VALID, long_name, *_VALID).encode()
    (checks, issues, records, valid, *_), _ = _same_either_way(
        source, monkeypatch, Limits(max_text_bytes=30)
    )
    refused = [c for c in checks if c[2] is None]
    assert [(i[1], i[3], i[4]) for c in refused for i in c[3]] == [
        ("record-text-too-large", "SBXX", "SQRMC")
    ]
    assert (issues, records, valid) == ([], 2 * len(_VALID) + 1, 2 * len(_VALID))


def test_records_longer_than_the_scan_window_go_to_lxml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_scan, "_LONGEST_RECORD", 64)
    _, by_lxml = _same_either_way(_lines(*_VALID).encode(), monkeypatch)
    assert by_lxml == len(_VALID)


def _every_split(source: bytes) -> Iterator[int]:
    return itertools.islice(range(1, len(source)), 0, None, 37)


def test_no_chunk_boundary_changes_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk sizes that cut the document at every few bytes, multi-byte characters too."""
    bad = _lines(record("JGXX", XZQHDM="43010")).split("\n")[4]
    source = _lines(*_VALID, *_VALID).replace("</SF>\n", f"</SF>\n{bad}\n", 1).encode()
    for size in _every_split(source[:800]):
        monkeypatch.setattr(body_scan, "_CHUNK", size)
        _same_either_way(source, monkeypatch)


@pytest.mark.parametrize(
    ("prolog", "encoding", "plain"),
    [
        (b'<?xml version="1.0" encoding="UTF-8"?><R/>', "UTF-8", True),
        (b"\xef\xbb\xbf<?xml version='1.0'?>", "UTF-8", True),
        (b"<R/>", "UTF-8", True),
        (b'<?xml version = "1.0" encoding = "GBK" standalone="yes"?>', "GBK", False),
        (b'<?xml version="1.0" encoding="gb18030"?>', "gb18030", False),
        ("<R/>".encode("utf-16"), "UTF-16", False),
        (b"<\x00?\x00x\x00m\x00l\x00", "UTF-16LE", False),
        (b"\x00<\x00?\x00x\x00m\x00l", "UTF-16BE", False),
        (b"<\x00R\x00/\x00>\x00", None, False),  # UTF-16 without mark nor declaration: no XML
        ("<R/>".encode("utf-32"), "UTF-32", False),
        ("<?xml".encode("utf-32-be"), "UTF-32BE", False),
        ("<?xml".encode("utf-32-le"), "UTF-32LE", False),
        (b'<?xml version="1.0"' + b" " * 2000, None, False),  # cut off: unreadable
        (b'<?xml version="1.0" encoding="UTF-8"', None, False),
    ],
)
def test_the_declared_encoding_is_read_as_xml_spells_it(
    prolog: bytes, encoding: str | None, plain: bool
) -> None:
    assert declared_encoding(prolog[:PROLOG_BYTES]) == encoding
    assert body_scan.plain_utf8(prolog[:PROLOG_BYTES]) is plain

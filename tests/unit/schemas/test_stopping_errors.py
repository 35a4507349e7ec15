"""The errors that stop libxml2 (it halts its parser on each: nothing after one is ever
parsed) are named for what they are, for the clerk, and say from which line on no
record was checked, so that the file is fixed and dropped again.

A bare "&" in a value (the commonest slip: "长沙A&B汽车服务公司") was once reported as a
forbidden DTD; a record nested 300 deep, a 30 MB comment or a 20 MB attribute value as
"nested too deeply" with libxml2's advice to programmers ("use XML_PARSE_HUGE").
"""

from __future__ import annotations

import pytest

from schemas.reader import DocumentReader
from tests.unit.schemas.documents import document, record

BEFORE, AFTER = record("SBXX", SBLSH="SB1"), record("SBXX", SBLSH="SB3")


def _read(middle: str, *, encoding: str = "UTF-8") -> DocumentReader:
    """BEFORE on line 5, ``middle`` (raw XML) on line 6, AFTER on line 7."""
    text = document([BEFORE, ("JGXX", {}), AFTER], encoding=encoding).decode(encoding)
    doc = DocumentReader(text.replace("<JGXX></JGXX>", middle).encode(encoding), "doc.xml")
    list(doc)
    return doc


def _jgxx(name: str) -> str:
    _, fields = record("JGXX", JGMC=name)
    return "<JGXX>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</JGXX>"


@pytest.mark.parametrize("name", ["长沙A&B汽车服务公司", "A & B", "A&", "A&amp"])
@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030"])
def test_a_bare_ampersand_is_malformed_xml_in_its_field(name: str, encoding: str) -> None:
    doc = _read(_jgxx(name), encoding=encoding)
    (issue,) = doc.issues
    assert (issue.code, issue.message_id) == ("malformed-xml", "unescaped-ampersand")
    assert (issue.element, issue.field, issue.line) == ("JGXX", "JGMC", 6)
    assert issue.message("zh").startswith(
        f"值中的 & 未转义；请写作 &amp;。读取在第 6 行第 {issue.column} 列中止")
    assert issue.message("en").startswith("unescaped & in a value; write it as &amp;")
    assert (doc.records, doc.valid) == (1, 1)


@pytest.mark.parametrize("reference", ["&B;", "&nbsp;"])
def test_a_reference_to_an_undeclared_entity_is_still_forbidden(reference: str) -> None:
    doc = _read(_jgxx(f"A{reference}"))
    assert [(i.code, i.message_id) for i in doc.issues] == [("forbidden-dtd", "forbidden-dtd")]


def test_a_record_nested_too_deep_is_named_and_the_rest_said_unread() -> None:
    doc = _read("<JGXX>" + "<a>" * 300 + "</a>" * 300 + "</JGXX>")
    (issue,) = doc.issues
    assert (issue.code, issue.message_id, issue.element, issue.line) == (
        "malformed-xml", "too-deep", "JGXX", 6)
    assert issue.message("zh") == (
        f"元素嵌套超过 256 层（交换记录只有 4 层）。读取在第 6 行第 {issue.column} 列中止，该处的记录及其"
        "后的记录均未检查；请修正后重新投递整个文件（此前已接收的记录再次投递时按重复忽略）")
    assert (doc.records, doc.valid) == (1, 1)


@pytest.mark.parametrize(
    ("middle", "what"),
    [
        ("<!--" + "A" * 10_000_001 + "-->", "a comment"),
        ("<?pi " + "A" * 10_000_001 + "?>", "a processing instruction or CDATA section"),
        ('<JGXX a="' + "x" * 10_000_001 + '"/>', "a tag or attribute value"),
        ("<" + "A" * 60_000 + "/>", "an element or attribute name"),
    ],
    ids=["comment", "pi", "attribute", "name"],
)
def test_a_part_over_libxml2s_caps_is_named_without_a_programmers_hint(
    middle: str, what: str
) -> None:
    doc = _read(middle)
    stop = doc.issues[-1]
    # libxml2 notices an attribute value over its cap once its buffer holds the next line
    assert (stop.code, stop.message_id, stop.line) in {
        ("file-too-large", "too-large", 6), ("file-too-large", "too-large", 7)}
    english = stop.message("en")
    assert english.startswith(f"{what} is over the parser's cap of ")
    assert f"Reading stopped at line {stop.line}, column {stop.column}: " in english
    assert "XML_PARSE_HUGE" not in english + stop.message("zh")
    assert doc.records >= 1 and doc.fatal


def test_a_syntax_error_says_the_records_after_it_were_not_read() -> None:
    doc = _read(_jgxx("x").replace("</JGMC>", "</JGMCX>"))
    (issue,) = doc.issues
    assert (issue.code, issue.element, issue.field) == ("malformed-xml", None, None)
    assert f"Reading stopped at line 6, column {issue.column}: the record there and every " \
        "record after it were not checked" in issue.message("en")


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-le", "utf-32-be"])
def test_utf32_documents_are_read(codec: str) -> None:
    """``exgate samples --encoding UTF-32`` writes them; lxml reads them, told so for
    a byte order mark, which libxml2's push parser takes for UTF-16's."""
    text = document([BEFORE, AFTER]).decode().replace('"UTF-8"', '"UTF-32"')
    doc = DocumentReader(text.encode(codec), "wide.xml")
    checks = list(doc)
    assert (doc.issues, doc.records, doc.valid) == ([], 2, 2)
    assert [c.line for c in checks] == [5, 6]


def test_an_error_after_the_end_of_exchange_claims_no_record_unread() -> None:
    text = document([BEFORE, AFTER]).decode() + "<x/>"
    doc = DocumentReader(text.encode(), "doc.xml")
    list(doc)
    (issue,) = doc.issues
    assert issue.message("en") == (
        "the document is not well-formed XML: Extra content at the end of the document")
    assert (doc.records, doc.valid) == (2, 2)

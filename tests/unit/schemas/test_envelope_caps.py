"""Every source of issues counts toward the cap on issues per file, and what lies out of
place in the envelope is freed as it is parsed: a file of millions of stray elements or
attributes once held an issue (and an element) for each, gigabytes for an 8 MB file.

Sizes are modest; what is asserted is how many issues come back and how many elements
lxml held at once, never a time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.audit_verify import _validate
from schemas import audit, fast_check, reader, reader_prolog
from schemas.catalog import load_catalog
from schemas.issues import Issue
from schemas.reader import DocumentReader, Limits
from schemas.reader_prune import Pruner
from tests.unit.schemas.documents import document, record

GOOD = document([record("SBXX"), record("SL")]).decode()
ATTRIBUTES = " ".join(f'a{n}="1"' for n in range(5_000))


def _stray_sections(count: int) -> str:
    """``count`` elements after BODY, inside EXCHANGE."""
    return GOOD.replace("</EXCHANGE>", "<X/>" * count + "</EXCHANGE>")


def _validated(tmp_path: Path, text: str) -> audit.FileResult:
    path = tmp_path / "case.xml"
    path.write_text(text, "utf-8")
    return audit.validate_file(path)


def test_elements_out_of_place_in_exchange_are_capped_and_freed_as_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held: list[int] = []
    release = Pruner._release_sections

    def measured(self: Pruner, root: Any, *args: Any) -> None:
        held.append(len(root))
        release(self, root, *args)

    monkeypatch.setattr(Pruner, "_release_sections", measured)
    doc = DocumentReader(_stray_sections(100_000).encode(), "flood.xml")
    list(doc)
    *listed, more = doc.issues
    assert len(listed) == reader.MAX_FILE_ISSUES
    assert {(i.message_id, i.field) for i in listed} == {("misplaced-element", "X")}
    assert (more.message_id, more.args["count"]) == ("more-file-issues", 90_000)
    assert (doc.records, doc.valid) == (2, 2)
    # Once, all of them stayed in EXCHANGE to the end, each with its issue.
    assert held and max(held) <= 2 * reader.SLICE // len("<X/>")


@pytest.mark.parametrize("where", ["EXCHANGE", "HEAD", "BODY"])
def test_thousands_of_attributes_give_a_bounded_number_of_issues(where: str) -> None:
    text = {
        "EXCHANGE": GOOD.replace('version="1">', f'version="1" {ATTRIBUTES}>'),
        "HEAD": GOOD.replace("<HEAD>", f"<HEAD {ATTRIBUTES}>"),
        "BODY": GOOD.replace("<BODY>", f"<BODY {ATTRIBUTES}>"),
    }[where]
    doc = DocumentReader(text.encode(), "attributes.xml")
    list(doc)
    assert doc.valid == 2  # the records beside them still count
    named = [i for i in doc.issues if "attribute" in i.args]
    more = [i for i in doc.issues if i.message_id == "more-attributes"]
    assert len(named) == 10 and [i.args["count"] for i in more] == [4_990]
    assert more[0].message("zh") == f"{where} 另带 4990 个不允许的属性；请全部删除"
    assert "4990 more attributes" in more[0].message("en")


def test_the_cap_counts_envelope_and_record_issues_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "MAX_FILE_ISSUES", 5)
    bad = [record("SBXX", SBLSH=f"SB{n}", TJFS="7") for n in range(4)]  # one issue each
    text = document(bad).decode().replace("</EXCHANGE>", "<X/>" * 6 + "</EXCHANGE>")
    result = _validated(tmp_path, text)
    *listed, more = result.issues
    assert len(listed) == 5
    assert (more.message_id, more.args) == ("more-file-issues", {"count": 5, "shown": 5})


def test_the_issue_that_stops_a_file_is_listed_past_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "MAX_FILE_ISSUES", 5)
    # Enough for some to be judged as parsed (every 64 KiB), before the error.
    text = _stray_sections(30_000).replace("</EXCHANGE>", "<broken></EXCHANGE>")
    result = _validated(tmp_path, text)
    *listed, more = result.issues
    assert len(listed) == 5 and "malformed-xml" in [str(i.code) for i in listed]
    assert more.message_id == "more-file-issues"


def test_audit_verify_validates_with_the_same_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It once kept its own copy of validate_file, without any cap."""
    monkeypatch.setattr(audit, "MAX_FILE_ISSUES", 5)
    path = tmp_path / "export.xml"
    path.write_text(GOOD.replace("</BODY>", "<XX/>" * 50 + "</BODY>"), "utf-8")
    result, counts = _validate(path)
    assert len(result.issues) == 6 and result.issues[-1].args["count"] == 45
    assert counts == {"SBXX": 1, "SL": 1}  # elements that are no records are not counted


def test_the_reader_alone_lists_at_most_its_cap_then_one_closing_issue() -> None:
    doc = DocumentReader(_stray_sections(30).encode(), "x.xml", Limits(max_file_issues=10))
    list(doc)
    assert len(doc.issues) == 11 and doc.unlisted == 20
    assert doc.issues[-1] == Issue(doc.issues[0].code, "more-file-issues",
                                   {"count": 20, "shown": 10}, file="x.xml")


def test_the_issue_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_file_issues"):
        Limits(max_file_issues=0)


def test_a_record_with_thousands_of_attributes_names_ten_and_counts_the_rest() -> None:
    doc = DocumentReader(GOOD.replace("<SL>", f"<SL {ATTRIBUTES}>").encode(), "r.xml")
    (refused,) = [check for check in doc if not check.valid]
    assert [i.message_id for i in refused.issues] == ["unexpected-attribute"] * 10 + [
        "more-attributes"]
    assert refused.issues[-1].message("en") == (
        "SL carries 4990 more attributes it may not carry; remove them all")


class _CountingSchema:
    """The catalog's XSD, noting the most attributes of any element given to it."""

    def __init__(self, schema: Any):
        self._schema, self.most = schema, 0

    def validate(self, element: Any) -> bool:
        self.most = max([self.most, *(len(e.attrib) for e in element.iter())])
        return bool(self._schema.validate(element))

    @property
    def error_log(self) -> Any:
        return self._schema.error_log


def test_elements_with_thousands_of_attributes_never_reach_the_xsd_or_a_serializer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libxml2 logs an error per attribute, which lxml keeps (1 KB apiece), and the fast
    path serialized the record: a 12 MB start tag once took 1.5 GB."""
    counting = _CountingSchema(load_catalog().xml_schema)
    catalog = replace(load_catalog(), xml_schema=counting)
    monkeypatch.setattr(reader_prolog, "catalog_for_namespace", lambda _ns: catalog)
    serialized: list[int] = []
    tostring = fast_check.etree.tostring
    monkeypatch.setattr(fast_check.etree, "tostring",
                        lambda e, **kw: serialized.append(len(e.attrib)) or tostring(e, **kw))
    text = GOOD.replace("<HEAD>", f"<HEAD {ATTRIBUTES}>").replace("<SL>", f"<SL {ATTRIBUTES}>")
    text = text.replace("<XZQHDM>430102</XZQHDM>", f"<XZQHDM {ATTRIBUTES}>430102</XZQHDM>")
    doc = DocumentReader(text.encode(), "a.xml")
    checks = list(doc)
    assert [c.valid for c in checks] == [False, False]
    assert counting.most <= 1 and max(serialized, default=0) == 0

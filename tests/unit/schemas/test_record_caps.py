"""One record cannot take the reader down: past its caps it is refused whole, freed as it
is parsed, and the records beside it are still read.

Sizes are modest; what is asserted is the outcome and how much of an oversized record
lxml ever held at once, never a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from schemas import body_scan, reader, reader_prune
from schemas.reader import DocumentReader, Limits
from schemas.reader_prune import Pruner
from tests.unit.schemas.documents import document, record

JGXX_CAP = 4 * 6  # JGXX has 6 fields
BEFORE, AFTER = record("SBXX"), record("BJ")


def _document(middle: str, *, encoding: str = "UTF-8", head: str = "") -> bytes:
    """BEFORE, then ``middle`` (raw XML) on its own line 6, then AFTER on line 7."""
    lines = document([BEFORE, ("JGXX", {}), AFTER], encoding=encoding).decode(encoding)
    lines = lines.replace("<JGXX></JGXX>", middle).replace("</HEAD>", head + "</HEAD>")
    return lines.encode(encoding)


def _wide_jgxx(children: str, *, inside_field: bool = False) -> str:
    _, fields = record("JGXX")
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    if inside_field:
        return "<JGXX>" + body.replace("</JGMC>", children + "</JGMC>") + "</JGXX>"
    return "<JGXX>" + body + children + "</JGXX>"


class _Watch:
    """Counts the records lxml checked, and the most elements a refused record held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.checked: list[str] = []
        self.held = 0
        check_record = reader.check_record  # type: ignore[attr-defined]
        trim = reader_prune.trim  # type: ignore[attr-defined]

        def counted(element: Any, *args: Any) -> Any:
            self.checked.append(element.tag.rsplit("}", 1)[-1])
            return check_record(element, *args)

        def measured(element: Any) -> None:
            self.held = max(self.held, sum(1 for _ in element.iter()))
            trim(element)

        monkeypatch.setattr("schemas.reader.check_record", counted)
        monkeypatch.setattr("schemas.reader_prune.trim", measured)


def _read(source: bytes, limits: Limits | None = None) -> tuple[DocumentReader, list[Any]]:
    doc = DocumentReader(source, "caps.xml", limits=limits or Limits())
    return doc, list(doc)


def _issues(checks: list[Any]) -> list[tuple[str, str, str | None, str | None, int | None]]:
    return [(i.code, i.message_id, i.element, i.field, i.line) for c in checks for i in c.issues]


@pytest.fixture(params=[True, False], ids=["scanner", "lxml-alone"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not request.param:
        monkeypatch.setattr(body_scan, "plain_utf8", lambda _prolog: False)
    yield


@pytest.mark.parametrize("inside_field", [False, True], ids=["children", "grandchildren"])
def test_a_record_of_too_many_elements_is_refused_whole_and_freed(
    monkeypatch: pytest.MonkeyPatch, scanner: None, inside_field: bool
) -> None:
    watch = _Watch(monkeypatch)
    children = 100_000  # 400 KB of <X/>: parsed in some seven slices
    doc, checks = _read(_document(_wide_jgxx("<X/>" * children, inside_field=inside_field)))
    assert _issues(checks) == [
        ("file-too-large", "record-too-many-elements", "JGXX", None, 6)
    ]
    assert checks[1].issues[0].args["limit"] == JGXX_CAP
    assert (doc.records, doc.valid, doc.issues, doc.fatal) == (3, 2, [], False)
    assert [c.valid for c in checks] == [True, False, True]
    assert "JGXX" not in watch.checked  # no field of it was ever looked at
    # Freed slice by slice: lxml never held more than two slices' worth of it.
    assert 0 < watch.held <= 2 * reader.SLICE // len("<X/>")  # type: ignore[attr-defined]


def test_records_after_a_refused_one_read_exactly_as_without_it() -> None:
    def content(checks: Any) -> list[Any]:
        return [(c.record.element, c.record.fields) for c in checks if c.record is not None]

    plain = content(DocumentReader(document([BEFORE, AFTER]), "plain.xml"))
    _, checks = _read(_document(_wide_jgxx("<X>t</X>tail" * 20_000)))
    assert content(checks) == plain and len(plain) == 2


def test_a_few_elements_too_many_are_each_reported() -> None:
    _, checks = _read(_document(_wide_jgxx("<JGMC>again</JGMC><BZ>x</BZ>")))
    assert [i[1] for i in _issues(checks)] == ["repeated-field", "unexpected-field"]


def test_the_element_cap_is_exact_for_a_record_inside_one_slice() -> None:
    present = len(record("JGXX")[1])
    at_cap = _wide_jgxx("<X/>" * (JGXX_CAP - present))
    over = _wide_jgxx("<X/>" * (JGXX_CAP - present + 1))
    assert "record-too-many-elements" not in [i[1] for i in _issues(_read(_document(at_cap))[1])]
    assert [i[1] for i in _issues(_read(_document(over))[1])] == ["record-too-many-elements"]


def test_a_record_over_the_byte_cap_is_refused_whole(
    monkeypatch: pytest.MonkeyPatch, scanner: None
) -> None:
    watch = _Watch(monkeypatch)
    fields = "".join(f"<X{n}>{'长' * 20_000}</X{n}>" for n in range(8))  # 480 KB, 14 elements
    doc, checks = _read(_document(_wide_jgxx(fields)), Limits(max_record_bytes=200_000))
    assert _issues(checks) == [("file-too-large", "record-too-large", "JGXX", None, 6)]
    assert checks[1].issues[0].args["limit"] == 200_000
    assert (doc.records, doc.valid, doc.fatal) == (3, 2, False)
    assert "JGXX" not in watch.checked


def test_an_oversized_record_in_gb18030_is_refused_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    source = _document(_wide_jgxx("<X/>" * 50_000), encoding="GB18030")
    doc, checks = _read(source)
    assert [i[1] for i in _issues(checks)] == ["record-too-many-elements"]
    assert (doc.records, doc.valid) == (3, 2)


@pytest.mark.parametrize("depth", ["field", "nested"])
def test_the_text_cap_holds_at_any_depth(depth: str, scanner: None) -> None:
    long = "长" * 300  # over JGMC's 200: the XSD refuses it too
    text = f"<JGMC>{long}</JGMC>" if depth == "field" else f"<JGMC><X><Y>{long}</Y></X></JGMC>"
    _, fields = record("JGXX")
    middle = "<JGXX>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if k != "JGMC")
    doc, checks = _read(_document(middle + text + "</JGXX>"), Limits(max_text_bytes=100))
    assert _issues(checks) == [
        ("file-too-large", "record-text-too-large", "JGXX", "JGMC", 6)
    ]
    assert (doc.records, doc.valid, doc.fatal) == (3, 2, False)


def test_nested_text_in_the_head_over_the_cap_stops_the_file() -> None:
    doc, checks = _read(_document(_wide_jgxx(""), head=f"<X><Y>{'x' * 200}</Y></X>"),
                        Limits(max_text_bytes=100))
    assert [(i.message_id, i.line) for i in doc.issues] == [("text-too-large", 3)]
    assert doc.fatal and checks == []


def test_a_head_of_too_many_elements_is_refused_and_the_records_still_read() -> None:
    doc, checks = _read(_document(_wide_jgxx(""), head="<X/>" * 50_000))
    assert [(i.code, i.message_id, i.element, i.line) for i in doc.issues] == [
        ("file-too-large", "record-too-many-elements", "HEAD", 3)
    ]
    assert (doc.records, doc.valid, doc.fatal, doc.head) == (3, 3, False, None)
    assert checks[0].valid


def test_an_element_that_is_no_record_is_reported_once_and_freed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = _Watch(monkeypatch)
    doc, checks = _read(_document("<FOO>" + "<X/>" * 100_000 + "</FOO>"))
    assert _issues(checks) == []  # a file's issue: no record, and not counted as one
    assert [(i.code, i.message_id, i.element, i.field, i.line) for i in doc.issues] == [
        ("unknown-element", "unknown-element", "FOO", None, 6)]
    assert (doc.records, doc.valid) == (2, 2)
    assert 0 < watch.held <= 2 * reader.SLICE // len("<X/>")  # type: ignore[attr-defined]


def test_elements_that_are_no_records_are_freed_as_they_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held: list[int] = []
    unknown = Pruner._unknown

    def measured(self: Pruner, element: Any) -> Any:
        parent = element.getparent()
        held.append(0 if parent is None else len(parent))
        return unknown(self, element)

    monkeypatch.setattr(Pruner, "_unknown", measured)
    doc, checks = _read(_document("<X/>" * 50_000))
    assert (doc.records, doc.valid, [c.line for c in checks]) == (2, 2, [5, 7])
    *listed, more = doc.issues  # at most the cap, the rest counted
    assert len(listed) == reader.MAX_FILE_ISSUES and {i.line for i in listed} == {6}
    assert (more.message_id, more.args["count"]) == ("more-file-issues", 40_000)
    assert max(held) <= 2 * reader.SLICE // len("<X/>")  # type: ignore[attr-defined]


def test_issues_past_twenty_are_counted_in_one_closing_issue() -> None:
    _, fields = record("SXXX")
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    strays = "".join(f"<Z{n}/>" for n in range(30))  # 13 + 30 elements: within SXXX's 52
    middle = f"<SXXX>{body}{strays}</SXXX>"
    _, checks = _read(_document(middle))
    (refused,) = [c for c in checks if not c.valid]
    assert len(refused.issues) == 21
    assert [i.message_id for i in refused.issues[:20]] == ["unexpected-field"] * 20
    more = refused.issues[20]
    assert (more.code, more.message_id, more.args, more.element, more.line) == (
        "unexpected-field", "more-issues", {"count": 10}, "SXXX", 6
    )
    assert "10" in more.message("en") and "10" in more.message("zh")


def test_the_record_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_record_bytes"):
        Limits(max_record_bytes=0)


def test_text_beside_freed_elements_is_reported_in_document_order() -> None:
    _, fields = record("JGXX")
    jgxx = "<JGXX>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</JGXX>"
    middle = jgxx + "first<X/>second" + "<X/>" * 30_000
    # In GB18030 lxml parses every record: the JGXX is still waiting for its tail to be
    # judged when the elements after it are freed.
    doc, _ = _read(_document(middle, encoding="GB18030"), Limits(max_file_issues=50_000))
    strays = [(i.message_id, i.args["value"]) for i in doc.issues if "value" in i.args]
    assert strays == [("stray-text", "first")]


@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030"])
@pytest.mark.parametrize("slice_bytes", [1, 7, 64])
def test_freeing_under_the_parser_at_any_boundary_keeps_the_rest_intact(
    monkeypatch: pytest.MonkeyPatch, encoding: str, slice_bytes: int
) -> None:
    """Text, tails, CDATA, comments and nesting cut at every few bytes while freed."""
    monkeypatch.setattr(reader, "SLICE", slice_bytes)
    mixed = "t<X>值</X>长文<![CDATA[a<b]]><Y><X>v</X>&amp;<!-- c --><X/>w</Y>\n" * 40
    _, checks = _read(_document(_wide_jgxx(mixed), encoding=encoding))
    plain = DocumentReader(document([BEFORE, AFTER], encoding=encoding), "plain.xml")
    assert [(c.element, c.record and c.record.fields) for c in checks if c.valid] == [
        (c.element, c.record and c.record.fields) for c in plain
    ]
    assert [i[1] for i in _issues(checks)] == ["record-too-many-elements"]


def test_a_file_cap_in_megabytes_is_one_named_constructor_for_both_its_users() -> None:
    """``exgate validate --max-file-mb`` and a folder source's ``max_file_mb`` build
    their caps the same way: MiB, the other caps left at their defaults."""
    from adapters.sources.folder_options import FolderOptions

    caps = Limits.from_megabytes(3)
    assert caps == Limits(max_file_bytes=3 * 1024 * 1024)
    assert caps.max_record_bytes == Limits().max_record_bytes
    assert FolderOptions.parse({"path": "/drop", "max_file_mb": 3}).limits == caps

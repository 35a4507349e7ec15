"""The envelope around a document's records: EXCHANGE's sections, its attributes and
text, and the HEAD's COUNT.

EXCHANGE holds one HEAD, first, and one BODY, both in its namespace; EXCHANGE carries
only ``version`` (and ``xsi:*``), BODY only ``xsi:*``, and neither holds text beside its
parts; the HEAD's COUNT is the number of records read. ``judge_section`` judges each
element of EXCHANGE as soon as it is complete, so the reader can free the ones out of
place as they are parsed (a file of millions of them keeps memory flat);
``envelope_issues`` judges the rest once lxml has parsed it all. Apart from
``DocumentReader`` because it looks at the tree and the walk's totals, not at events:
the reader streams the records, this checks the frame. Issues come one at a time, so
the reader's cap on issues per file bounds what is ever built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from lxml import etree

from schemas.catalog import SchemaCatalog
from schemas.columns import locate_last_text
from schemas.issues import Issue, IssueCode
from schemas.messages import Localized
from schemas.reader_walk import Walk
from schemas.record_structure import unexpected_attributes
from schemas.records import Head

__all__ = ["envelope_issues", "judge_section", "stray_line", "unknown_element",
           "wrong_namespace"]

_XSI = "http://www.w3.org/2001/XMLSchema-instance"  # xsi:schemaLocation is always allowed
_SECTIONS = ("HEAD", "BODY")


def judge_section(child: etree._Element, state: Walk, file: str) -> Issue | None:
    """The issue of ``child``, the next element of EXCHANGE in document order, or None
    when it is in its place: the HEAD first, then the first BODY. The text before it
    (when it is the first) and after it is noted in ``state`` on the way."""
    position = state.sections
    state.sections += 1
    if position == 0:
        _note_text(child.getparent().text, child, state)
    _note_text(child.tail, child.getnext(), state)
    if child is state.body or (child.tag == state.head_tag and position == 0):
        return None
    qname = etree.QName(child)
    if qname.localname in _SECTIONS and child.tag not in (state.head_tag, state.body_tag):
        state.foreign.add(qname.localname)
        expected = etree.QName(state.head_tag).namespace or ""
        return wrong_namespace(child, expected, None, qname.localname, file)
    return Issue(
        IssueCode.UNEXPECTED_FIELD, "misplaced-element", {"found": qname.localname}, None,
        qname.localname, file, child.sourceline,
    )


def unknown_element(element: etree._Element, catalog: SchemaCatalog, file: str) -> Issue:
    """The issue of an element of BODY that is no record: a name not among the 14, or
    a record's name in another namespace."""
    name = etree.QName(element).localname if isinstance(element.tag, str) else "?"
    if name in catalog.elements:
        return wrong_namespace(element, catalog.namespace, name, None, file,
                               IssueCode.UNKNOWN_ELEMENT)
    return Issue(IssueCode.UNKNOWN_ELEMENT, "unknown-element", {"found": name}, name, None,
                 file, element.sourceline)


def wrong_namespace(
    element: etree._Element, expected: str, element_code: str | None, field: str | None,
    file: str, code: IssueCode = IssueCode.UNEXPECTED_FIELD,
) -> Issue:
    """``element`` has a name of the format but another namespace (or none)."""
    qname = etree.QName(element)
    found = qname.namespace or ""
    namespace = (
        Localized(f"“{found}”", f"namespace '{found}'") if found
        else Localized("无命名空间", "no namespace")
    )
    return Issue(
        code, "wrong-namespace",
        {"found": qname.localname, "namespace": namespace, "expected": expected},
        element_code, field, file, element.sourceline,
    )


def envelope_issues(
    root: etree._Element,
    state: Walk,
    head: Head | None,
    records: int,
    file: str,
    source: Path | bytes,
) -> Iterator[Issue]:
    """The issues of ``root``'s sections not judged yet, its attributes and BODY's, the
    text beside them, and the HEAD's COUNT against the ``records`` read. ``source``
    is read again only for a text after the last section, which has no element after
    it to take its line from."""
    for child in list(root)[state.kept:]:
        if isinstance(child.tag, str) and (issue := judge_section(child, state, file)):
            yield issue
    if not state.head_seen and "HEAD" not in state.foreign:
        yield Issue(IssueCode.MISSING_FIELD, "missing-head", {}, None, "HEAD", file,
                    root.sourceline)
    if state.body is None and "BODY" not in state.foreign:
        yield _envelope_issue(file, IssueCode.MISSING_FIELD, "missing-body", "BODY",
                              root.sourceline)
    yield from _attribute_issues(root, "root-attribute", "EXCHANGE", None, file,
                                 lambda name: name == "version" or _in_xsi(name))
    if state.body is not None:
        yield from _attribute_issues(state.body, "unexpected-attribute", "BODY", "报文体",
                                     file, _in_xsi)
    if state.sections == 0:
        _note_text(root.text, None, state)
    yield from _stray_issue(state, file, source)
    declared = head.count if head else None
    if declared is not None and declared != records:
        line = head.line if head else None
        yield Issue(
            IssueCode.COUNT_MISMATCH,
            "count-mismatch",
            {"declared": declared, "actual": records},
            "HEAD",
            "COUNT",
            file,
            line,
        )


def _in_xsi(name: str) -> bool:
    return bool(etree.QName(name).namespace == _XSI)


def _attribute_issues(
    element: etree._Element, message_id: str, code: str, label: str | None, file: str,
    allowed: Callable[[str], bool],
) -> Iterator[Issue]:
    names, more = unexpected_attributes(element, allowed)
    context = {"element": code, "element_label": label}
    for name in names:
        yield _envelope_issue(file, IssueCode.UNEXPECTED_FIELD, message_id, None,
                              element.sourceline, attribute=name, **context)
    if more:
        yield _envelope_issue(file, IssueCode.UNEXPECTED_FIELD, "more-attributes", None,
                              element.sourceline, count=more, **context)


def _note_text(text: str | None, after: etree._Element | None, state: Walk) -> None:
    if text and not text.isspace() and state.stray is None:
        state.note_text(text, "EXCHANGE", stray_line(text, after))


def _stray_issue(state: Walk, file: str, source: Path | bytes) -> Iterator[Issue]:
    """The first text outside the records, where it is."""
    if state.stray is None:
        return
    line, where, shown = state.stray
    if line is None:  # after the last section: found in the file, a bad file's cost only
        try:
            line = locate_last_text(source, shown[:60].split("\n")[0])
        except (OSError, UnicodeError):
            line = None
    yield _envelope_issue(file, IssueCode.UNEXPECTED_FIELD, "stray-text", None, line,
                          where=where, value=shown)


def stray_line(text: str, after: etree._Element | None) -> int | None:
    """The line where ``text`` starts to show, counted back from the element ``after``
    it (None without one): lxml gives elements lines, never text."""
    if after is None or after.sourceline is None:
        return None
    start = len(text) - len(text.lstrip())
    return int(after.sourceline) - text.count("\n", start)


def _envelope_issue(
    file: str, code: IssueCode, message_id: str, field: str | None, line: int | None,
    **args: object,
) -> Issue:
    return Issue(code, message_id, dict(args), None, field, file, line)

"""The envelope around a document's records, judged once lxml has parsed it all.

EXCHANGE holds one HEAD, first, and one BODY; it carries only ``version`` (and
``xsi:*``) and no text beside its parts; the HEAD's COUNT is the number of records
read. Apart from ``DocumentReader`` because it looks at the finished tree and the
walk's totals, not at events: the reader streams the records, this checks the frame.
"""

from __future__ import annotations

from lxml import etree

from schemas.issues import Issue, IssueCode
from schemas.reader_walk import Walk
from schemas.record_check import stray_text
from schemas.records import Head

__all__ = ["envelope_issues"]

_XSI = "http://www.w3.org/2001/XMLSchema-instance"  # xsi:schemaLocation is always allowed


def envelope_issues(
    root: etree._Element, state: Walk, head: Head | None, records: int, file: str
) -> list[Issue]:
    """The issues of ``root``'s sections, attributes and text, and of the HEAD's COUNT
    against the ``records`` read."""
    sections = [child for child in root if isinstance(child.tag, str)]
    bodies = [child for child in sections if child.tag == state.body_tag]
    issues: list[Issue] = []
    for child in sections:
        if child is not (bodies[0] if bodies else None) and (
            child.tag != state.head_tag or child is not sections[0]
        ):
            issues.append(
                Issue(
                    IssueCode.UNEXPECTED_FIELD,
                    "misplaced-element",
                    {"found": etree.QName(child).localname},
                    None,
                    etree.QName(child).localname,
                    file,
                    child.sourceline,
                )
            )
    if not state.head_seen:
        issues.append(
            Issue(IssueCode.MISSING_FIELD, "missing-head", {}, None, "HEAD", file, root.sourceline)
        )
    if not bodies:
        issues.append(
            _envelope_issue(file, IssueCode.MISSING_FIELD, "missing-body", "BODY", root.sourceline)
        )
    issues.extend(_root_issues(root, state, file))
    declared = head.count if head else None
    if declared is not None and declared != records:
        line = head.line if head else None
        issues.append(
            Issue(
                IssueCode.COUNT_MISMATCH,
                "count-mismatch",
                {"declared": declared, "actual": records},
                "HEAD",
                "COUNT",
                file,
                line,
            )
        )
    return issues


def _root_issues(root: etree._Element, state: Walk, file: str) -> list[Issue]:
    """EXCHANGE carries only ``version`` (and ``xsi:*``), and no text beside its parts."""
    issues: list[Issue] = []
    for name in root.attrib:
        qname = etree.QName(name)
        if name != "version" and qname.namespace != _XSI:
            issues.append(
                _envelope_issue(
                    file,
                    IssueCode.UNEXPECTED_FIELD,
                    "root-attribute",
                    None,
                    root.sourceline,
                    attribute=qname.localname,
                )
            )
    state.note_text(stray_text(root), "EXCHANGE", root.sourceline)
    if state.stray is not None:
        line, where, text = state.stray
        issues.append(
            _envelope_issue(
                file, IssueCode.UNEXPECTED_FIELD, "stray-text", None, line, where=where, value=text
            )
        )
    return issues


def _envelope_issue(
    file: str, code: IssueCode, message_id: str, field: str | None, line: int | None,
    **args: object,
) -> Issue:
    return Issue(code, message_id, dict(args), None, field, file, line)

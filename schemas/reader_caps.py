"""The reader's caps on one record (or the HEAD), measured while lxml parses it.

lxml is fed ``SLICE`` bytes at a time, and every ``SLICE`` bytes the record it is
building is measured: past ``ELEMENTS_PER_FIELD`` elements per field of its element, or
past ``max_record_bytes`` since its start tag, it is refused whole, with one issue, and
``trim`` frees what lxml built of it as it is parsed. A text over the text cap, at any
depth, is found here too. Apart from ``DocumentReader`` because these are the measures
alone: the reader decides when to take them and what to do with a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from lxml import etree

from schemas.body_scan import ScannedRecord
from schemas.issues import Issue, IssueCode

__all__ = [
    "ELEMENTS_PER_FIELD",
    "SLICE",
    "Item",
    "TextTooLarge",
    "find_long_scanned_text",
    "find_long_text",
    "past_caps",
    "size_issue",
    "trim",
]

# The most lxml is fed at once, and how many bytes it is fed between two measures of the
# record it builds: a record is caught less than two slices past its caps (at most 32k
# elements, a few MB in lxml).
SLICE = 1 << 16
# xs:all takes each field once, so a record with more elements than fields is already
# invalid; up to four times as many (a field repeated, misspelt or wrapped) still gets
# each problem reported. Past that, a record is noise, and it is refused whole.
ELEMENTS_PER_FIELD = 4


@dataclass(slots=True)
class Item:
    """The record (or HEAD) lxml is parsing: what it may grow to, and its refusal."""

    element: etree._Element
    max_elements: int
    fed_at_start: int  # bytes fed to lxml when its start tag was seen
    refusal: tuple[str, dict[str, object]] | None = None  # message id and arguments


class TextTooLarge(Exception):
    def __init__(self, line: int | None):
        self.line = line


def trim(element: etree._Element) -> None:
    """Free what lxml built of ``element`` but the path to where it is parsing.

    Only the last child can still be open, and only its tail can be the text libxml2
    is appending to: all else is complete, and may be freed under the parser.
    """
    node = element
    while len(node):
        del node[:-1]
        node.text = None  # before a child, so complete
        node = node[0]


def past_caps(
    item: Item, fed: int, max_record_bytes: int
) -> tuple[str, dict[str, object]] | None:
    """Why ``item`` is refused, if it is past its caps: elements, or bytes fed since
    its start tag (to within a slice)."""
    limit = item.max_elements
    if sum(1 for _ in islice(item.element.iter(), limit + 2)) > limit + 1:
        return "record-too-many-elements", {
            "limit": limit, "fields": limit // ELEMENTS_PER_FIELD,
        }
    if fed - item.fed_at_start > max_record_bytes:
        return "record-too-large", {"limit": max_record_bytes}
    return None


def size_issue(
    file: str,
    code: str,
    label: str,
    line: int | None,
    message_id: str,
    args: dict[str, object],
    field_code: str | None = None,
) -> Issue:
    return Issue(
        IssueCode.FILE_TOO_LARGE, message_id, {**args, "element": code, "element_label": label},
        code, field_code, file, line,
    )


def find_long_text(element: etree._Element, limit: int) -> tuple[str | None, int | None] | None:
    """The field and line of the first text in ``element``, at any depth, over the
    text cap ``limit`` (``element``'s own tail is its parent's)."""
    if element.text is not None and len(element.text) > limit:
        return None, element.sourceline
    for child in element:
        code = etree.QName(child).localname if isinstance(child.tag, str) else None
        for node in child.iter():
            if (node.text is not None and len(node.text) > limit) or (
                node is not child and node.tail is not None and len(node.tail) > limit
            ):
                return code, node.sourceline
        if child.tail is not None and len(child.tail) > limit:
            return None, child.sourceline
    return None


def find_long_scanned_text(
    scanned: ScannedRecord, limit: int
) -> tuple[str | None, int | None] | None:
    longest = next((c for c, v in scanned.fields.items() if len(v) > limit), None)
    return None if longest is None else (longest, scanned.field_lines()[longest])

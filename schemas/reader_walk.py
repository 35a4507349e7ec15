"""What the reader's parse has seen so far within one document.

The tags it watches, the record (or HEAD) lxml is building and the bytes fed since,
whether lxml stands at record level (the scanner asks), the last record whose tail is
not judged yet, the first text outside the records, and one entry per record to flag a
second record with the same key and version but other content. Apart from
``DocumentReader`` because it is plain state with its own small rules, which the
reader's event handlers share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from schemas.catalog import SchemaCatalog
from schemas.issues import Issue, IssueCode
from schemas.reader_caps import ELEMENTS_PER_FIELD, SLICE, Item
from schemas.record_check import RecordCheck
from schemas.record_structure import visible_text

__all__ = ["Walk"]


@dataclass
class Walk:
    """What the parse has seen so far within one document."""

    body_tag: str
    head_tag: str
    record_tags: frozenset[str]
    max_elements: dict[str, int]  # by tag: how many elements a record or HEAD may hold
    head_seen: bool = False
    body_starts: int = 0
    root: etree._Element | None = None  # EXCHANGE, once its start is seen
    root_ended: bool = False  # its end too: nothing after it can be a record
    body: etree._Element | None = None  # the first BODY
    # EXCHANGE's elements judged so far (in document order), and how many of them are
    # still in the tree (HEAD first, the first BODY): the others are freed once judged.
    sections: int = 0
    kept: int = 0
    foreign: set[str] = field(default_factory=set)  # HEAD or BODY met in another namespace
    item: Item | None = None  # the record or HEAD lxml is inside, once its start is seen
    fed: int = 0  # bytes fed to lxml
    next_measure: int = SLICE  # when ``fed`` reaches it, the item is measured again
    # The tag of lxml's last event when it left the parser at record level: the start
    # of the first BODY or the end of a record of BODY. The scanner asks for it.
    level: str | None = None
    record_ends: int = 0  # end events of record tags (nested ones too) drained so far
    pending: etree._Element | None = None  # the last record lxml checked, tail unjudged
    head_division: str | None = None
    seen: dict[int, int] = field(default_factory=dict)
    # The first text outside the records: its line (None when not known yet), where it
    # is, and the text itself.
    stray: tuple[int | None, str, str] | None = None

    @classmethod
    def of(cls, catalog: SchemaCatalog) -> Walk:
        """A fresh walk over a document of ``catalog``'s schema."""
        return cls(
            body_tag=catalog.tag("BODY"),
            head_tag=catalog.tag("HEAD"),
            record_tags=frozenset(catalog.tag(code) for code in catalog.elements),
            max_elements={
                catalog.tag(code): ELEMENTS_PER_FIELD * len(fields)
                for code, fields in (
                    ("HEAD", catalog.head),
                    *((code, spec.fields) for code, spec in catalog.elements.items()),
                )
            },
        )

    def at_level(self, tag: str, record_ends: int) -> bool:
        """Whether lxml's last event left it at record level after ``tag``, having
        ended exactly the ``record_ends`` record tags the scanner fed it: an end tag
        lxml gave no event for (another namespace, a stalled parse) means it is not."""
        return self.level == tag and self.record_ends == record_ends

    def note_text(self, text: str | None, where: str, line: int | None) -> None:
        if self.stray is None and (visible := visible_text(text)) is not None:
            self.stray = (line, where, visible)

    def open_item(self) -> tuple[str | None, str | None]:
        """The record (or HEAD) lxml is inside, and its field when one is open: the
        last child, unless text follows it (then lxml is between fields)."""
        if self.item is None:
            return None, None
        element = self.item.element
        last = element[-1] if len(element) else None
        field_code = None
        if last is not None and last.tail is None and isinstance(last.tag, str) and not len(last):
            field_code = etree.QName(last).localname
        return etree.QName(element).localname, field_code

    def end_item(self, element: etree._Element) -> Item | None:
        """The measures of the record or HEAD ``element``, which just ended; None when
        it was not the one measured."""
        item = self.item
        if item is None or item.element is not element:
            return None
        self.item = None
        return item

    def deduplicate(self, result: RecordCheck, file: str) -> RecordCheck:
        """Flag a second record with the same key and version but other content.

        One dict entry per record maps a 64-bit key hash to the content hash and the
        line packed into one int: about 100 bytes a record, whatever the record's size.
        """
        record = result.record
        if record is None:
            return result
        key_hash = hash((record.element, record.key, record.version))
        # Names and values, in the XSD's order, which every record's fields keep: the
        # same value in another optional field is other content.
        fields = record.fields
        content = hash((tuple(fields), tuple(fields.values()))) & 0xFFFFFFFF
        first = self.seen.get(key_hash)
        if first is None:
            self.seen[key_hash] = content << 32 | (record.line or 0) & 0xFFFFFFFF
            return result
        if first >> 32 == content:
            return result
        issue = Issue(
            IssueCode.DUPLICATE_RECORD,
            "duplicate-record",
            {
                "element": record.element,
                "key": record.key_text,
                "version": record.version,
                "first_line": first & 0xFFFFFFFF,
            },
            record.element,
            None,
            file,
            record.line,
        )
        return RecordCheck(result.element, result.line, None, (issue,))

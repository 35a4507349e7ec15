"""Freeing, as the reader's parse goes, what lxml builds that is never read.

lxml's pull parser keeps every element it builds, so a file of millions of records, of
elements that are no records, or of one record without end would fill memory. Every
record is freed once checked and its tail judged (``settle``); every ``SLICE`` bytes fed,
the record (or HEAD) lxml is building is measured and, past its caps, refused and
trimmed, and the elements of EXCHANGE and of BODY that are complete and no records are
reported and freed (``Pruner.contain``). Apart from ``DocumentReader`` because it is
housekeeping on the tree: the reader judges records, this keeps what it does not need
from piling up. Issues go to ``note``, the reader's cap on issues per file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from schemas.catalog import SchemaCatalog
from schemas.issues import Issue
from schemas.reader_caps import past_caps, trim
from schemas.reader_envelope import judge_section, unknown_element
from schemas.reader_walk import Walk
from schemas.record_structure import stray_text

__all__ = ["Pruner", "settle"]


def settle(state: Walk) -> None:
    """Judge the last record's tail, then free the record: keeps memory flat."""
    element, state.pending = state.pending, None
    if element is None:
        return
    tail = element.tail
    if tail and not tail.isspace():  # the usual tail is white space: skip the call
        state.note_text(tail, "BODY", element.sourceline)
    parent = element.getparent()
    if parent is not None:
        parent.remove(element)


@dataclass(frozen=True, slots=True)
class Pruner:
    """Frees what lxml built of one document and reports what is out of place."""

    catalog: SchemaCatalog
    file: str
    max_record_bytes: int
    note: Callable[[Issue], None]

    def contain(self, state: Walk) -> None:
        """Every ``SLICE`` bytes fed: refuse the record (or HEAD) being parsed once it
        is past its caps, and free what lxml built of it and of elements never read."""
        item = state.item
        if item is not None:
            if item.refusal is None:
                item.refusal = past_caps(item, state.fed, self.max_record_bytes)
            if item.refusal is not None:
                trim(item.element)
        root = state.root
        if root is None or not len(root):
            return
        self._release_sections(root, state)
        last = root[-1]  # the section lxml is in
        if last.tag == state.body_tag:
            self._release_unknown(last, state)
            if len(last) and last[-1].tag not in state.record_tags:
                trim(last[-1])  # no record: only its name and line are ever read
        elif last.tag != state.head_tag:
            trim(last)  # out of place: only its name and line are ever read

    def unknown_before(self, element: etree._Element, state: Walk) -> None:
        """Siblings left before a record are not among the 14 (known ones are removed
        as soon as they are checked): report each once and free it."""
        parent = element.getparent()
        while (previous := element.getprevious()) is not None:
            self.note(self._unknown(previous))
            state.note_text(previous.tail, "BODY", previous.sourceline)
            parent.remove(previous)

    def leftovers(self, root: etree._Element, state: Walk) -> None:
        """What is left in each BODY of the parsed ``root`` is no record."""
        for child in root:
            if child.tag == state.body_tag:
                self._leftovers(child, state)

    def _release_sections(self, root: etree._Element, state: Walk) -> None:
        """Judge EXCHANGE's elements as soon as they are complete (all but the last),
        and report and free those out of place, each once."""
        for child in list(root)[state.kept:-1]:
            issue = judge_section(child, state, self.file)
            if issue is None:
                state.kept += 1
                continue
            self.note(issue)
            if child.tag == state.body_tag:  # a second BODY: its records are read already
                if state.pending is not None and state.pending.getparent() is child:
                    settle(state)  # its tail is complete: something follows its BODY
                self._leftovers(child, state)
            root.remove(child)

    def _release_unknown(self, body: etree._Element, state: Walk) -> None:
        """Report and free BODY's children that are no records as soon as they are
        complete (all but the last); records are freed as they are checked."""
        complete = [child for child in list(body)[:-1] if child.tag not in state.record_tags]
        pending = state.pending
        if complete and pending is not None and pending.getnext() is not None:
            settle(state)  # an element follows it, so its tail is complete: text in order
        for child in complete:
            self.note(self._unknown(child))
            state.note_text(child.tail, "BODY", child.sourceline)
            body.remove(child)

    def _leftovers(self, body: etree._Element, state: Walk) -> None:
        """What is left in a finished BODY is no record; and the text beside it."""
        for unknown in list(body):
            self.note(self._unknown(unknown))
        state.note_text(stray_text(body), "BODY", body.sourceline)

    def _unknown(self, element: etree._Element) -> Issue:
        """The issue of an element of BODY that is no record (never counted as one)."""
        return unknown_element(element, self.catalog, self.file)

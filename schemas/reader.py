"""Reading an exchange document record by record, with a hardened parser.

The reader streams: each record is validated when its end tag is parsed, then freed,
so memory stays flat however large the file. Untrusted input cannot reach the network
or the file system (no DTD, no entities, no network) and is capped in size: the file,
each text, and each record. lxml is fed at most ``SLICE`` bytes at a time, and every
``SLICE`` bytes the record it is building is measured; one past its cap of elements or
bytes is refused whole, with one issue, and freed as it is parsed, so the records after
it are still read. What lxml builds that is never read (the content of elements that
are not records) is freed as it is parsed too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

from schemas.body_scan import BodyScanner, ScannedRecord
from schemas.catalog import ElementSpec, SchemaCatalog
from schemas.issues import Issue, IssueCode
from schemas.parse_errors import LIBXML_TEXT_LIMIT, PROLOG_BYTES, syntax_issue
from schemas.reader_caps import (
    SLICE,
    Item,
    TextTooLarge,
    find_long_scanned_text,
    find_long_text,
    past_caps,
    size_issue,
    trim,
)
from schemas.reader_envelope import envelope_issues
from schemas.reader_prolog import read_root
from schemas.reader_source import (
    CountingStream,
    head_bytes,
    open_counted,
    parser_options,
    source_size,
)
from schemas.reader_walk import Walk
from schemas.record_check import (
    RecordCheck,
    check_head,
    check_proven,
    check_record,
    outside_node,
    stray_text,
)
from schemas.records import Head
from schemas.times import BEIJING

__all__ = ["DocumentReader", "Limits"]

# Issues listed per record: enough for every field of the widest element to be wrong;
# the rest are counted in one closing issue.
_ISSUES_PER_RECORD = 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps for untrusted input, configurable per deployment.

    ``max_record_bytes`` bounds one record (and the HEAD). The largest valid record is
    13 fields of at most 2,000 characters: some 240 KB even written entirely as
    character references, so the default of 1 MiB refuses no real record.
    """

    max_file_bytes: int = 4 * 1024**3
    max_text_bytes: int = 1024 * 1024
    max_record_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.max_text_bytes <= LIBXML_TEXT_LIMIT:
            raise ValueError(f"max_text_bytes must be 1..{LIBXML_TEXT_LIMIT}")
        if self.max_record_bytes <= 0:
            raise ValueError("max_record_bytes must be positive")


@dataclass
class DocumentReader:
    """Iterate over the records of one document; file-level findings collect in ``issues``.

    ``source`` is a path or the document's bytes; ``name`` is what reports call it.
    After iteration, ``head``, ``issues`` (file, HEAD, COUNT and duplicate findings),
    ``records`` and ``valid`` describe the whole document.
    """

    source: Path | bytes
    name: str
    limits: Limits = field(default_factory=Limits)
    now: datetime | None = None
    schema_version: int | None = None  # require this version; None accepts every known one
    # The agent's own division: records must lie within it as well as within the HEAD's,
    # else the levels would refuse the whole batch they travel in.
    node_division: str | None = None
    on_bytes: Callable[[int], None] | None = None  # progress: called with bytes consumed
    head: Head | None = None
    issues: list[Issue] = field(default_factory=list)
    records: int = 0
    valid: int = 0
    fatal: bool = False

    def __iter__(self) -> Iterator[RecordCheck]:
        if not self._precheck():
            return
        with open_counted(self.source, self.on_bytes) as stream:
            yield from self._parse(stream)

    # -- checks before parsing --------------------------------------------------------

    def _precheck(self) -> bool:
        self._catalog: SchemaCatalog | None = None
        size = source_size(self.source)
        if size > self.limits.max_file_bytes:
            return self._fail(
                IssueCode.FILE_TOO_LARGE,
                "file-too-large",
                size=size,
                limit=self.limits.max_file_bytes,
            )
        if size == 0 or (size <= 4096 and not head_bytes(self.source, 4096).strip()):
            return self._fail(IssueCode.EMPTY_FILE, "empty-file")
        return True

    def _fail(
        self,
        code: IssueCode,
        message_id: str,
        line: int | None = None,
        column: int | None = None,
        **args: object,
    ) -> bool:
        self.issues.append(
            Issue(code, message_id, dict(args), file=self.name, line=line, column=column)
        )
        self.fatal = True
        return False

    def _read_root(self, prolog: bytes, options: dict[str, Any]) -> bool:
        """The pre-pass (``read_root``): False, with the issue, when it stops the file."""
        try:
            found = read_root(self.source, self.name, prolog, options, self.schema_version)
        except etree.XMLSyntaxError as exc:
            self._syntax_error(exc)
            return False
        if isinstance(found, Issue):
            self.issues.append(found)
            self.fatal = True
            return False
        self._catalog = found
        return True

    # -- streaming parse -----------------------------------------------------------------

    def _parse(self, stream: BinaryIO | CountingStream) -> Iterator[RecordCheck]:
        etree.clear_error_log()  # else an earlier document's errors leak into this one's
        prolog = head_bytes(self.source, PROLOG_BYTES)
        options = parser_options(prolog)
        if not self._read_root(prolog, options):
            return
        assert self._catalog is not None
        catalog = self._catalog
        # Events only for HEAD, BODY and the 14 record tags: filtering in C rather than
        # seeing every field in Python makes the parse about 2.5x faster.
        wanted = [catalog.tag(code) for code in ("HEAD", "BODY", *catalog.elements)]
        parser = etree.XMLPullParser(events=("start", "end"), tag=wanted, **options)
        latest = (self.now or datetime.now(BEIJING)) + timedelta(days=1)
        state = Walk.of(catalog)
        scanner = BodyScanner(stream, catalog, prolog, state.at_level)
        try:
            for piece in scanner:
                if isinstance(piece, ScannedRecord):
                    yield self._scanned(piece, latest, state)
                    continue
                for start in range(0, len(piece), SLICE):
                    part = piece[start:start + SLICE]
                    parser.feed(part)
                    state.fed += len(part)
                    yield from self._events(parser.read_events(), latest, state)
                    if state.fed >= state.next_measure:
                        state.next_measure = state.fed + SLICE
                        yield from self._contain(state)
            root = parser.close()
            yield from self._events(parser.read_events(), latest, state)
            self._settle(state)
            yield from self._finish(root, state)
        except TextTooLarge as exc:
            self._text_too_large(exc)
        except etree.XMLSyntaxError as exc:
            # What lxml parsed before the error still counts: the good records before
            # bad data are reported, however the input happened to be fed.
            try:
                yield from self._events(parser.read_events(), latest, state)
            except TextTooLarge as too_large:
                self._text_too_large(too_large)
                return
            self._syntax_error(exc)

    def _text_too_large(self, exc: TextTooLarge) -> None:
        self._fail(
            IssueCode.FILE_TOO_LARGE, "text-too-large", line=exc.line,
            limit=self.limits.max_text_bytes,
        )

    def _events(
        self,
        events: Iterator[tuple[str, etree._Element]],
        latest: datetime,
        state: Walk,
    ) -> Iterator[RecordCheck]:
        for event, element in events:
            if state.pending is not None:  # the parser is past its tail now
                self._settle(state)
            state.level = None
            if event == "end" and element.tag in state.record_tags:
                state.record_ends += 1
            parent = element.getparent()
            if parent is None:
                continue
            if event == "start":
                if element.tag == state.body_tag and parent.getparent() is None:
                    state.body_starts += 1
                    if state.body_starts == 1:
                        state.level = element.tag
                        state.body = element
                elif state.item is None and (
                    (element.tag in state.record_tags and parent.tag == state.body_tag)
                    or (element.tag == state.head_tag and parent.getparent() is None)
                ):
                    state.item = Item(element, state.max_elements[element.tag], state.fed)
            elif parent.tag == state.body_tag and element.tag != state.head_tag:
                if element.getprevious() is not None:
                    yield from self._unknown_before(element, state)
                yield self._record(element, latest, state)
                state.level = element.tag
            elif element.tag == state.head_tag and parent.getparent() is None:
                self._head(element, latest, state)

    def _record(self, element: etree._Element, latest: datetime, state: Walk) -> RecordCheck:
        assert self._catalog is not None
        spec = self._catalog.elements[element.tag[self._catalog.prefix_length:]]
        state.pending = element  # its tail may not be parsed yet: settled at the next event
        item = state.end_item(element)
        refusal = None if item is None else item.refusal
        if refusal is None:
            result = check_record(element, spec, self._catalog, state.head_division, latest)
            # A valid record holds its fields alone: only a refused one can be past the caps.
            if not result.valid and item is not None:
                refusal = self._past_caps(item, state.fed)
            if refusal is None:
                limit = self.limits.max_text_bytes
                return self._conclude(result, spec, state, lambda: find_long_text(element, limit))
        self.records += 1
        issue = size_issue(self.name, spec.code, spec.label, element.sourceline, *refusal)
        return RecordCheck(spec.code, element.sourceline, None, (issue,))

    def _settle(self, state: Walk) -> None:
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

    def _scanned(self, scanned: ScannedRecord, latest: datetime, state: Walk) -> RecordCheck:
        """A record the scanner proved against the XSD: the rules remain."""
        assert self._catalog is not None
        spec = self._catalog.elements[scanned.code]
        result = check_proven(
            scanned.fields, spec, state.head_division, latest, scanned.line, scanned.field_lines
        )
        limit = self.limits.max_text_bytes
        return self._conclude(result, spec, state, lambda: find_long_scanned_text(scanned, limit))

    def _conclude(
        self,
        result: RecordCheck,
        spec: ElementSpec,
        state: Walk,
        long_text: Callable[[], tuple[str | None, int | None] | None],
    ) -> RecordCheck:
        """Count one record and give its final verdict, with the file's name on issues."""
        self.records += 1
        if result.record is not None and self.node_division is not None:
            result = outside_node(result, spec, self.node_division)
        if result.record is not None:
            result = state.deduplicate(result, self.name)
        elif (found := long_text()) is not None:  # the XSD refuses any text this long anyway
            field_code, line = found
            issue = size_issue(
                self.name, spec.code, spec.label, line, "record-text-too-large",
                {"limit": self.limits.max_text_bytes}, field_code,
            )
            return RecordCheck(result.element, result.line, None, (issue,))
        if result.record is not None:
            self.valid += 1
            return result
        issues = tuple(i.located(file=self.name) for i in result.issues)
        if len(issues) > _ISSUES_PER_RECORD:
            first_left = issues[_ISSUES_PER_RECORD]
            more = Issue(
                first_left.code, "more-issues", {"count": len(issues) - _ISSUES_PER_RECORD},
                result.element, None, self.name, result.line,
            )
            issues = (*issues[:_ISSUES_PER_RECORD], more)
        return RecordCheck(result.element, result.line, None, issues)

    # -- records past their caps ---------------------------------------------------------

    def _contain(self, state: Walk) -> Iterator[RecordCheck]:
        """Every ``SLICE`` bytes fed: refuse the record (or HEAD) being parsed once it
        is past its caps, and free what lxml built of it and of elements never read."""
        item = state.item
        if item is not None:
            if item.refusal is None:
                item.refusal = self._past_caps(item, state.fed)
            if item.refusal is not None:
                trim(item.element)
        body = state.body
        if body is not None and len(body):
            yield from self._release_unknown(body, state)
            if body[-1].tag not in state.record_tags:
                trim(body[-1])  # no record: only its name and line are ever read

    def _release_unknown(self, body: etree._Element, state: Walk) -> Iterator[RecordCheck]:
        """Report and free BODY's children that are no records as soon as they are
        complete (all but the last); records are freed as they are checked."""
        complete = [child for child in list(body)[:-1] if child.tag not in state.record_tags]
        pending = state.pending
        if complete and pending is not None and pending.getnext() is not None:
            self._settle(state)  # an element follows it, so its tail is complete: text in order
        for child in complete:
            yield self._unknown(child)
            state.note_text(child.tail, "BODY", child.sourceline)
            body.remove(child)

    def _past_caps(self, item: Item, fed: int) -> tuple[str, dict[str, object]] | None:
        return past_caps(item, fed, self.limits.max_record_bytes)

    # -- the HEAD, elements that are no records, and the envelope ------------------------

    def _head(self, element: etree._Element, latest: datetime, state: Walk) -> None:
        assert self._catalog is not None
        item = state.end_item(element)
        if state.head_seen:
            return  # a second HEAD is reported by envelope_issues as a misplaced element
        state.head_seen = True
        if item is not None and (refusal := item.refusal or self._past_caps(item, state.fed)):
            line = element.sourceline
            self.issues.append(size_issue(self.name, "HEAD", "报文头", line, *refusal))
            return
        if (found := find_long_text(element, self.limits.max_text_bytes)) is not None:
            raise TextTooLarge(found[1])
        fields, issues = check_head(element, self._catalog, latest)
        self.issues.extend(i.located(file=self.name) for i in issues)
        self.head = Head(fields, self._catalog.version, element.sourceline)
        state.head_division = fields.get("XZQHDM")

    def _unknown_before(self, element: etree._Element, state: Walk) -> Iterator[RecordCheck]:
        """Siblings left before a record are not among the 14 (known ones are removed
        as soon as they are checked): report each once and free it."""
        parent = element.getparent()
        while (previous := element.getprevious()) is not None:
            yield self._unknown(previous)
            state.note_text(previous.tail, "BODY", previous.sourceline)
            parent.remove(previous)

    def _unknown(self, element: etree._Element) -> RecordCheck:
        self.records += 1
        name = etree.QName(element).localname if isinstance(element.tag, str) else "?"
        issue = Issue(
            IssueCode.UNKNOWN_ELEMENT,
            "unknown-element",
            {"found": name},
            name,
            None,
            self.name,
            element.sourceline,
        )
        return RecordCheck(name, element.sourceline, None, (issue,))

    def _finish(self, root: etree._Element, state: Walk) -> Iterator[RecordCheck]:
        """What is left in each BODY is no record; then the envelope (``envelope_issues``)."""
        for child in root:
            if child.tag == state.body_tag:
                for unknown in list(child):
                    yield self._unknown(unknown)
                state.note_text(stray_text(child), "BODY", child.sourceline)
        self.issues.extend(envelope_issues(root, state, self.head, self.records, self.name))

    def _syntax_error(self, exc: etree.XMLSyntaxError) -> None:
        text_limit = min(self.limits.max_text_bytes, LIBXML_TEXT_LIMIT)
        self.issues.append(syntax_issue(exc, self.source, self.name, text_limit))
        self.fatal = True

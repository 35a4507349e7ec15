"""Reading an exchange document record by record, with a hardened parser.

The reader streams: each record is validated when its end tag is parsed, then freed
(``reader_prune``), so memory stays flat however large the file. Untrusted input cannot
reach the network or the file system (no DTD, no entities, no network) and is capped in
size: the file, each text, and each record (``reader_caps``). lxml is fed at most
``SLICE`` bytes at a time; a record past its caps is refused whole, with one issue, so
the records after it are still read. At most ``Limits.max_file_issues`` file-level
issues are kept, the rest counted.
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
from schemas.issues import Issue, IssueCap, IssueCode
from schemas.parse_errors import LIBXML_TEXT_LIMIT, PROLOG_BYTES, parser_encoding, syntax_issue
from schemas.reader_caps import (
    SLICE,
    Item,
    TextTooLarge,
    find_long_scanned_text,
    find_long_text,
    past_caps,
    size_issue,
)
from schemas.reader_envelope import envelope_issues
from schemas.reader_mislabel import utf8_under_legacy_label
from schemas.reader_prolog import read_root
from schemas.reader_prune import Pruner, settle
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
)
from schemas.records import Head
from schemas.times import BEIJING

__all__ = ["MAX_FILE_ISSUES", "DocumentReader", "Limits"]

# File-level issues kept per file: a file of millions of elements out of place would
# otherwise hold an issue for each in memory, and no reader goes past the first
# thousands; the rest are counted in one closing issue.
MAX_FILE_ISSUES = 10_000

# Issues listed per record: enough for every field of the widest element to be wrong;
# the rest are counted in one closing issue.
_ISSUES_PER_RECORD = 20
# Syntax errors whose cause lies in the record (or HEAD) lxml was reading: the issue
# names it, and the field when one was open. Others stay the whole file's.
_INSIDE_A_RECORD = frozenset({"unescaped-ampersand", "too-deep"})


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
    max_file_issues: int = MAX_FILE_ISSUES

    def __post_init__(self) -> None:
        if not 0 < self.max_text_bytes <= LIBXML_TEXT_LIMIT:
            raise ValueError(f"max_text_bytes must be 1..{LIBXML_TEXT_LIMIT}")
        if self.max_record_bytes <= 0:
            raise ValueError("max_record_bytes must be positive")
        if self.max_file_issues <= 0:
            raise ValueError("max_file_issues must be positive")

    @classmethod
    def from_megabytes(cls, max_file_mb: int) -> Limits:
        """The default caps with files capped at ``max_file_mb`` MiB (``--max-file-mb``,
        a folder source's ``max_file_mb``)."""
        return cls(max_file_bytes=max_file_mb * 1024 * 1024)


@dataclass
class DocumentReader:
    """Iterate over the records of one document; file-level findings collect in ``issues``.

    ``source`` is a path or the document's bytes; ``name`` is what reports call it.
    After iteration, ``head``, ``issues`` (file, envelope, HEAD, COUNT and elements of
    BODY that are no records: at most ``limits.max_file_issues`` of them, the issue
    that stopped the file always among them, then one closing issue counting the
    rest), ``records`` (the records of BODY: elements that are none are not counted)
    and ``valid`` describe the whole document.
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

    def __post_init__(self) -> None:
        self._cap = IssueCap(self.limits.max_file_issues, self.issues)

    def __iter__(self) -> Iterator[RecordCheck]:
        try:
            if not self._precheck():
                return
            with open_counted(self.source, self.on_bytes) as stream:
                yield from self._parse(stream)
        finally:
            if (closing := self._cap.closing(self.name)) is not None:
                self.issues.append(closing)

    @property
    def unlisted(self) -> int:
        """File-level issues counted but not listed (the closing issue names them)."""
        return self._cap.unlisted

    def _note(self, issue: Issue) -> None:
        self._cap.add(issue)

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
        self._stop(Issue(code, message_id, dict(args), file=self.name, line=line,
                         column=column))
        return False

    def _stop(self, issue: Issue) -> None:
        """``issue`` stops the file: always listed."""
        self._cap.add(issue, keep=True)
        self.fatal = True

    def _read_root(self, prolog: bytes, options: dict[str, Any]) -> bool:
        """The pre-pass (``read_root``): False, with the issue, when it stops the file."""
        try:
            found = read_root(self.source, self.name, prolog, options, self.schema_version)
        except etree.XMLSyntaxError as exc:
            self._syntax_error(exc, None)
            return False
        if isinstance(found, Issue):
            self._stop(found)
            return False
        self._catalog = found
        return True

    # -- streaming parse -----------------------------------------------------------------

    def _parse(self, stream: BinaryIO | CountingStream) -> Iterator[RecordCheck]:
        etree.clear_error_log()  # else an earlier document's errors leak into this one's
        prolog = head_bytes(self.source, PROLOG_BYTES)
        if (mislabel := utf8_under_legacy_label(self.source, prolog)) is not None:
            self._fail(IssueCode.ENCODING_ERROR, "utf8-under-legacy-label", line=mislabel.line,
                       encoding=mislabel.declared, text=mislabel.text)
            return
        options = parser_options(parser_encoding(prolog))
        if not self._read_root(prolog, options):
            return
        assert self._catalog is not None
        catalog = self._catalog
        # Events only for EXCHANGE, HEAD, BODY and the 14 record tags: filtering in C
        # rather than seeing every field in Python makes the parse about 2.5x faster.
        wanted = [
            catalog.tag(code) for code in ("EXCHANGE", "HEAD", "BODY", *catalog.elements)
        ]
        parser = etree.XMLPullParser(events=("start", "end"), tag=wanted, **options)
        latest = (self.now or datetime.now(BEIJING)) + timedelta(days=1)
        state = Walk.of(catalog)
        pruner = Pruner(catalog, self.name, self.limits.max_record_bytes, self._note)
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
                    yield from self._events(parser.read_events(), latest, state, pruner)
                    if state.fed >= state.next_measure:
                        state.next_measure = state.fed + SLICE
                        pruner.contain(state)
            root = parser.close()
            yield from self._events(parser.read_events(), latest, state, pruner)
            self._finish(root, state, pruner)
        except TextTooLarge as exc:
            self._text_too_large(exc)
        except etree.XMLSyntaxError as exc:
            # What lxml parsed before the error still counts: the good records before
            # bad data are reported, however the input happened to be fed.
            try:
                yield from self._events(parser.read_events(), latest, state, pruner)
            except TextTooLarge as too_large:
                self._text_too_large(too_large)
                return
            self._syntax_error(exc, state)

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
        pruner: Pruner,
    ) -> Iterator[RecordCheck]:
        for event, element in events:
            if state.pending is not None:  # the parser is past its tail now
                settle(state)
            state.level = None
            if event == "end" and element.tag in state.record_tags:
                state.record_ends += 1
            parent = element.getparent()
            if parent is None:
                state.root = element
                state.root_ended = event == "end"
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
            elif parent.tag == state.body_tag and element.tag in state.record_tags:
                if element.getprevious() is not None:
                    pruner.unknown_before(element, state)
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
                refusal = past_caps(item, state.fed, self.limits.max_record_bytes)
            if refusal is None:
                limit = self.limits.max_text_bytes
                return self._conclude(result, spec, state, lambda: find_long_text(element, limit))
        self.records += 1
        issue = size_issue(self.name, spec.code, spec.label, element.sourceline, *refusal)
        return RecordCheck(spec.code, element.sourceline, None, (issue,))

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

    # -- the HEAD and the envelope -------------------------------------------------------

    def _head(self, element: etree._Element, latest: datetime, state: Walk) -> None:
        assert self._catalog is not None
        item = state.end_item(element)
        if state.head_seen:
            return  # a second HEAD is reported by envelope_issues as a misplaced element
        state.head_seen = True
        max_bytes = self.limits.max_record_bytes
        if item is not None and (refusal := item.refusal or past_caps(item, state.fed, max_bytes)):
            self._note(size_issue(self.name, "HEAD", "报文头", element.sourceline, *refusal))
            return
        if (found := find_long_text(element, self.limits.max_text_bytes)) is not None:
            raise TextTooLarge(found[1])
        fields, issues = check_head(element, self._catalog, latest)
        for issue in issues:
            self._note(issue.located(file=self.name))
        self.head = Head(fields, self._catalog.version, element.sourceline)
        state.head_division = fields.get("XZQHDM")

    def _finish(self, root: etree._Element, state: Walk, pruner: Pruner) -> None:
        """The last record's tail, what is left in each BODY (no record), then the
        envelope (``envelope_issues``)."""
        settle(state)
        pruner.leftovers(root, state)
        for issue in envelope_issues(
            root, state, self.head, self.records, self.name, self.source
        ):
            self._note(issue)

    def _syntax_error(self, exc: etree.XMLSyntaxError, state: Walk | None) -> None:
        text_limit = min(self.limits.max_text_bytes, LIBXML_TEXT_LIMIT)
        ended = state is not None and state.root_ended
        issue = syntax_issue(exc, self.source, self.name, text_limit, after_root=ended)
        if state is not None and issue.message_id in _INSIDE_A_RECORD:
            element, field_code = state.open_item()
            issue = issue.located(element=element, field=field_code)
        self._stop(issue)

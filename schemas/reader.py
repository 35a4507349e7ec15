"""Reading an exchange document record by record, with a hardened parser.

The reader streams: each record is validated when its end tag is parsed, then freed,
so memory stays flat however large the file. Untrusted input cannot reach the network
or the file system (no DTD, no entities, no network) and is capped in size: the file,
each text, and each record. lxml is fed at most ``_SLICE`` bytes at a time, and every
``_SLICE`` bytes the record it is building is measured; one past its cap of elements or
bytes is refused whole, with one issue, and freed as it is parsed, so the records after
it are still read. What lxml builds that is never read (the content of elements that
are not records) is freed as it is parsed too.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

from schemas.body_scan import BodyScanner, ScannedRecord, split_at_undecodable
from schemas.catalog import ElementSpec, SchemaCatalog, catalog_for_namespace, known_namespaces
from schemas.columns import locate_doctype
from schemas.issues import Issue, IssueCode
from schemas.parse_errors import (
    LIBXML_TEXT_LIMIT,
    PROLOG_BYTES,
    declared_encoding,
    parser_encoding,
    syntax_issue,
)
from schemas.record_check import (
    RecordCheck,
    check_head,
    check_proven,
    check_record,
    outside_node,
    stray_text,
    visible_text,
)
from schemas.records import Head
from schemas.times import BEIJING

__all__ = ["DocumentReader", "Limits"]

_XSI = "http://www.w3.org/2001/XMLSchema-instance"  # xsi:schemaLocation is always allowed
# The most lxml is fed at once, and how many bytes it is fed between two measures of the
# record it builds: a record is caught less than two slices past its caps (at most 32k
# elements, a few MB in lxml).
_SLICE = 1 << 16
# xs:all takes each field once, so a record with more elements than fields is already
# invalid; up to four times as many (a field repeated, misspelt or wrapped) still gets
# each problem reported. Past that, a record is noise, and it is refused whole.
_ELEMENTS_PER_FIELD = 4
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
        with self._open() as stream:
            yield from self._parse(stream)

    # -- checks before parsing --------------------------------------------------------

    def _precheck(self) -> bool:
        self._catalog: SchemaCatalog | None = None
        size = len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size
        if size > self.limits.max_file_bytes:
            return self._fail(
                IssueCode.FILE_TOO_LARGE,
                "file-too-large",
                size=size,
                limit=self.limits.max_file_bytes,
            )
        if size == 0 or (size <= 4096 and not self._head_bytes(4096).strip()):
            return self._fail(IssueCode.EMPTY_FILE, "empty-file")
        return True

    def _head_bytes(self, count: int) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[:count]
        with self.source.open("rb") as handle:
            return handle.read(count)

    def _open_raw(self) -> BinaryIO:
        return io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source.open("rb")

    def _open(self) -> BinaryIO | _Counting:
        stream = self._open_raw()
        return stream if self.on_bytes is None else _Counting(stream, self.on_bytes)

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

    # -- streaming parse -----------------------------------------------------------------

    def _parse(self, stream: BinaryIO | _Counting) -> Iterator[RecordCheck]:
        etree.clear_error_log()  # else an earlier document's errors leak into this one's
        prolog = self._head_bytes(PROLOG_BYTES)
        self._options: dict[str, Any] = dict(_HARDENED)
        if (encoding := parser_encoding(prolog)) is not None:
            self._options["encoding"] = encoding
        if not self._read_root(prolog):
            return
        assert self._catalog is not None
        catalog = self._catalog
        # Events only for HEAD, BODY and the 14 record tags: filtering in C rather than
        # seeing every field in Python makes the parse about 2.5x faster.
        wanted = [catalog.tag(code) for code in ("HEAD", "BODY", *catalog.elements)]
        parser = etree.XMLPullParser(events=("start", "end"), tag=wanted, **self._options)
        latest = (self.now or datetime.now(BEIJING)) + timedelta(days=1)
        state = _Walk(
            body_tag=catalog.tag("BODY"),
            head_tag=catalog.tag("HEAD"),
            record_tags=frozenset(catalog.tag(code) for code in catalog.elements),
            max_elements={
                catalog.tag(code): _ELEMENTS_PER_FIELD * len(fields)
                for code, fields in (
                    ("HEAD", catalog.head),
                    *((code, spec.fields) for code, spec in catalog.elements.items()),
                )
            },
        )
        scanner = BodyScanner(stream, catalog, prolog, state.at_level)
        try:
            for piece in scanner:
                if isinstance(piece, ScannedRecord):
                    yield self._scanned(piece, latest, state)
                    continue
                for start in range(0, len(piece), _SLICE):
                    part = piece[start:start + _SLICE]
                    parser.feed(part)
                    state.fed += len(part)
                    yield from self._events(parser.read_events(), latest, state)
                    if state.fed >= state.next_measure:
                        state.next_measure = state.fed + _SLICE
                        yield from self._contain(state)
            root = parser.close()
            yield from self._events(parser.read_events(), latest, state)
            self._settle(state)
            yield from self._finish(root, state)
        except _TextTooLarge as exc:
            self._text_too_large(exc)
        except etree.XMLSyntaxError as exc:
            # What lxml parsed before the error still counts: the good records before
            # bad data are reported, however the input happened to be fed.
            try:
                yield from self._events(parser.read_events(), latest, state)
            except _TextTooLarge as too_large:
                self._text_too_large(too_large)
                return
            self._syntax_error(exc)

    def _text_too_large(self, exc: _TextTooLarge) -> None:
        self._fail(
            IssueCode.FILE_TOO_LARGE, "text-too-large", line=exc.line,
            limit=self.limits.max_text_bytes,
        )

    def _events(
        self,
        events: Iterator[tuple[str, etree._Element]],
        latest: datetime,
        state: _Walk,
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
                    state.item = _Item(element, state.max_elements[element.tag], state.fed)
            elif parent.tag == state.body_tag and element.tag != state.head_tag:
                if element.getprevious() is not None:
                    yield from self._unknown_before(element, state)
                yield self._record(element, latest, state)
                state.level = element.tag
            elif element.tag == state.head_tag and parent.getparent() is None:
                self._head(element, latest, state)

    def _read_root(self, prolog: bytes) -> bool:
        """Read only the prolog and the root's start tag, and judge them.

        A DOCTYPE, a foreign root or an unknown version stops the file here, before
        the main pass reads a single record.
        """
        parser = etree.XMLPullParser(events=("start",), **self._options)
        try:
            with self._open_raw() as raw:
                chunks = iter(partial(raw.read, 65536), b"")
                for chunk in split_at_undecodable(chunks, declared_encoding(prolog)):
                    parser.feed(chunk)
                    for _event, root in parser.read_events():
                        return self._accept_root(root, prolog)
                parser.close()
        except etree.XMLSyntaxError as exc:
            # Fed with the root's start tag, the error may lie anywhere after it: past
            # the root, the main pass reports it in its place, after the records before.
            for _event, root in parser.read_events():
                return self._accept_root(root, prolog)
            self._syntax_error(exc)
            return False
        return self._fail(IssueCode.MALFORMED_XML, "malformed-xml", detail="no root element")

    def _accept_root(self, root: etree._Element, prolog: bytes) -> bool:
        docinfo = root.getroottree().docinfo
        if docinfo.internalDTD is not None or docinfo.doctype or docinfo.system_url:
            spot = locate_doctype(self.source, declared_encoding(prolog) or "UTF-8")
            line, column = spot or (None, None)
            return self._fail(
                IssueCode.FORBIDDEN_DTD,
                "forbidden-dtd",
                line=line,
                column=column,
                detail=docinfo.doctype or "DOCTYPE",
            )
        qname = etree.QName(root)
        if qname.localname != "EXCHANGE" or not (qname.namespace or "").startswith(
            "urn:exgate:exchange:"
        ):
            return self._fail(
                IssueCode.WRONG_ROOT, "wrong-root", line=root.sourceline, found=root.tag
            )
        catalog = catalog_for_namespace(qname.namespace or "")
        known = ", ".join(known_namespaces())
        if catalog is None:
            return self._fail(
                IssueCode.UNKNOWN_SCHEMA_VERSION,
                "unknown-schema-version",
                line=root.sourceline,
                found=qname.namespace,
                known=known,
            )
        if self.schema_version is not None and catalog.version != self.schema_version:
            return self._fail(
                IssueCode.UNKNOWN_SCHEMA_VERSION,
                "version-not-requested",
                line=root.sourceline,
                found=catalog.version,
                expected=self.schema_version,
            )
        declared = root.get("version")
        if declared != str(catalog.version):
            return self._fail(
                IssueCode.UNKNOWN_SCHEMA_VERSION,
                "version-attribute",
                line=root.sourceline,
                found=declared,
                expected=catalog.version,
            )
        self._catalog = catalog
        return True

    def _record(self, element: etree._Element, latest: datetime, state: _Walk) -> RecordCheck:
        assert self._catalog is not None
        spec = self._catalog.elements[element.tag[self._catalog.prefix_length:]]
        state.pending = element  # its tail may not be parsed yet: settled at the next event
        item = self._end_item(element, state)
        refusal = None if item is None else item.refusal
        if refusal is None:
            result = check_record(element, spec, self._catalog, state.head_division, latest)
            # A valid record holds its fields alone: only a refused one can be past the caps.
            if not result.valid and item is not None:
                refusal = self._past_caps(item, state.fed)
            if refusal is None:
                return self._conclude(result, spec, state, lambda: self._long_text(element))
        self.records += 1
        issue = self._size_issue(spec.code, spec.label, element.sourceline, *refusal)
        return RecordCheck(spec.code, element.sourceline, None, (issue,))

    def _settle(self, state: _Walk) -> None:
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

    def _scanned(self, scanned: ScannedRecord, latest: datetime, state: _Walk) -> RecordCheck:
        """A record the scanner proved against the XSD: the rules remain."""
        assert self._catalog is not None
        spec = self._catalog.elements[scanned.code]
        result = check_proven(
            scanned.fields, spec, state.head_division, latest, scanned.line, scanned.field_lines
        )
        return self._conclude(result, spec, state, lambda: self._long_scanned_text(scanned))

    def _conclude(
        self,
        result: RecordCheck,
        spec: ElementSpec,
        state: _Walk,
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
            issue = self._size_issue(
                spec.code, spec.label, line, "record-text-too-large",
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

    def _contain(self, state: _Walk) -> Iterator[RecordCheck]:
        """Every ``_SLICE`` bytes fed: refuse the record (or HEAD) being parsed once it
        is past its caps, and free what lxml built of it and of elements never read."""
        item = state.item
        if item is not None:
            if item.refusal is None:
                item.refusal = self._past_caps(item, state.fed)
            if item.refusal is not None:
                _trim(item.element)
        body = state.body
        if body is not None and len(body):
            yield from self._release_unknown(body, state)
            if body[-1].tag not in state.record_tags:
                _trim(body[-1])  # no record: only its name and line are ever read

    def _release_unknown(self, body: etree._Element, state: _Walk) -> Iterator[RecordCheck]:
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

    def _past_caps(self, item: _Item, fed: int) -> tuple[str, dict[str, object]] | None:
        """Why ``item`` is refused, if it is past its caps: elements, or bytes fed since
        its start tag (to within a slice)."""
        limit = item.max_elements
        if sum(1 for _ in islice(item.element.iter(), limit + 2)) > limit + 1:
            return "record-too-many-elements", {
                "limit": limit, "fields": limit // _ELEMENTS_PER_FIELD,
            }
        if fed - item.fed_at_start > self.limits.max_record_bytes:
            return "record-too-large", {"limit": self.limits.max_record_bytes}
        return None

    def _end_item(self, element: etree._Element, state: _Walk) -> _Item | None:
        """The measures of the record or HEAD ``element``, which just ended; None when
        it was not the one measured."""
        item = state.item
        if item is None or item.element is not element:
            return None
        state.item = None
        return item

    def _size_issue(
        self,
        code: str,
        label: str,
        line: int | None,
        message_id: str,
        args: dict[str, object],
        field_code: str | None = None,
    ) -> Issue:
        return Issue(
            IssueCode.FILE_TOO_LARGE, message_id, {**args, "element": code, "element_label": label},
            code, field_code, self.name, line,
        )

    def _head(self, element: etree._Element, latest: datetime, state: _Walk) -> None:
        assert self._catalog is not None
        item = self._end_item(element, state)
        if state.head_seen:
            return  # a second HEAD is reported by _finish as a misplaced element
        state.head_seen = True
        if item is not None and (refusal := item.refusal or self._past_caps(item, state.fed)):
            self.issues.append(self._size_issue("HEAD", "报文头", element.sourceline, *refusal))
            return
        if (found := self._long_text(element)) is not None:
            raise _TextTooLarge(found[1])
        fields, issues = check_head(element, self._catalog, latest)
        self.issues.extend(i.located(file=self.name) for i in issues)
        self.head = Head(fields, self._catalog.version, element.sourceline)
        state.head_division = fields.get("XZQHDM")

    def _unknown_before(self, element: etree._Element, state: _Walk) -> Iterator[RecordCheck]:
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

    def _finish(self, root: etree._Element, state: _Walk) -> Iterator[RecordCheck]:
        sections = [child for child in root if isinstance(child.tag, str)]
        bodies = [child for child in sections if child.tag == state.body_tag]
        for child in sections:
            if child.tag == state.body_tag:
                for unknown in list(child):
                    yield self._unknown(unknown)
                state.note_text(stray_text(child), "BODY", child.sourceline)
            if child is not (bodies[0] if bodies else None) and (
                child.tag != state.head_tag or child is not sections[0]
            ):
                self.issues.append(
                    Issue(
                        IssueCode.UNEXPECTED_FIELD,
                        "misplaced-element",
                        {"found": etree.QName(child).localname},
                        None,
                        etree.QName(child).localname,
                        self.name,
                        child.sourceline,
                    )
                )
        if not state.head_seen:
            self.issues.append(
                Issue(
                    IssueCode.MISSING_FIELD,
                    "missing-head",
                    {},
                    None,
                    "HEAD",
                    self.name,
                    root.sourceline,
                )
            )
        if not bodies:
            self._envelope_issue(IssueCode.MISSING_FIELD, "missing-body", "BODY", root.sourceline)
        self._check_envelope(root, state)
        declared = self.head.count if self.head else None
        if declared is not None and declared != self.records:
            line = self.head.line if self.head else None
            self.issues.append(
                Issue(
                    IssueCode.COUNT_MISMATCH,
                    "count-mismatch",
                    {"declared": declared, "actual": self.records},
                    "HEAD",
                    "COUNT",
                    self.name,
                    line,
                )
            )

    def _check_envelope(self, root: etree._Element, state: _Walk) -> None:
        """EXCHANGE carries only ``version`` (and ``xsi:*``), and no text beside its parts."""
        for name in root.attrib:
            qname = etree.QName(name)
            if name != "version" and qname.namespace != _XSI:
                self._envelope_issue(
                    IssueCode.UNEXPECTED_FIELD,
                    "root-attribute",
                    None,
                    root.sourceline,
                    attribute=qname.localname,
                )
        state.note_text(stray_text(root), "EXCHANGE", root.sourceline)
        if state.stray is not None:
            line, where, text = state.stray
            self._envelope_issue(
                IssueCode.UNEXPECTED_FIELD, "stray-text", None, line, where=where, value=text
            )

    def _envelope_issue(
        self, code: IssueCode, message_id: str, field: str | None, line: int | None, **args: object
    ) -> None:
        self.issues.append(Issue(code, message_id, dict(args), None, field, self.name, line))

    def _long_text(self, element: etree._Element) -> tuple[str | None, int | None] | None:
        """The field and line of the first text in ``element``, at any depth, over the
        text cap (``element``'s own tail is its parent's)."""
        limit = self.limits.max_text_bytes
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

    def _long_scanned_text(self, scanned: ScannedRecord) -> tuple[str | None, int | None] | None:
        limit = self.limits.max_text_bytes
        longest = next((c for c, v in scanned.fields.items() if len(v) > limit), None)
        return None if longest is None else (longest, scanned.field_lines()[longest])

    def _syntax_error(self, exc: etree.XMLSyntaxError) -> None:
        text_limit = min(self.limits.max_text_bytes, LIBXML_TEXT_LIMIT)
        self.issues.append(syntax_issue(exc, self.source, self.name, text_limit))
        self.fatal = True


_HARDENED = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def _trim(element: etree._Element) -> None:
    """Free what lxml built of ``element`` but the path to where it is parsing.

    Only the last child can still be open, and only its tail can be the text libxml2
    is appending to: all else is complete, and may be freed under the parser.
    """
    node = element
    while len(node):
        del node[:-1]
        node.text = None  # before a child, so complete
        node = node[0]


@dataclass(slots=True)
class _Item:
    """The record (or HEAD) lxml is parsing: what it may grow to, and its refusal."""

    element: etree._Element
    max_elements: int
    fed_at_start: int  # bytes fed to lxml when its start tag was seen
    refusal: tuple[str, dict[str, object]] | None = None  # message id and arguments


@dataclass
class _Walk:
    """What the parse has seen so far within one document."""

    body_tag: str
    head_tag: str
    record_tags: frozenset[str]
    max_elements: dict[str, int]  # by tag: how many elements a record or HEAD may hold
    head_seen: bool = False
    body_starts: int = 0
    body: etree._Element | None = None  # the first BODY
    item: _Item | None = None  # the record or HEAD lxml is inside, once its start is seen
    fed: int = 0  # bytes fed to lxml
    next_measure: int = _SLICE  # when ``fed`` reaches it, the item is measured again
    # The tag of lxml's last event when it left the parser at record level: the start
    # of the first BODY or the end of a record of BODY. The scanner asks for it.
    level: str | None = None
    record_ends: int = 0  # end events of record tags (nested ones too) drained so far
    pending: etree._Element | None = None  # the last record lxml checked, tail unjudged
    head_division: str | None = None
    seen: dict[int, int] = field(default_factory=dict)
    stray: tuple[int | None, str, str] | None = None  # the first text outside the records

    def at_level(self, tag: str, record_ends: int) -> bool:
        """Whether lxml's last event left it at record level after ``tag``, having
        ended exactly the ``record_ends`` record tags the scanner fed it: an end tag
        lxml gave no event for (another namespace, a stalled parse) means it is not."""
        return self.level == tag and self.record_ends == record_ends

    def note_text(self, text: str | None, where: str, line: int | None) -> None:
        if self.stray is None and (visible := visible_text(text)) is not None:
            self.stray = (line, where, visible)

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


class _Counting(io.RawIOBase):
    """A read-only stream that reports how many bytes the parser has consumed."""

    def __init__(self, inner: BinaryIO, on_bytes: Callable[[int], None]):
        super().__init__()
        self._inner, self._on_bytes = inner, on_bytes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self._on_bytes(len(data))
        return data

    def close(self) -> None:
        self._inner.close()
        super().close()


class _TextTooLarge(Exception):
    def __init__(self, line: int | None):
        self.line = line

"""Reading an exchange document record by record, with a hardened parser.

The reader streams: each record is validated when its end tag is parsed, then freed,
so memory stays flat however large the file. Untrusted input cannot reach the network
or the file system (no DTD, no entities, no network) and is capped in size.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from schemas.body_scan import BodyScanner, ScannedRecord
from schemas.catalog import ElementSpec, SchemaCatalog, catalog_for_namespace, known_namespaces
from schemas.issues import Issue, IssueCode
from schemas.parse_errors import LIBXML_TEXT_LIMIT, PROLOG_BYTES, syntax_issue
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


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps for untrusted input; both are configurable per deployment."""

    max_file_bytes: int = 4 * 1024**3
    max_text_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.max_text_bytes <= LIBXML_TEXT_LIMIT:
            raise ValueError(f"max_text_bytes must be 1..{LIBXML_TEXT_LIMIT}")


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
        if not self._read_root():
            return
        assert self._catalog is not None
        catalog = self._catalog
        # Events only for HEAD, BODY and the 14 record tags: filtering in C rather than
        # seeing every field in Python makes the parse about 2.5x faster.
        wanted = [catalog.tag(code) for code in ("HEAD", "BODY", *catalog.elements)]
        parser = etree.XMLPullParser(events=("start", "end"), tag=wanted, **_HARDENED)
        latest = (self.now or datetime.now(BEIJING)) + timedelta(days=1)
        state = _Walk(
            body_tag=catalog.tag("BODY"),
            head_tag=catalog.tag("HEAD"),
            record_tags=frozenset(catalog.tag(code) for code in catalog.elements),
        )
        scanner = BodyScanner(stream, catalog, self._head_bytes(PROLOG_BYTES), state.at_level)
        try:
            for piece in scanner:
                if isinstance(piece, ScannedRecord):
                    yield self._scanned(piece, latest, state)
                else:
                    parser.feed(piece)
                    yield from self._events(parser.read_events(), latest, state)
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
            elif parent.tag == state.body_tag and element.tag != state.head_tag:
                if element.getprevious() is not None:
                    yield from self._unknown_before(element, state)
                yield self._record(element, latest, state)
                state.level = element.tag
            elif element.tag == state.head_tag and parent.getparent() is None:
                self._head(element, state)

    def _read_root(self) -> bool:
        """Read only the prolog and the root's start tag, and judge them.

        A DOCTYPE, a foreign root or an unknown version stops the file here, before
        the main pass reads a single record.
        """
        parser = etree.XMLPullParser(events=("start",), **_HARDENED)
        try:
            with self._open_raw() as raw:
                while chunk := raw.read(65536):
                    parser.feed(chunk)
                    for _event, root in parser.read_events():
                        return self._accept_root(root)
                parser.close()
        except etree.XMLSyntaxError as exc:
            self._syntax_error(exc)
            return False
        return self._fail(IssueCode.MALFORMED_XML, "malformed-xml", detail="no root element")

    def _accept_root(self, root: etree._Element) -> bool:
        docinfo = root.getroottree().docinfo
        if docinfo.internalDTD is not None or docinfo.doctype or docinfo.system_url:
            return self._fail(
                IssueCode.FORBIDDEN_DTD,
                "forbidden-dtd",
                line=1,
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
        result = check_record(element, spec, self._catalog, state.head_division, latest)
        result = self._conclude(result, spec, state, lambda: self._check_subtree_text(element))
        state.pending = element  # its tail may not be parsed yet: settled at the next event
        return result

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
        return self._conclude(result, spec, state, lambda: self._check_scanned_text(scanned))

    def _conclude(
        self,
        result: RecordCheck,
        spec: ElementSpec,
        state: _Walk,
        check_text: Callable[[], None],
    ) -> RecordCheck:
        """Count one record and give its final verdict, with the file's name on issues."""
        self.records += 1
        if result.record is not None and self.node_division is not None:
            result = outside_node(result, spec, self.node_division)
        if result.record is not None:
            result = state.deduplicate(result, self.name)
        else:
            check_text()  # the XSD refuses any text this long anyway
        if result.record is not None:
            self.valid += 1
            return result
        return RecordCheck(
            result.element,
            result.line,
            None,
            tuple(i.located(file=self.name) for i in result.issues),
        )

    def _head(self, element: etree._Element, state: _Walk) -> None:
        assert self._catalog is not None
        if state.head_seen:
            return  # a second HEAD is reported by _finish as a misplaced element
        state.head_seen = True
        self._check_subtree_text(element)
        fields, issues = check_head(element, self._catalog)
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

    def _check_text(self, element: etree._Element) -> None:
        text = element.text
        if text is not None and len(text) > self.limits.max_text_bytes:
            raise _TextTooLarge(element.sourceline)

    def _check_subtree_text(self, element: etree._Element) -> None:
        for child in element:
            self._check_text(child)

    def _check_scanned_text(self, scanned: ScannedRecord) -> None:
        limit = self.limits.max_text_bytes
        if any(len(value) > limit for value in scanned.fields.values()):
            lines = scanned.field_lines()
            longest = next(c for c, v in scanned.fields.items() if len(v) > limit)
            raise _TextTooLarge(lines[longest])

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


@dataclass
class _Walk:
    """What the parse has seen so far within one document."""

    body_tag: str
    head_tag: str
    record_tags: frozenset[str]
    head_seen: bool = False
    body_starts: int = 0
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

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

from schemas.catalog import SchemaCatalog, catalog_for_namespace, known_namespaces
from schemas.columns import locate_undecodable
from schemas.issues import Issue, IssueCode
from schemas.record_check import RecordCheck, check_head, check_record
from schemas.records import Head
from schemas.times import BEIJING

__all__ = ["DocumentReader", "Limits"]

_LIBXML_TEXT_LIMIT = 10_000_000  # libxml2's own cap without XML_PARSE_HUGE


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps for untrusted input; both are configurable per deployment."""

    max_file_bytes: int = 4 * 1024**3
    max_text_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.max_text_bytes <= _LIBXML_TEXT_LIMIT:
            raise ValueError(f"max_text_bytes must be 1..{_LIBXML_TEXT_LIMIT}")


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

    @property
    def catalog(self) -> SchemaCatalog | None:
        return self._catalog

    # -- checks before parsing --------------------------------------------------------

    def _precheck(self) -> bool:
        self._catalog: SchemaCatalog | None = None
        size = len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size
        if size > self.limits.max_file_bytes:
            return self._fail(IssueCode.FILE_TOO_LARGE, "file-too-large",
                              size=size, limit=self.limits.max_file_bytes)
        if size == 0 or (size <= 4096 and not self._head_bytes(4096).strip()):
            return self._fail(IssueCode.EMPTY_FILE, "empty-file")
        return True

    def _head_bytes(self, count: int) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[:count]
        with self.source.open("rb") as handle:
            return handle.read(count)

    def _open(self) -> BinaryIO:
        stream: BinaryIO = (io.BytesIO(self.source) if isinstance(self.source, bytes)
                            else self.source.open("rb"))
        return stream if self.on_bytes is None else _Counting(stream, self.on_bytes)

    def _fail(self, code: IssueCode, message_id: str, line: int | None = None,
              column: int | None = None, **args: object) -> bool:
        self.issues.append(Issue(code, message_id, dict(args), file=self.name, line=line,
                                 column=column))
        self.fatal = True
        return False

    # -- streaming parse -----------------------------------------------------------------

    def _parse(self, stream: BinaryIO) -> Iterator[RecordCheck]:
        etree.clear_error_log()  # else an earlier document's errors leak into this one's
        events = etree.iterparse(
            stream, events=("start", "end"), resolve_entities=False, no_network=True,
            load_dtd=False, dtd_validation=False, huge_tree=False, remove_comments=True,
            remove_pis=True, recover=False,
        )
        latest = (self.now or datetime.now(BEIJING)) + timedelta(days=1)
        state = _Walk()
        try:
            for event, element in events:
                if event == "start":
                    if state.depth == 0 and not self._accept_root(element):
                        return
                    if state.depth == 1:
                        state.section = etree.QName(element).localname
                    state.depth += 1
                    continue
                state.depth -= 1
                if state.depth == 2 and state.section == "BODY":
                    yield self._record(element, latest, state)
                elif state.depth == 1:
                    self._envelope_child(element, state)
                elif state.depth == 0:
                    self._finish(state)
        except _TextTooLarge as exc:
            self._fail(IssueCode.FILE_TOO_LARGE, "text-too-large", line=exc.line,
                       limit=self.limits.max_text_bytes)
        except etree.XMLSyntaxError as exc:
            self._syntax_error(exc)

    def _tag(self, local: str) -> str:
        assert self._catalog is not None
        return self._catalog.tag(local)

    def _accept_root(self, root: etree._Element) -> bool:
        docinfo = root.getroottree().docinfo
        if docinfo.internalDTD is not None or docinfo.doctype or docinfo.system_url:
            return self._fail(IssueCode.FORBIDDEN_DTD, "forbidden-dtd", line=1,
                              detail=docinfo.doctype or "DOCTYPE")
        qname = etree.QName(root)
        if qname.localname != "EXCHANGE" or not (qname.namespace or "").startswith("urn:exgate:exchange:"):
            return self._fail(IssueCode.WRONG_ROOT, "wrong-root", line=root.sourceline,
                              found=root.tag)
        catalog = catalog_for_namespace(qname.namespace or "")
        known = ", ".join(known_namespaces())
        if catalog is None:
            return self._fail(IssueCode.UNKNOWN_SCHEMA_VERSION, "unknown-schema-version",
                              line=root.sourceline, found=qname.namespace, known=known)
        if self.schema_version is not None and catalog.version != self.schema_version:
            return self._fail(IssueCode.UNKNOWN_SCHEMA_VERSION, "version-not-requested",
                              line=root.sourceline, found=catalog.version,
                              expected=self.schema_version)
        declared = root.get("version")
        if declared != str(catalog.version):
            return self._fail(IssueCode.UNKNOWN_SCHEMA_VERSION, "version-attribute",
                              line=root.sourceline, found=declared, expected=catalog.version)
        self._catalog = catalog
        return True

    def _record(self, element: etree._Element, latest: datetime, state: _Walk) -> RecordCheck:
        assert self._catalog is not None
        qname = etree.QName(element)
        spec = self._catalog.elements.get(qname.localname)
        self.records += 1
        if spec is None or qname.namespace != self._catalog.namespace:
            issue = Issue(IssueCode.UNKNOWN_ELEMENT, "unknown-element", {"found": qname.localname},
                          qname.localname, None, self.name, element.sourceline)
            result = RecordCheck(qname.localname, element.sourceline, None, (issue,))
        else:
            self._check_subtree_text(element)
            result = check_record(element, spec, self._catalog, state.head_division, latest)
            result = state.deduplicate(result, self.name)
        if result.valid:
            self.valid += 1
        else:
            result = RecordCheck(result.element, result.line, None,
                                 tuple(i.located(file=self.name) for i in result.issues))
        _release(element)
        return result

    def _envelope_child(self, element: etree._Element, state: _Walk) -> None:
        assert self._catalog is not None
        name = etree.QName(element).localname
        if name == "HEAD" and state.head_seen is False:
            state.head_seen = True
            self._check_subtree_text(element)
            fields, issues = check_head(element, self._catalog)
            self.issues.extend(i.located(file=self.name) for i in issues)
            self.head = Head(fields, self._catalog.version, element.sourceline)
            state.head_division = fields.get("XZQHDM")
        elif name != "BODY":
            self.issues.append(Issue(IssueCode.UNEXPECTED_FIELD, "misplaced-element",
                                     {"found": name}, None, name, self.name, element.sourceline))
        _release(element)

    def _finish(self, state: _Walk) -> None:
        if not state.head_seen:
            self.issues.append(Issue(IssueCode.MISSING_FIELD, "missing-head", {}, None, "HEAD",
                                     self.name, 1))
        declared = self.head.count if self.head else None
        if declared is not None and declared != self.records:
            line = self.head.line if self.head else None
            self.issues.append(Issue(IssueCode.COUNT_MISMATCH, "count-mismatch",
                                     {"declared": declared, "actual": self.records},
                                     "HEAD", "COUNT", self.name, line))

    def _check_text(self, element: etree._Element) -> None:
        text = element.text
        if text is not None and len(text) > self.limits.max_text_bytes:
            raise _TextTooLarge(element.sourceline)

    def _check_subtree_text(self, element: etree._Element) -> None:
        for child in element:
            self._check_text(child)

    def _syntax_error(self, exc: etree.XMLSyntaxError) -> None:
        # The first logged error is the cause; exc.position is (0, 0) for some errors.
        # Per-record XSD checks log into the same list: keep only the parser's own.
        located = [entry for entry in exc.error_log
                   if entry.line > 0 and entry.domain != etree.ErrorDomains.SCHEMASV]
        first = located[0] if located else exc.error_log.last_error
        kind = first.type_name if first is not None else ""
        line = first.line if first is not None and first.line > 0 else None
        column = first.column if first is not None and first.line > 0 else None
        detail = (first.message if first is not None else exc.msg or "").split(", line ")[0]
        if kind in _ENCODING_ERRORS:
            encoding = _declared_encoding(self._head_bytes(200))
            line, column = locate_undecodable(self.source, encoding) or (line, column)
            self._fail(IssueCode.ENCODING_ERROR, "encoding-error", line, column,
                       encoding=encoding, detail=detail)
        elif kind in _ENTITY_ERRORS:
            self._fail(IssueCode.FORBIDDEN_DTD, "forbidden-dtd", line, column, detail=detail)
        elif kind == "ERR_RESOURCE_LIMIT" and "text" in detail.lower():
            self._fail(IssueCode.FILE_TOO_LARGE, "text-too-large", line, column,
                       limit=min(self.limits.max_text_bytes, _LIBXML_TEXT_LIMIT))
        elif kind == "ERR_RESOURCE_LIMIT":
            self._fail(IssueCode.MALFORMED_XML, "too-deep", line, column, detail=detail)
        else:
            self._fail(IssueCode.MALFORMED_XML, "malformed-xml", line, column, detail=detail)


_ENCODING_ERRORS = frozenset({"ERR_INVALID_ENCODING", "ERR_UNSUPPORTED_ENCODING",
                              "ERR_UNKNOWN_ENCODING"})
_ENTITY_ERRORS = frozenset({"ERR_UNDECLARED_ENTITY", "WAR_UNDECLARED_ENTITY",
                            "ERR_ENTITY_PE_INTERNAL", "ERR_ENTITYREF_NO_NAME"})


@dataclass
class _Walk:
    """Where the parse is, and what it has seen, within one document."""

    depth: int = 0
    section: str = ""
    head_seen: bool = False
    head_division: str | None = None
    seen: dict[int, tuple[int, int]] = field(default_factory=dict)

    def deduplicate(self, result: RecordCheck, file: str) -> RecordCheck:
        """Flag a second record with the same key and version but other content.

        Only two small ints are kept per record (key hash → content hash, line), so
        memory grows by about 100 bytes a record, not by the record's size.
        """
        record = result.record
        if record is None:
            return result
        key_hash = hash((record.element, record.key, record.version))
        content = hash(tuple(sorted(record.fields.items())))
        first = self.seen.get(key_hash)
        if first is None:
            self.seen[key_hash] = (content, record.line or 0)
            return result
        if first[0] == content:
            return result
        issue = Issue(IssueCode.DUPLICATE_RECORD, "duplicate-record",
                      {"element": record.element, "key": record.key_text,
                       "version": record.version, "first_line": first[1]},
                      record.element, None, file, record.line)
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


def _release(element: etree._Element) -> None:
    """Free a processed element and any siblings before it, keeping memory flat."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _declared_encoding(prolog: bytes) -> str:
    if prolog.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    marker = prolog.find(b"encoding=")
    if marker < 0:
        return "UTF-8"
    rest = prolog[marker + 9:]
    quote = rest[:1]
    end = rest.find(quote, 1)
    return rest[1:end].decode("ascii", "replace") if end > 0 else "UTF-8"

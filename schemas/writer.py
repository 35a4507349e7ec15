"""Writing exchange documents, streaming, in any encoding a legacy system expects.

``DocumentWriter`` writes through lxml's incremental ``etree.xmlfile``: a record is
serialised as soon as it is written, so a 1 GB document never sits in memory. Fields
are written in catalogue order, one per line (or one record per line), and the writer
counts lines as it goes so callers (the sample generator, error reports) know where
every record and field landed.

The default path refuses content the XSD would reject structurally (unknown elements
or fields, missing required fields). Writing invalid content on purpose, for defect
injection, goes through the separate ``write_unchecked``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from lxml import etree

from schemas.catalog import ElementSpec, SchemaCatalog, load_catalog
from schemas.records import Record
from schemas.times import BEIJING, format_time
from schemas.xml_text import NOT_XML, is_plain_text

__all__ = [
    "DocumentWriter", "Layout", "RecordLike", "WrittenRecord", "document_bytes", "record_xml",
    "utf8_document",
]

RecordLike = Record | tuple[str, Mapping[str, str]]
_PART_SUFFIX = ".part"


class Layout(StrEnum):
    """How records are laid out: one field per line, or one record per line."""

    INDENTED = "indented"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    """Where a record landed: its start line and each field's line (1-based).

    For a field written twice (defect injection) the line of the last copy is kept.
    """

    element: str
    line: int
    field_lines: Mapping[str, int]


class DocumentWriter:
    """Stream one exchange document to a path or a binary stream.

    Example::

        with DocumentWriter(path, {"XZQHDM": "430100", "TYSHXYDM": code}) as writer:
            writer.write(("SBXX", fields))

    A path is written under a ``.part`` name and renamed into place on success, so a
    drop-folder watcher never sees half a file; on an exception the part is removed.
    ``CREATED`` defaults to the current Beijing time when the head leaves it out.
    """

    def __init__(
        self,
        target: Path | str | BinaryIO,
        head: Mapping[str, str],
        *,
        encoding: str = "UTF-8",
        layout: Layout = Layout.INDENTED,
        catalog: SchemaCatalog | None = None,
    ) -> None:
        self.catalog = catalog or load_catalog()
        self.encoding = encoding
        self.layout = Layout(layout)
        self.records = 0
        self.line = 1
        self._head = _head_fields(head, self.catalog)
        self._target = target
        self._stack = contextlib.ExitStack()
        self._xf: etree._IncrementalFileWriter | None = None
        self._part: Path | None = None
        self._tags = {name: self.catalog.tag(name) for name in _local_names(self.catalog)}
        self._body: contextlib.AbstractContextManager[object] | None = None

    # -- context management -------------------------------------------------------------

    def __enter__(self) -> DocumentWriter:
        try:
            stream = self._open_target()
            xf = self._stack.enter_context(etree.xmlfile(stream, encoding=self.encoding))
            xf.write_declaration()
            self.line = 2  # lxml ends the declaration with a newline
            self._stack.enter_context(xf.element(
                self._tag("EXCHANGE"), nsmap={None: self.catalog.namespace},
                attrib={"version": str(self.catalog.version)},
            ))
            self._xf = xf
            self._write_head()
            self._space("\n  ")
            body = xf.element(self._tag("BODY"))
            body.__enter__()
            self._body = body
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._space("\n  ")  # before </BODY>
            assert self._body is not None
            self._body.__exit__(None, None, None)
            self._body = None
            self._space("\n")  # before </EXCHANGE>
            self._stack.close()  # </EXCHANGE>, flush, close the file
        except BaseException:
            self._abort()  # e.g. a full disk: no half-written part is left behind
            raise
        if self._part is not None:
            os.replace(self._part, self._final_path())

    def _open_target(self) -> BinaryIO:
        if isinstance(self._target, (str, Path)):
            final = self._final_path()
            self._part = final.with_name(final.name + _PART_SUFFIX)
            return self._stack.enter_context(self._part.open("wb"))
        return self._target

    def _final_path(self) -> Path:
        assert isinstance(self._target, (str, Path))
        return Path(self._target)

    def _abort(self) -> None:
        # Closing lxml's contexts after a failure may raise again; the first error wins.
        with contextlib.suppress(Exception):
            self._stack.close()
        if self._part is not None:
            self._part.unlink(missing_ok=True)

    # -- writing --------------------------------------------------------------------------

    def write(self, record: RecordLike) -> WrittenRecord:
        """Write one record, fields in catalogue order; refuse unknown or missing fields.

        Empty or ``None`` values are left out, as the format allows for optional fields.
        """
        return self.write_unchecked(*_present_fields(record, self.catalog))

    def write_many(self, records: Iterable[RecordLike]) -> int:
        """Write every record; return how many were written."""
        count = 0
        for record in records:
            self.write(record)
            count += 1
        return count

    def write_unchecked(self, element: str, fields: Iterable[tuple[str, str]]) -> WrittenRecord:
        """Write exactly these fields in this order, unchecked: the defect-injection path.

        Names are local names in the document's namespace; values are written as text.
        """
        xf = self._writer()
        write, tags = xf.write, self._tags
        indented = self.layout is Layout.INDENTED
        write("\n    ")
        line = start = self.line + 1
        lines: dict[str, int] = {}
        # The hot loop of big files: local names and literal indents, no helper calls.
        with xf.element(tags.get(element) or self._tag(element)):
            for name, value in fields:
                if indented:
                    write("\n      ")
                    line += 1
                lines[name] = line
                with xf.element(tags.get(name) or self._tag(name)):
                    write(value)
                if "\n" in value:
                    line += value.count("\n")
            if indented:
                write("\n    ")
                line += 1
        self.line = line
        self.records += 1
        return WrittenRecord(element, start, lines)

    def _write_head(self) -> None:
        xf = self._writer()
        self._space("\n  ")
        with xf.element(self._tag("HEAD")):
            for name, value in self._head.items():
                self._space("\n    ")
                with xf.element(self._tag(name)):
                    xf.write(value)
            self._space("\n  ")

    def _space(self, text: str) -> None:
        self._writer().write(text)
        self.line += text.count("\n")

    def _writer(self) -> etree._IncrementalFileWriter:
        if self._xf is None:
            raise RuntimeError("DocumentWriter must be used as a context manager")
        return self._xf

    def _tag(self, local: str) -> str:
        tag = self._tags.get(local)
        if tag is None:
            tag = self._tags[local] = self.catalog.tag(local)
        return tag


def document_bytes(
    head_fields: Mapping[str, str],
    records: Iterable[RecordLike],
    *,
    encoding: str = "UTF-8",
    layout: Layout = Layout.INDENTED,
) -> bytes:
    """A whole document in memory, for small batches (relays, tests, exports).

    UTF-8, the relay's encoding, is written from string templates: byte for byte what
    ``DocumentWriter`` writes (a test compares them), at a fraction of the cost of
    lxml's per-element contexts, which the agent would otherwise pay for every record
    it journals (``record_xml``). Other encodings go through ``DocumentWriter``.
    """
    if encoding == "UTF-8":
        catalog, layout = load_catalog(), Layout(layout)
        return utf8_document(head_fields, [record_xml(r, layout, catalog) for r in records],
                             catalog)
    buffer = io.BytesIO()
    with DocumentWriter(buffer, head_fields, encoding=encoding, layout=layout) as writer:
        writer.write_many(records)
    return buffer.getvalue()


def record_xml(
    record: RecordLike, layout: Layout = Layout.INDENTED, catalog: SchemaCatalog | None = None
) -> str:
    """One record as it stands in the BODY of a UTF-8 document, its leading line break
    and indentation included: ``utf8_document`` joins these as they are.

    Refuses what ``DocumentWriter.write`` refuses (see ``_present_fields``).
    """
    catalog = catalog or load_catalog()
    filled = _filled(record, layout, catalog)
    if filled is not None:
        return filled
    opening, closing = _edges(layout)
    element, fields = _present_fields(record, catalog)
    # One test over the whole record: most records need no escaping at all.
    if not is_plain_text("".join([v for _, v in fields])):
        fields = [(n, _escaped(v)) for n, v in fields]
    body = "".join([f"{opening}{name}>{value}</{name}>" for name, value in fields])
    return f"\n    <{element}>{body}{closing}{element}>"


# A record's shape: its element's spec (by id: catalogues live for the process), its
# field names in its own order, and whether the layout is indented.
_Shape = tuple[int, tuple[str, ...], bool]
# Per shape, the spec (kept alive, so its id stays its own), the record as a %-template
# and the names that fill it, in catalogue order; None for a shape _present_fields refuses.
_Form = tuple[ElementSpec, str, tuple[str, ...]] | None
_FORMS: dict[_Shape, _Form] = {}
_FORMS_KEPT = 1024  # a source's records come in a few shapes; past this many, no template


def _filled(record: RecordLike, layout: Layout, catalog: SchemaCatalog) -> str | None:
    """``record_xml``'s text from its shape's template; None when the field-by-field path
    must write it: a shape it refuses or that has no template, an empty value, text to
    escape. Filling a template costs a fraction of presenting, checking and writing the
    same record field by field, once per record of every source."""
    element, fields = _unpack(record)
    spec = catalog.elements.get(element)
    if spec is None:
        return None
    # Keyed on what the template depends on: "indented" equals Layout.INDENTED (a
    # StrEnum) and hashes alike, yet only the member is written indented.
    shape = (id(spec), tuple(fields), layout is Layout.INDENTED)
    form = _FORMS.get(shape)
    if form is None:
        if shape in _FORMS or len(_FORMS) >= _FORMS_KEPT:
            return None
        form = _FORMS[shape] = _form(spec, shape[1], layout)
        if form is None:
            return None
    values = tuple(map(fields.__getitem__, form[2]))
    # An empty value is left out of the record; str() of each value (what %s writes) is
    # the text, which is written as it is only when none needs escaping.
    if not all(values) or not is_plain_text(("%s" * len(values)) % values):
        return None
    return form[1] % values


def _form(spec: ElementSpec, names: tuple[str, ...], layout: Layout) -> _Form:
    """The template of records whose fields are ``names`` (their values all present)."""
    if not set(names) <= spec.fields.keys() or not set(spec.required_fields) <= set(names):
        return None
    ordered = tuple(code for code in spec.field_codes if code in names)
    opening, closing = _edges(layout)
    # Element and field names are XML names, which never hold a "%".
    body = "".join(f"{opening}{name}>%s</{name}>" for name in ordered)
    return spec, f"\n    <{spec.code}>{body}{closing}{spec.code}>", ordered


def _edges(layout: Layout) -> tuple[str, str]:
    """What comes before each field's start tag, and before the record's end tag."""
    return ("\n      <", "\n    </") if layout is Layout.INDENTED else ("<", "</")


def utf8_document(
    head_fields: Mapping[str, str],
    records: Iterable[str],
    catalog: SchemaCatalog | None = None,
) -> bytes:
    """A UTF-8 document around records already written by ``record_xml``."""
    catalog = catalog or load_catalog()
    head = "".join(f"\n    <{n}>{_escaped(v)}</{n}>"
                   for n, v in _head_fields(head_fields, catalog).items())
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>\n",
        f'<EXCHANGE xmlns="{catalog.namespace}" version="{catalog.version}">',
        f"\n  <HEAD>{head}\n  </HEAD>\n  <BODY>",
        *records,
        "\n  </BODY>\n</EXCHANGE>",
    ]
    return "".join(parts).encode()


def _present_fields(
    record: RecordLike, catalog: SchemaCatalog
) -> tuple[str, list[tuple[str, str]]]:
    """The element and its non-empty fields in catalogue order, as text.

    Refuses an unknown element, an unknown field or a missing required one.
    """
    element, fields = _unpack(record)
    spec = catalog.elements.get(element)
    if spec is None:
        known = ", ".join(catalog.elements)
        raise ValueError(f"unknown element {element!r}; expected one of {known}")
    if not fields.keys() <= spec.fields.keys():
        unknown = [name for name in fields if name not in spec.fields]
        raise ValueError(f"{element} has no field(s) {', '.join(unknown)}; "
                         "use write_unchecked() to inject defects on purpose")
    present = [(n, str(v)) for n in spec.field_codes
               if (v := fields.get(n)) is not None and v != ""]
    if len(present) < len(spec.required_fields):
        names = {n for n, _ in present}
        missing = [name for name in spec.required_fields if name not in names]
        if missing:
            raise ValueError(f"{element} lacks required field(s) {', '.join(missing)}")
    return element, present


def _escaped(text: str) -> str:
    """Text content as lxml writes it in UTF-8; a character XML cannot carry is refused."""
    if is_plain_text(text):
        return text
    if (bad := NOT_XML.search(text)) is not None:
        raise ValueError(f"All strings must be XML compatible: {bad.group()!r} in {text!r}")
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def _local_names(catalog: SchemaCatalog) -> set[str]:
    names = {"EXCHANGE", "HEAD", "BODY", *catalog.head}
    for spec in catalog.elements.values():
        names.add(spec.code)
        names.update(spec.fields)
    return names


def _unpack(record: RecordLike) -> tuple[str, Mapping[str, str]]:
    if isinstance(record, Record):
        return record.element, record.fields
    element, fields = record
    return element, fields


def _head_fields(head: Mapping[str, str], catalog: SchemaCatalog) -> dict[str, str]:
    unknown = [name for name in head if name not in catalog.head]
    if unknown:
        raise ValueError(f"HEAD has no field(s) {', '.join(unknown)}; "
                         f"expected {', '.join(catalog.head)}")
    values = {k: str(v) for k, v in head.items() if v is not None and v != ""}
    values.setdefault("CREATED", format_time(datetime.now(BEIJING)))
    missing = [n for n, spec in catalog.head.items() if spec.required and n not in values]
    if missing:
        raise ValueError(f"HEAD lacks required field(s) {', '.join(missing)}")
    return {name: values[name] for name in catalog.head if name in values}


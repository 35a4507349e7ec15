"""The reader's pre-pass: the prolog and the root's start tag, judged before any record.

A DOCTYPE (located to its line and column), a root that is not an exchange document, a
schema version that is not known or not the one asked for, or a ``version`` attribute
that does not match the namespace stops the file here. Apart from ``DocumentReader``
because it is a parse of its own, with its own parser, over the prolog alone: it
decides which schema catalog the main pass reads the records with.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

from lxml import etree

from schemas.body_scan import split_at_undecodable
from schemas.catalog import SchemaCatalog, catalog_for_namespace, known_namespaces
from schemas.columns import locate_doctype
from schemas.issues import Issue, IssueCode
from schemas.parse_errors import declared_encoding
from schemas.reader_source import open_raw

__all__ = ["read_root"]

_FIRST_READ = 4096


def read_root(
    source: Path | bytes,
    name: str,
    prolog: bytes,
    options: Mapping[str, Any],
    schema_version: int | None,
) -> SchemaCatalog | Issue:
    """Read only the prolog and the root's start tag, and judge them: the catalog of
    the root's schema, or the issue that stops the file.

    A DOCTYPE, a foreign root or an unknown version stops the file here, before
    the main pass reads a single record. Raises ``XMLSyntaxError`` when the document
    breaks before the root's start tag is read.
    """
    accept = partial(
        _accept_root, source=source, name=name, prolog=prolog, schema_version=schema_version
    )
    parser = etree.XMLPullParser(events=("start",), **options)
    try:
        with open_raw(source) as raw:
            # The pull parser builds a tree of all it is fed, and the start tag sits near
            # the top: a small first read spares building records nobody asked for yet.
            first = raw.read(_FIRST_READ)
            chunks = chain([first] if first else [], iter(partial(raw.read, 65536), b""))
            for chunk in split_at_undecodable(chunks, declared_encoding(prolog)):
                parser.feed(chunk)
                for _event, root in parser.read_events():
                    return accept(root)
            parser.close()
    except etree.XMLSyntaxError:
        # Fed with the root's start tag, the error may lie anywhere after it: past
        # the root, the main pass reports it in its place, after the records before.
        for _event, root in parser.read_events():
            return accept(root)
        raise
    return Issue(
        IssueCode.MALFORMED_XML, "malformed-xml", {"detail": "no root element"}, file=name
    )


def _accept_root(
    root: etree._Element,
    *,
    source: Path | bytes,
    name: str,
    prolog: bytes,
    schema_version: int | None,
) -> SchemaCatalog | Issue:
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.doctype or docinfo.system_url:
        spot = locate_doctype(source, declared_encoding(prolog) or "UTF-8")
        line, column = spot or (None, None)
        return Issue(
            IssueCode.FORBIDDEN_DTD,
            "forbidden-dtd",
            {"detail": docinfo.doctype or "DOCTYPE"},
            file=name,
            line=line,
            column=column,
        )
    qname = etree.QName(root)
    if qname.localname != "EXCHANGE" or not (qname.namespace or "").startswith(
        "urn:exgate:exchange:"
    ):
        return Issue(
            IssueCode.WRONG_ROOT, "wrong-root", {"found": root.tag}, file=name, line=root.sourceline
        )
    catalog = catalog_for_namespace(qname.namespace or "")
    known = ", ".join(known_namespaces())
    if catalog is None:
        return Issue(
            IssueCode.UNKNOWN_SCHEMA_VERSION, "unknown-schema-version",
            {"found": qname.namespace, "known": known}, file=name, line=root.sourceline,
        )
    if schema_version is not None and catalog.version != schema_version:
        return Issue(
            IssueCode.UNKNOWN_SCHEMA_VERSION, "version-not-requested",
            {"found": catalog.version, "expected": schema_version}, file=name,
            line=root.sourceline,
        )
    declared = root.get("version")
    if declared != str(catalog.version):
        message_id = "missing-version" if declared is None else "version-attribute"
        return Issue(
            IssueCode.UNKNOWN_SCHEMA_VERSION, message_id,
            {"found": declared, "expected": catalog.version}, file=name, line=root.sourceline,
        )
    return catalog

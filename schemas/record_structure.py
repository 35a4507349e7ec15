"""The structure of an element the XSD refused, checked from the catalogue.

libxml2 stops at the first unexpected child of an ``xs:all``; here every problem is
reported: attributes and text the XSD allows nowhere, fields unknown, repeated or
missing, and the values checked on a cleaned copy. ``unexpected_attributes``,
``stray_text`` and ``visible_text`` also serve the reader's envelope checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import islice

from lxml import etree

from schemas.catalog import FieldSpec, SchemaCatalog
from schemas.issues import Issue, IssueCode
from schemas.xsd_errors import value_issues

__all__ = [
    "LISTED_ATTRIBUTES",
    "fields_after_errors",
    "stray_text",
    "structure_issue",
    "unexpected_attributes",
    "visible_text",
]

# Attributes named one by one on an element; the rest are counted in one issue: one
# start tag can carry a million of them.
LISTED_ATTRIBUTES = 10


def fields_after_errors(
    element: etree._Element,
    element_code: str,
    specs: Mapping[str, FieldSpec],
    catalog: SchemaCatalog,
    line: int | None,
) -> tuple[dict[str, str], list[Issue]]:
    """The slow path for an element the XSD refused: report every problem, not the first.

    libxml2 stops at the first unexpected child of an ``xs:all``, so structure is
    checked here from the catalogue, and values are checked on a cleaned copy.
    """
    issues = _stray_content(element, element_code, catalog)
    lines: dict[str, int] = {}
    clean = etree.Element(element.tag)
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions carry no data
        name = etree.QName(child).localname
        if etree.QName(child).namespace != catalog.namespace or name not in specs:
            issues.append(
                structure_issue(
                    IssueCode.UNEXPECTED_FIELD,
                    "unexpected-field",
                    element_code,
                    name,
                    child.sourceline,
                    catalog,
                )
            )
        elif name in lines:
            issues.append(
                structure_issue(
                    IssueCode.UNEXPECTED_FIELD,
                    "repeated-field",
                    element_code,
                    name,
                    child.sourceline,
                    catalog,
                )
            )
        else:
            lines[name] = child.sourceline
            clean.append(_copy_field(child))
    for name, spec in specs.items():
        if spec.required and name not in lines:
            issues.append(
                structure_issue(
                    IssueCode.MISSING_FIELD, "missing-field", element_code, name, line, catalog
                )
            )
    bad_values = value_issues(catalog.xml_schema, clean, element_code, specs, lines)
    issues.extend(bad_values)
    rejected = {issue.field for issue in bad_values}
    fields = {
        etree.QName(c).localname: c.text or ""
        for c in clean
        if etree.QName(c).localname not in rejected
    }
    return fields, issues


def _stray_content(
    element: etree._Element, element_code: str, catalog: SchemaCatalog
) -> list[Issue]:
    """Attributes on the element and text between its fields: the XSD allows neither,
    and the cleaned copy that values are checked on no longer has them."""
    names, more = unexpected_attributes(element)
    issues = [
        structure_issue(
            IssueCode.UNEXPECTED_FIELD,
            "unexpected-attribute",
            element_code,
            None,
            element.sourceline,
            catalog,
            attribute=name,
        )
        for name in names
    ]
    if more:
        issues.append(structure_issue(IssueCode.UNEXPECTED_FIELD, "more-attributes",
                                      element_code, None, element.sourceline, catalog,
                                      count=more))
    text = stray_text(element)
    if text:
        issues.append(
            structure_issue(
                IssueCode.UNEXPECTED_FIELD,
                "unexpected-text",
                element_code,
                None,
                element.sourceline,
                catalog,
                value=text,
            )
        )
    return issues


def unexpected_attributes(
    element: etree._Element, allowed: Callable[[str], bool] | None = None
) -> tuple[list[str], int]:
    """The local names of the first ``LISTED_ATTRIBUTES`` attributes of ``element`` that
    ``allowed`` refuses (every one, without it), and how many more it refuses."""
    names: list[str] = []
    more = 0
    for name in element.attrib:
        if allowed is not None and allowed(name):
            continue
        if len(names) < LISTED_ATTRIBUTES:
            names.append(etree.QName(name).localname)
        else:
            more += 1
    return names, more


def stray_text(element: etree._Element) -> str | None:
    """The first text directly inside ``element`` that is not white space, shortened."""
    for text in (element.text, *(child.tail for child in element)):
        if (visible := visible_text(text)) is not None:
            return visible
    return None


def visible_text(text: str | None) -> str | None:
    """``text`` stripped and shortened for a message, or None when it is only white space."""
    if not text or text.isspace():
        return None
    stripped = text.strip()
    return stripped if len(stripped) <= 60 else stripped[:60] + "…"


def _copy_field(child: etree._Element) -> etree._Element:
    """A field without what the XSD does not look at: one attribute, if it has any,
    is enough for "must not carry attributes" (libxml2 logs an error for each)."""
    copy = etree.Element(child.tag, attrib=dict(islice(child.attrib.items(), 1)))
    copy.text = child.text
    copy.extend(etree.Element(grand.tag) for grand in child if isinstance(grand.tag, str))
    return copy


def structure_issue(
    code: IssueCode,
    message_id: str,
    element_code: str,
    name: str | None,
    line: int | None,
    catalog: SchemaCatalog,
    **extra: object,
) -> Issue:
    """An issue of field ``name`` (None: of the element itself) of a record or the HEAD,
    with the labels the catalogue gives them."""
    spec = catalog.elements.get(element_code)
    specs = spec.fields if spec is not None else catalog.head
    label = specs[name].label if name is not None and name in specs else name
    element_label = spec.label if spec is not None else "报文头"
    args = {"field": name, "label": label, "element": element_code, "element_label": element_label}
    return Issue(code, message_id, {**args, **extra}, element_code, name, line=line)

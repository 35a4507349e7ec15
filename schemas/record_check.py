"""Validating one record element: structure, XSD values, then the semantic rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from schemas.catalog import ElementSpec, SchemaCatalog
from schemas.checkdigits import credit_code_valid
from schemas.issues import Issue, IssueCode
from schemas.record_structure import fields_after_errors, structure_issue
from schemas.records import Record, slot_setters
from schemas.rules import Rule, canonical_time, check_division, normalise_values, rules_for
from schemas.times import format_time

__all__ = [
    "RecordCheck",
    "check_fields",
    "check_head",
    "check_proven",
    "check_record",
    "outside_node",
]


@dataclass(frozen=True, slots=True, init=False)
class RecordCheck:
    """The outcome for one record: the record when valid, and its issues."""

    element: str
    line: int | None
    record: Record | None
    issues: tuple[Issue, ...]

    def __init__(
        self, element: str, line: int | None, record: Record | None, issues: tuple[Issue, ...]
    ) -> None:
        # One per record read: slot setters rather than frozen dataclass's own __init__.
        _set_element(self, element)
        _set_line(self, line)
        _set_record(self, record)
        _set_issues(self, issues)

    @property
    def valid(self) -> bool:
        return self.record is not None


_set_element, _set_line, _set_record, _set_issues = slot_setters(RecordCheck)


def check_record(
    element: etree._Element,
    spec: ElementSpec,
    catalog: SchemaCatalog,
    head_division: str | None,
    latest: datetime,
    *,
    of_node: bool = False,
) -> RecordCheck:
    line = element.sourceline
    fields = catalog.fast_checks[spec.code].proven_fields(element)
    issues: list[Issue] = []
    if fields is None:  # the fast path cannot prove it: lxml decides, and says why
        if _schema_valid(element, catalog):
            cut = catalog.prefix_length
            given = {child.tag[cut:]: child.text or "" for child in element}
            # xs:all takes any order; a record's fields are kept in the XSD's, as the
            # fast paths give them, so equal records are equal field by field in order.
            fields = {code: given[code] for code in spec.fields if code in given}
        else:
            fields, issues = fields_after_errors(element, spec.code, spec.fields, catalog, line)
    result = _judge(fields, issues, spec, head_division, latest, line, of_node=of_node)
    if result.valid:
        return result
    return _at_field_lines(result, _field_lines(element, catalog.namespace))


def check_proven(
    fields: dict[str, str],
    spec: ElementSpec,
    head_division: str | None,
    latest: datetime,
    line: int | None,
    field_lines: Callable[[], Mapping[str, int]],
) -> RecordCheck:
    """The semantic rules over a record whose fields are proven to pass the XSD;
    ``field_lines`` is asked only when they refuse it."""
    result = _judge(fields, [], spec, head_division, latest, line)
    return result if result.valid else _at_field_lines(result, field_lines())


def _at_field_lines(result: RecordCheck, lines: Mapping[str, int]) -> RecordCheck:
    """Issues without a line get their field's, or else the record's."""
    located = tuple(
        i.located(line=lines.get(i.field or "", result.line)) if i.line is None else i
        for i in result.issues
    )
    return RecordCheck(result.element, result.line, None, located)


def _judge(
    fields: dict[str, str],
    issues: list[Issue],
    spec: ElementSpec,
    head_division: str | None,
    latest: datetime,
    line: int | None,
    *,
    of_node: bool = False,
) -> RecordCheck:
    """The semantic rules over fields that passed the XSD (``issues``: those that did not).

    ``fields`` was built for this record by the caller: it takes the canonical values
    and becomes the record's."""
    changes, time_issues = normalise_values(fields, spec, latest)
    if changes:
        fields.update(changes)
    if time_issues:
        issues.extend(time_issues)
    rules = _RULES.get(id(spec))
    if rules is None:
        rules = _RULES[id(spec)] = rules_for(spec)
    for rule in rules:
        if found := rule(fields, spec):
            issues.extend(found)
    if found := check_division(fields, spec, head_division, of_node=of_node):
        issues.extend(found)
    if issues:
        return RecordCheck(spec.code, line, None, tuple(issues))
    record = Record(
        spec.code, fields, tuple(map(fields.__getitem__, spec.key)), int(fields["SJBBH"]), line
    )
    return RecordCheck(spec.code, line, record, ())


# The rules that apply to each element spec; catalogs (and so specs) live for the process.
_RULES: dict[int, tuple[Rule, ...]] = {}


def outside_node(result: RecordCheck, spec: ElementSpec, node_division: str) -> RecordCheck:
    """Reject a valid record whose division lies outside the sending node's."""
    record = result.record
    if record is None:
        return result
    found = check_division(record.fields, spec, node_division, of_node=True)
    if not found:
        return result
    return RecordCheck(result.element, result.line, None,
                       tuple(i.located(line=record.line) for i in found))


def check_head(
    element: etree._Element,
    catalog: SchemaCatalog,
    latest: datetime,
) -> tuple[dict[str, str], list[Issue]]:
    """The HEAD's fields that passed, and the issues of the ones that did not: the XSD,
    then the rules records follow too (GB 32100 check character, a real time not after
    ``latest``)."""
    issues: list[Issue] = []
    if _schema_valid(element, catalog):
        cut = catalog.prefix_length
        fields = {child.tag[cut:]: child.text or "" for child in element}
    else:
        fields, issues = fields_after_errors(element, "HEAD", catalog.head, catalog,
                                             element.sourceline)
    found = _head_rules(fields, latest)
    if found:
        lines = _field_lines(element, catalog.namespace)
        issues.extend(structure_issue(code, message_id, "HEAD", name, lines.get(name),
                                      catalog, value=fields.pop(name))
                      for code, message_id, name in found)
    return fields, issues


def _head_rules(fields: Mapping[str, str], latest: datetime
                ) -> list[tuple[IssueCode, str, str]]:
    """(code, message, field) of each HEAD value that passed the XSD but not the rules."""
    found = []
    credit_code = fields.get("TYSHXYDM")
    if credit_code is not None and not credit_code_valid(credit_code):
        found.append((IssueCode.BAD_CHECK_DIGIT, "bad-check-digit-credit", "TYSHXYDM"))
    created = fields.get("CREATED")
    if created is not None:
        canonical = canonical_time(created)
        if canonical is None:
            found.append((IssueCode.BAD_DATE, "bad-date", "CREATED"))
        elif canonical > format_time(latest):
            found.append((IssueCode.BAD_DATE, "future-date", "CREATED"))
    return found


def _schema_valid(element: etree._Element, catalog: SchemaCatalog) -> bool:
    """Whether the XSD takes ``element`` (a record or HEAD lxml parsed, within its cap on
    elements). One with attributes, on it or inside, never passes, and is not even
    tried: libxml2 logs an error for each attribute, and lxml keeps each log entry, some
    1 KB apiece (a 10 MB start tag holds a million attributes)."""
    if any(len(node.attrib) for node in element.iter()):
        return False
    return bool(catalog.xml_schema.validate(element))



def _field_lines(element: etree._Element, namespace: str) -> dict[str, int]:
    prefix = len(namespace) + 2
    return {child.tag[prefix:]: child.sourceline for child in element if isinstance(child.tag, str)}


def check_fields(
    element_code: str,
    fields: Mapping[str, str | None],
    catalog: SchemaCatalog,
    head_division: str | None,
    latest: datetime,
    line: int | None = None,
    *,
    xml_text: bool = False,
) -> RecordCheck:
    """Validate a record given as a mapping of field codes to text (a database row).

    A row the fast path proves valid goes straight to the semantic rules; any other is
    built into an element and goes through exactly the same checks as a record read
    from XML. ``None`` and empty values are treated as absent fields. A row has no
    HEAD: ``head_division`` is the node's configured division, and a row outside it is
    told so (``outside-node``), not that it lies outside a HEAD's. ``xml_text``: the
    caller has made sure every value is XML 1.0 text (``check_row`` does).
    """
    spec = catalog.elements.get(element_code)
    if spec is None:
        issue = Issue(
            IssueCode.UNKNOWN_ELEMENT,
            "unknown-element",
            {"found": element_code},
            element_code,
            None,
            line=line,
        )
        return RecordCheck(element_code, line, None, (issue,))
    proven = catalog.fast_checks[element_code].proven_row(fields, xml_text=xml_text)
    if proven is not None:
        result = _judge(proven, [], spec, head_division, latest, line, of_node=True)
    else:
        result = check_record(_row_element(fields, catalog, element_code), spec, catalog,
                              head_division, latest, of_node=True)
    if result.valid or line is None:
        return result
    return RecordCheck(result.element, line, result.record,
                       tuple(i.located(line=line) for i in result.issues))


def _row_element(
    fields: Mapping[str, str | None], catalog: SchemaCatalog, element_code: str
) -> etree._Element:
    element = etree.Element(catalog.tag(element_code))
    for name, value in fields.items():
        if value is None or value == "":
            continue
        child = etree.SubElement(element, catalog.tag(name))
        child.text = value
    return element

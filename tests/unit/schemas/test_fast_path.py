"""The fast path never accepts what lxml refuses, and it does prove valid records valid."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
import xmlschema
from lxml import etree

from schemas.catalog import load_catalog
from schemas.type_predicates import compile_type, inline_type
from tests.unit.schemas.documents import NS, VALID, record

CATALOG = load_catalog()
# Characters that sit on the edges of the XSD's types: digits and their full-width
# look-alikes, separators of times and decimals, the letters the credit-code alphabet
# leaves out, XSD white space and Unicode spaces that XSD does not count as such.
_ALPHABET = "0123456789０９-:.+ T Z\t\n\rAIOSVZaf中文　\xa0\u2028_"


def _record_element(element: str, fields: dict[str, str]) -> etree._Element:
    node = etree.Element(f"{{{NS}}}{element}", nsmap={None: NS})
    for name, value in fields.items():
        etree.SubElement(node, f"{{{NS}}}{name}").text = value
    return node


def _lxml_accepts(element: str, field: str, value: str) -> bool:
    _, fields = record(element, **{field: value})
    return bool(CATALOG.xml_schema.validate(_record_element(element, fields)))


def _candidates(valid: str, rng: random.Random) -> Iterator[str]:
    """Values near a valid one, at length limits, and random strings of edge characters."""
    yield from (valid, "", " ", f" {valid}", f"{valid} ", f"\t{valid}\n", valid * 2, "0", "00",
                "-1", "+1", "1.", ".5", "1.005", "0.00", "2147483647", "2147483648", "01")
    for length in (1, 9, 10, 11, 49, 50, 51, 199, 200, 201, 1999, 2000, 2001):
        yield "字" * length
        yield " " + "a" * (length - 2) + " " if length > 2 else " "
    for _ in range(150):
        chars = list(valid)
        for _ in range(rng.randint(1, 3)):
            spot = rng.randint(0, len(chars))
            action = rng.choice("idr")
            if action == "i" or not chars:
                chars.insert(spot, rng.choice(_ALPHABET))
            elif action == "d":
                del chars[min(spot, len(chars) - 1)]
            else:
                chars[min(spot, len(chars) - 1)] = rng.choice(_ALPHABET)
        yield "".join(chars)
    for _ in range(100):
        yield "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 24)))


def _one_field_per_type() -> list[tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    for element in VALID:
        _, fields = record(element)
        for name in fields:
            type_name = CATALOG.elements[element].fields[name].type_name
            seen.setdefault(type_name, (element, name))
    return sorted(seen.values())


@pytest.mark.parametrize(("element", "field"), _one_field_per_type())
def test_a_value_the_fast_path_accepts_is_one_lxml_accepts(element: str, field: str) -> None:
    accepts = CATALOG.elements[element].fields[field].accepts
    _, fields = record(element)
    rng = random.Random(f"{element}.{field}")
    accepted = 0
    for value in _candidates(fields[field], rng):
        if accepts(value):
            accepted += 1
            assert _lxml_accepts(element, field, value), (element, field, repr(value))
    assert accepted > 0  # the valid value at least; else the fast path would never run


# What follows a value in a document: demands that read past its end would see this.
_AFTER_VALUE = "</X>\n  <Y>1 </Y><Z>a</Z></R>"


@pytest.mark.parametrize(("element", "field"), _one_field_per_type())
def test_a_value_the_record_regex_proves_is_one_the_predicate_accepts(
    element: str, field: str
) -> None:
    """Strings: the same verdict on every value without '<'. Integers: the plainly
    written part of the type, which holds the usual values."""
    spec = CATALOG.elements[element].fields[field]
    if spec.inline is None:  # only decimals (Amount) are left to Python
        assert spec.type_name == "Amount", spec.type_name
        return
    in_text = re.compile(f"{spec.inline}[^<]*<")
    _, fields = record(element)
    proven = 0
    for value in _candidates(fields[field], random.Random(f"{element}.{field}.inline")):
        if "<" in value:
            continue
        verdict = in_text.match(value + _AFTER_VALUE) is not None
        if spec.is_integer:
            assert not verdict or spec.accepts(value), (element, field, repr(value))
        else:
            assert verdict == bool(spec.accepts(value)), (element, field, repr(value))
        proven += verdict
    assert in_text.match(fields[field] + _AFTER_VALUE), (element, field)  # the usual value
    assert proven > 0


def test_integer_bounds_limit_the_digits_the_record_regex_admits() -> None:
    inline = inline_type(_tiny_type(
        '<xs:restriction base="xs:positiveInteger"><xs:maxInclusive value="1000"/>'
        "</xs:restriction>"
    ))
    assert inline is not None
    admitted = [v for v in ("0", "1", "999", "1000", "01", "-1") if re.match(inline, v + "<")]
    assert admitted == ["1", "999"]  # 1000 and the rest are the predicate's (or lxml's) call
    for body in ('<xs:restriction base="xs:integer"><xs:minInclusive value="5"/></xs:restriction>',
                 '<xs:restriction base="xs:integer"><xs:maxInclusive value="-1"/></xs:restriction>',
                 '<xs:restriction base="xs:decimal"/>'):
        assert inline_type(_tiny_type(body)) is None, body


def _in_xsd_order(element: str, fields: dict[str, str]) -> dict[str, str]:
    return {name: fields[name] for name in CATALOG.elements[element].fields if name in fields}


@pytest.mark.parametrize("element", sorted(VALID))
def test_valid_records_are_proven_from_xml_and_from_rows(element: str) -> None:
    _, fields = record(element)
    check = CATALOG.fast_checks[element]
    ordered = _in_xsd_order(element, fields)
    assert check.proven_fields(_record_element(element, ordered)) == ordered
    assert check.proven_row({**fields, "OTHER": "1"}) is None  # not a field of the element
    assert check.proven_row({**fields, "OTHER": None, "SJBBH2": ""}) == fields  # absent


def test_fields_in_another_order_are_left_to_lxml_which_accepts_them() -> None:
    _, fields = record("SBXX")
    reordered = dict(reversed(_in_xsd_order("SBXX", fields).items()))
    element = _record_element("SBXX", reordered)
    assert CATALOG.fast_checks["SBXX"].proven_fields(element) is None
    assert CATALOG.xml_schema.validate(element)


def test_a_record_in_another_namespace_is_not_proven() -> None:
    _, fields = record("JGXX")
    element = etree.Element("{urn:other}JGXX", nsmap={None: "urn:other"})
    for name, value in _in_xsd_order("JGXX", fields).items():
        etree.SubElement(element, f"{{urn:other}}{name}").text = value
    assert CATALOG.fast_checks["JGXX"].proven_fields(element) is None


def test_declarations_of_other_prefixes_do_not_matter() -> None:
    _, fields = record("JGXX")
    element = etree.Element(f"{{{NS}}}JGXX", nsmap={None: NS, "xsi": "urn:x", "o": "urn:o"})
    for name, value in _in_xsd_order("JGXX", fields).items():
        etree.SubElement(element, f"{{{NS}}}{name}").text = value
    assert CATALOG.fast_checks["JGXX"].proven_fields(element) is not None


def _proven(xml: str) -> dict[str, str] | None:
    return CATALOG.fast_checks["JGXX"].proven_fields(etree.fromstring(xml))


_JGXX_FIELDS = (
    "<XZQHDM>430102</XZQHDM><TYSHXYDM>12451422MB0173307F</TYSHXYDM>"
    "<SJBBH>1</SJBBH><GXSJ>2026-11-20 09:58:01</GXSJ>"
)


@pytest.mark.parametrize(
    "xml",
    [
        f'<JGXX xmlns="{NS}" a="1">{_JGXX_FIELDS}<JGMC>局</JGMC></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC a="1">局</JGMC></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>局<b/></JGMC></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>局</JGMC><JGMC>局</JGMC></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>局</JGMC><OTHER>1</OTHER></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}</JGXX>',
        f'<JGXX xmlns="{NS}">text{_JGXX_FIELDS}<JGMC>局</JGMC></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>局</JGMC>tail</JGXX>',
        f'<JGXX xmlns="{NS}" xmlns:o="urn:other">{_JGXX_FIELDS}<o:JGMC>局</o:JGMC></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>局</JGMC><!-- c --></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC/></JGXX>',
        f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>局</JGMC>\u3000</JGXX>',
        f'<ex:JGXX xmlns:ex="{NS}" xmlns="urn:other">{_JGXX_FIELDS}<ex:JGMC>局</ex:JGMC></ex:JGXX>',
    ],
    ids=["record-attribute", "field-attribute", "nested", "repeated", "unknown", "missing",
         "text-before", "text-after", "foreign-namespace", "comment", "empty",
         "ideographic-space", "prefixed"],
)
def test_what_the_xsd_refuses_is_left_to_lxml(xml: str) -> None:
    assert _proven(xml) is None
    # A comment is the one case lxml accepts: the reader's parser drops comments anyway.
    assert bool(CATALOG.xml_schema.validate(etree.fromstring(xml))) == ("<!--" in xml)


def test_an_escaped_value_is_left_to_lxml_which_accepts_it() -> None:
    xml = f'<JGXX xmlns="{NS}">{_JGXX_FIELDS}<JGMC>甲&amp;乙</JGMC></JGXX>'
    assert _proven(xml) is None
    assert CATALOG.xml_schema.validate(etree.fromstring(xml))


def test_a_row_with_a_character_xml_cannot_carry_is_left_to_the_slow_path() -> None:
    _, fields = record("JGXX", JGMC="局\x01")
    assert CATALOG.fast_checks["JGXX"].proven_row(fields) is None


def _tiny_type(body: str) -> object:
    schema = xmlschema.XMLSchema(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:simpleType name="T">{body}</xs:simpleType></xs:schema>'
    )
    return schema.types["T"]


def test_types_beyond_the_fast_path_accept_nothing() -> None:
    for body in (
        '<xs:list itemType="xs:string"/>',
        '<xs:union memberTypes="xs:string xs:integer"/>',
        '<xs:restriction base="xs:date"/>',
        '<xs:restriction base="xs:integer"><xs:enumeration value="1"/></xs:restriction>',
    ):
        accepts = compile_type(_tiny_type(body))
        assert not any(accepts(value) for value in ("1", "a", "2026-01-01")), body


def test_a_collapsed_string_is_judged_only_when_already_collapsed() -> None:
    accepts = compile_type(_tiny_type(
        '<xs:restriction base="xs:string"><xs:whiteSpace value="collapse"/>'
        '<xs:maxLength value="3"/></xs:restriction>'
    ))
    assert accepts("a b")
    assert not accepts("a  b")  # lxml would collapse it to "a b" and accept: its call
    assert not accepts(" ab")


def test_derived_steps_all_hold() -> None:
    schema = xmlschema.XMLSchema(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xs:simpleType name="Digits"><xs:restriction base="xs:string">'
        '<xs:pattern value="[0-9]+"/></xs:restriction></xs:simpleType>'
        '<xs:simpleType name="Short"><xs:restriction base="Digits">'
        '<xs:maxLength value="3"/><xs:pattern value="1.*"/></xs:restriction></xs:simpleType>'
        "</xs:schema>"
    )
    accepts = compile_type(schema.types["Short"])
    assert accepts("123")
    assert not accepts("1234")
    assert not accepts("23")
    assert not accepts("1a")

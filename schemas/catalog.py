"""The element and field catalogue, read from the XSD.

The XSD is the single source of truth: element codes, field codes, Chinese labels,
required flags, field types and business keys (``ex:element/@key`` in ``xs:appinfo``)
all come from the schema file, never from lists in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import xmlschema
from lxml import etree

from schemas.errors import ConfigError
from schemas.fast_check import FastCheck
from schemas.type_predicates import Predicate, compile_type, inline_type

__all__ = [
    "CURRENT_VERSION",
    "ElementSpec",
    "FieldSpec",
    "SchemaCatalog",
    "catalog_for_namespace",
    "known_namespaces",
    "load_catalog",
]

SCHEMA_DIR = Path(__file__).resolve().parent
CURRENT_VERSION = 1
_META_NS = "urn:exgate:meta"
_INTEGER_TYPES = frozenset({"PositiveInt", "NonNegativeInt"})
_NAMESPACE_PREFIX = "urn:exgate:exchange:"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of an element: ``<SBLSH>`` inside ``<SBXX>``."""

    code: str
    label: str
    required: bool
    type_name: str
    # The field's XSD type as a conservative predicate (see schemas/type_predicates.py).
    accepts: Predicate = field(default=lambda _value: False, compare=False, repr=False)
    # The same as regex lookaheads the scanner runs in place, when the type has that form.
    inline: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_time(self) -> bool:
        return self.type_name == "Time"

    @property
    def is_credit_code(self) -> bool:
        return self.type_name == "CreditCode"

    @property
    def is_integer(self) -> bool:
        return self.type_name in _INTEGER_TYPES

    @property
    def is_numeric(self) -> bool:
        """XSD numeric types collapse white space, so `` 5 `` passes and must be trimmed."""
        return self.type_name in _INTEGER_TYPES or self.type_name == "Amount"


@dataclass(frozen=True)
class ElementSpec:
    """One of the 14 exchange elements."""

    code: str
    number: int
    label: str
    key: tuple[str, ...]
    fields: Mapping[str, FieldSpec]

    # Cached: the validator asks for these once per record.
    @cached_property
    def field_codes(self) -> tuple[str, ...]:
        return tuple(self.fields)

    @cached_property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(code for code, spec in self.fields.items() if spec.required)

    @cached_property
    def time_fields(self) -> tuple[str, ...]:
        return tuple(code for code, spec in self.fields.items() if spec.is_time)

    @cached_property
    def numeric_fields(self) -> tuple[str, ...]:
        return tuple(code for code, spec in self.fields.items() if spec.is_numeric)

    @cached_property
    def credit_code_fields(self) -> tuple[str, ...]:
        return tuple(code for code, spec in self.fields.items() if spec.is_credit_code)


@dataclass(frozen=True)
class SchemaCatalog:
    """A compiled schema version and what the code needs to know about it."""

    version: int
    namespace: str
    path: Path
    elements: Mapping[str, ElementSpec]
    head: Mapping[str, FieldSpec]
    xml_schema: etree.XMLSchema

    @cached_property
    def prefix_length(self) -> int:
        """Length of ``{namespace}``: slicing it off a tag is the fastest local name."""
        return len(self.namespace) + 2

    def tag(self, local_name: str) -> str:
        """The Clark-notation tag of a local name in this version's namespace."""
        return f"{{{self.namespace}}}{local_name}"

    @cached_property
    def fast_checks(self) -> Mapping[str, FastCheck]:
        """Per element, the fast path that proves records valid without lxml."""
        return {
            code: FastCheck.build(
                self.namespace,
                code,
                {name: (spec.accepts, spec.inline) for name, spec in element.fields.items()},
                frozenset(element.required_fields),
            )
            for code, element in self.elements.items()
        }

    @property
    def element_codes(self) -> tuple[str, ...]:
        return tuple(self.elements)


def known_namespaces() -> dict[str, int]:
    """Every schema version shipped in ``schemas/``, by namespace."""
    return {f"{_NAMESPACE_PREFIX}{v}": v for v in _shipped_versions()}


def catalog_for_namespace(namespace: str) -> SchemaCatalog | None:
    version = known_namespaces().get(namespace)
    return None if version is None else load_catalog(version)


@cache  # the package's files: fixed while the process runs, and read for every document
def _shipped_versions() -> tuple[int, ...]:
    versions = []
    for path in SCHEMA_DIR.glob("exchange-*.xsd"):
        suffix = path.stem.removeprefix("exchange-")
        if suffix.isdigit():
            versions.append(int(suffix))
    return tuple(sorted(versions))


@cache
def load_catalog(version: int = CURRENT_VERSION) -> SchemaCatalog:
    """Compile schema ``version`` once; a broken or missing schema is a ConfigError."""
    path = SCHEMA_DIR / f"exchange-{version}.xsd"
    if not path.is_file():
        known = ", ".join(str(v) for v in _shipped_versions()) or "none"
        raise ConfigError(f"schema version {version} is not shipped (known: {known})",
                          zh=f"未随附第 {version} 版模式（已有：{known}）")
    try:
        model = xmlschema.XMLSchema(str(path))
        compiled = etree.XMLSchema(etree.parse(str(path)))
    except (xmlschema.XMLSchemaException, etree.LxmlError) as exc:
        raise ConfigError(f"cannot compile {path}: {exc}", zh=f"无法编译 {path}：{exc}") from exc
    namespace = model.target_namespace
    elements = {}
    for element in model.elements.values():
        spec = _element_spec(element)
        if spec is not None:
            elements[spec.code] = spec
    ordered = dict(sorted(elements.items(), key=lambda item: item[1].number))
    return SchemaCatalog(
        version=version,
        namespace=namespace,
        path=path,
        elements=ordered,
        head=_field_specs(model.elements["HEAD"]),
        xml_schema=compiled,
    )


def _element_spec(element: xmlschema.XsdElement) -> ElementSpec | None:
    marker = _appinfo_marker(element)
    if marker is None:
        return None
    return ElementSpec(
        code=element.local_name,
        number=int(marker.get("no", "0")),
        label=_label(element),
        key=tuple(marker.get("key", "").split()),
        fields=_field_specs(element),
    )


def _field_specs(element: xmlschema.XsdElement) -> dict[str, FieldSpec]:
    content = getattr(element.type, "content", None)
    if content is None or not hasattr(content, "iter_elements"):
        raise ConfigError(f"element {element.local_name} has no field list in the schema",
                          zh=f"模式中的元素 {element.local_name} 没有字段列表")
    fields = {}
    for child in content.iter_elements():
        if not isinstance(child, xmlschema.XsdElement) or child.local_name is None:
            raise ConfigError(f"element {element.local_name}: only named fields are allowed",
                              zh=f"元素 {element.local_name}：只允许具名字段")
        own = child.type
        base = own.base_type
        type_name = own.local_name or (base.local_name if base is not None else None)
        fields[child.local_name] = FieldSpec(
            code=child.local_name,
            label=_label(child),
            required=child.min_occurs > 0,
            type_name=type_name or "",
            accepts=compile_type(own),
            inline=inline_type(own),
        )
    return fields


def _appinfo_marker(element: xmlschema.XsdElement) -> etree._Element | None:
    annotation = element.annotation
    if annotation is None:
        return None
    for appinfo in annotation.appinfo:
        for child in appinfo:
            if child.tag == f"{{{_META_NS}}}element":
                return child
    return None


def _label(component: xmlschema.XsdElement) -> str:
    annotation = component.annotation
    if annotation is None or not annotation.documentation:
        return component.local_name
    return (annotation.documentation[0].text or component.local_name).strip()

"""The naive pipelines' validation steps: as design §11 defines it (xmlschema, per
record), and with exgate's own checks (``check_fields``) as a stricter reference."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

import xmlschema

from schemas.catalog import load_catalog
from schemas.record_check import RecordCheck, check_fields
from schemas.times import BEIJING

__all__ = ["FieldsCheck", "RecordXml", "fields_checker", "xsd_record"]

# A naive pipeline's validation step: a row's field texts → the record's XML when it is
# valid, else None.
RecordXml = Callable[[Mapping[str, str | None]], str | None]


def xsd_record(element: str, fields: Sequence[str]) -> RecordXml:
    """Build one ``element`` record from a row and validate it alone with xmlschema.

    The schema is built once, outside the loop: the naive way is per-record
    validation, not per-record schema loading.
    """
    catalog = load_catalog()
    schema = xmlschema.XMLSchema(str(catalog.path))

    def record(values: Mapping[str, str | None]) -> str | None:
        body = "".join(f"<{f}>{escape(values[f] or '')}</{f}>" for f in fields if values[f])
        if not schema.is_valid(f'<{element} xmlns="{catalog.namespace}">{body}</{element}>'):
            return None
        return f"\n    <{element}>{body}</{element}>"

    return record


FieldsCheck = Callable[[Mapping[str, str | None]], RecordCheck]


def fields_checker(element: str, division: str) -> FieldsCheck:
    """A row's field texts checked as exgate checks them (``check_fields``), with the
    catalogue loaded once, outside the loop."""
    catalog = load_catalog()
    latest = datetime.now(BEIJING) + timedelta(days=1)
    return lambda texts: check_fields(element, dict(texts), catalog, division, latest)

"""Reading an outbox batch back in tests: each payload is a record's XML."""

from __future__ import annotations

from lxml import etree

from frontend_machine.outbox import Outbox


def batch_fields(outbox: Outbox, batch_id: str) -> list[tuple[str, dict[str, str]]]:
    """(element, fields) of each record of the batch, in journal order."""
    records = []
    for payload in outbox.batch_payloads(batch_id):
        element = etree.fromstring(payload)
        records.append((element.tag, {child.tag: child.text or "" for child in element}))
    return records

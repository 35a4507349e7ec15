"""One outbox batch as an AMQP message: batch XML → sealed body, properties, headers."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pika

from adapters.amqp.topology import APP_ID, CONTENT_TYPE, SCHEMA_VERSION
from adapters.sealing import NodeKeys, seal
from schemas.times import BEIJING, format_time
from schemas.writer import utf8_document

__all__ = ["Envelope", "NodeIdentity", "build_envelope"]


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who speaks: the node, its division, its broker user and its keys."""

    node_id: str
    division: str
    broker_user: str
    keys: NodeKeys = field(repr=False)
    credit_code: str | None = None  # HEAD/TYSHXYDM; default: the first record's


# A credit code is [0-9A-Z]{18}: written as is, never escaped.
_CREDIT_CODE = re.compile(r"<TYSHXYDM>([^<]*)</TYSHXYDM>")


def _credit_code(record: str) -> str:
    found = _CREDIT_CODE.search(record)
    return found.group(1) if found else ""


@dataclass(frozen=True, slots=True)
class Envelope:
    batch_id: str
    body: bytes = field(repr=False)
    properties: pika.BasicProperties = field(repr=False)
    record_count: int
    sha256: str


def batch_document(batch_id: str, records: Sequence[str], node: NodeIdentity,
                   created: float | None = None) -> bytes:
    """The plain batch XML (design §3) with a full HEAD, around ``records`` as
    ``record_xml`` wrote them (the outbox keeps them so).

    ``created`` (epoch seconds) is when the outbox sealed the batch. It must be given for
    a batch that may be sent again: the gateways recognise a resend (its confirm was
    lost) by an identical payload sha256, and a CREATED of "now" would differ.
    """
    credit = node.credit_code or (_credit_code(records[0]) if records else "")
    head = {"XZQHDM": node.division, "TYSHXYDM": credit, "BATCHID": batch_id,
            "NODEID": node.node_id, "COUNT": str(len(records))}
    if created is not None:
        head["CREATED"] = format_time(datetime.fromtimestamp(created, BEIJING))
    return utf8_document(head, records)


def build_envelope(batch_id: str, records: Sequence[str], node: NodeIdentity,
                   now: float | None = None, created: float | None = None) -> Envelope:
    """The sealed message of a batch of ``records`` (as ``record_xml`` wrote them)."""
    plain = batch_document(batch_id, records, node, created)
    digest = hashlib.sha256(plain).hexdigest()
    properties = pika.BasicProperties(
        message_id=batch_id,
        user_id=node.broker_user,
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type=CONTENT_TYPE,
        app_id=APP_ID,
        timestamp=int(time.time() if now is None else now),
        headers={
            "x-exgate-node": node.node_id,
            "x-exgate-key-version": node.keys.key_version,
            "x-exgate-schema-version": SCHEMA_VERSION,
            "x-exgate-records": len(records),
            "x-exgate-sha256": digest,
        },
    )
    return Envelope(batch_id, seal(plain, node.keys, batch_id), properties, len(records),
                    digest)

"""Receipts from the levels: parsed from JSON and recorded in the outbox.

``{"batch_id", "level", "division", "status": "stored|failed", "stored", "duplicates",
"conflicts", "reasons": [..], "at"}``. A receipt is acked only after the outbox has
committed it; a malformed one, or one for a batch this outbox never held (it was
re-created), is dropped with an error log, since it can never apply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from frontend_machine.link import Delivery, Verdict
from frontend_machine.outbox import ALL_LEVELS, BatchState, Outbox
from schemas.errors import RetriableError

__all__ = ["Receipt", "ReceiptError", "apply_receipt", "parse_receipt"]

log = logging.getLogger("exgate.agent.receipts")
STATUSES = ("stored", "failed")


class ReceiptError(ValueError):
    """A receipt that is not what the contract says."""


@dataclass(frozen=True, slots=True)
class Receipt:
    batch_id: str
    level: str
    division: str
    status: str
    stored: int
    duplicates: int
    conflicts: int
    reasons: Sequence[str]
    at: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        try:
            receipt = cls(str(data["batch_id"]), str(data["level"]),
                          str(data.get("division", "")), str(data["status"]),
                          _count(data, "stored"), _count(data, "duplicates"),
                          _count(data, "conflicts"),
                          tuple(str(reason) for reason in data.get("reasons") or ()),
                          str(data.get("at", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReceiptError(f"receipt lacks or mangles a field: {exc}") from exc
        if receipt.level not in ALL_LEVELS or receipt.status not in STATUSES:
            raise ReceiptError(f"receipt for batch {receipt.batch_id} has level "
                               f"{receipt.level!r} and status {receipt.status!r}")
        return receipt


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} = {value!r}")
    return value


def parse_receipt(body: bytes) -> Receipt:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ReceiptError(f"receipt is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ReceiptError("receipt is not a JSON object")
    return Receipt.from_json(data)


def apply_receipt(outbox: Outbox, delivery: Delivery) -> Verdict:
    """Record one delivered receipt; the verdict says whether to ack it."""
    try:
        receipt = parse_receipt(delivery.body)
    except ReceiptError as exc:
        log.error("dropping a malformed receipt: %s", exc, extra={"batch": delivery.message_id})
        return Verdict.DROP
    if outbox.batch(receipt.batch_id) is None:
        log.error("dropping a receipt from %s for a batch this outbox does not hold",
                  receipt.level, extra={"batch": receipt.batch_id})
        return Verdict.DROP
    try:
        state = outbox.record_receipt(
            receipt.batch_id, receipt.level, receipt.status,
            stored_count=receipt.stored,
            failed_count=len(receipt.reasons) if receipt.status == "failed" else 0,
            reasons=receipt.reasons)
    except RetriableError as exc:
        log.warning("receipt not recorded yet, left on the broker: %s", exc,
                    extra={"batch": receipt.batch_id})
        return Verdict.REQUEUE
    if receipt.status == "failed" and state is BatchState.STORED:
        log.warning("receipt from %s %s: failed, for a batch every level has already stored:"
                    " it is about a later copy, so the batch stays stored%s", receipt.level,
                    receipt.division,
                    f"; reasons: {'; '.join(receipt.reasons[:3])}" if receipt.reasons else "",
                    extra={"batch": receipt.batch_id})
        return Verdict.ACK
    log_at = logging.WARNING if receipt.status == "failed" else logging.INFO
    log.log(log_at, "receipt from %s %s: %s (stored %d, duplicates %d, conflicts %d)%s; "
            "batch now %s", receipt.level, receipt.division, receipt.status, receipt.stored,
            receipt.duplicates, receipt.conflicts,
            f" reasons: {'; '.join(receipt.reasons[:3])}" if receipt.reasons else "",
            state.value, extra={"batch": receipt.batch_id})
    return Verdict.ACK

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
from frontend_machine.report import level_name, reason_said, say, status_name, steps_said
from schemas.errors import RetriableError

__all__ = ["Receipt", "ReceiptError", "apply_receipt", "parse_receipt"]

log = logging.getLogger("exgate.agent.receipts")
STATUSES = ("stored", "failed")


class ReceiptError(ValueError):
    """A receipt that is not what the contract says; ``str`` is English, ``zh`` Chinese."""

    def __init__(self, message: str, zh: str) -> None:
        super().__init__(message)
        self.zh = zh

    def message(self, lang: str) -> str:
        return str(self) if lang == "en" else self.zh


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
            raise ReceiptError(f"receipt lacks or mangles a field: {exc}",
                               f"回执缺少字段或字段有误：{exc}") from exc
        if receipt.level not in ALL_LEVELS or receipt.status not in STATUSES:
            raise ReceiptError(f"receipt for batch {receipt.batch_id} has level "
                               f"{receipt.level!r} and status {receipt.status!r}",
                               f"批次 {receipt.batch_id} 的回执中，级别 {receipt.level!r} "
                               f"或状态 {receipt.status!r} 不合约定")
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
        raise ReceiptError(f"receipt is not JSON: {exc}", f"回执不是 JSON：{exc}") from exc
    if not isinstance(data, dict):
        raise ReceiptError("receipt is not a JSON object", "回执不是 JSON 对象")
    return Receipt.from_json(data)


def apply_receipt(outbox: Outbox, delivery: Delivery, lang: str = "zh") -> Verdict:
    """Record one delivered receipt; the verdict says whether to ack it.

    ``lang``: of the log lines ("zh" or "en").
    """
    try:
        receipt = parse_receipt(delivery.body)
    except ReceiptError as exc:
        log.error(say("receipt-malformed", lang, error=exc.message(lang)),
                  extra={"batch": delivery.message_id})
        return Verdict.DROP
    if outbox.batch(receipt.batch_id) is None:
        log.error(say("receipt-unknown", lang, level=level_name(receipt.level, lang)),
                  extra={"batch": receipt.batch_id})
        return Verdict.DROP
    try:
        state = outbox.record_receipt(
            receipt.batch_id, receipt.level, receipt.status,
            stored_count=receipt.stored,
            failed_count=len(receipt.reasons) if receipt.status == "failed" else 0,
            reasons=receipt.reasons)
    except RetriableError as exc:
        log.warning(say("receipt-held", lang, error=exc.message(lang)),
                    extra={"batch": receipt.batch_id})
        return Verdict.REQUEUE
    _log_recorded(receipt, state, _ignored(outbox, receipt), lang)
    return Verdict.ACK


def _ignored(outbox: Outbox, receipt: Receipt) -> bool:
    """A failed receipt from a level that had stored the batch: the outbox kept that
    level's ``stored`` receipt (``record_receipt``), whatever the other levels said."""
    return receipt.status == "failed" and any(
        kept["level"] == receipt.level and kept["status"] == "stored"
        for kept in outbox.receipts_of(receipt.batch_id))


def _log_recorded(receipt: Receipt, state: BatchState, ignored: bool, lang: str) -> None:
    """INFO for a stored receipt, WARNING for a failed one (the reasons: the first three,
    and what to do about them); a failed one the outbox ``ignored`` is said to be late,
    with the batch's state."""
    reasons = ("; " if lang == "en" else "；").join(
        reason_said(reason, lang) for reason in receipt.reasons[:3])
    level = level_name(receipt.level, lang)
    if ignored:
        log.warning(say("receipt-late-failure", lang, level=level, division=receipt.division,
                        state=status_name(state.value, lang),
                        reasons=say("receipt-late-reasons", lang, reasons=reasons)
                        if reasons else ""),
                    extra={"batch": receipt.batch_id})
        return
    steps = steps_said(receipt.reasons[:3], receipt.batch_id, lang)
    log_at = logging.WARNING if receipt.status == "failed" else logging.INFO
    log.log(log_at, say("receipt", lang, level=level, division=receipt.division,
                        status=status_name(receipt.status, lang), stored=receipt.stored,
                        duplicates=receipt.duplicates, conflicts=receipt.conflicts,
                        reasons=say("receipt-reasons", lang, reasons=reasons) if reasons else "",
                        state=status_name(state.value, lang),
                        steps=say("receipt-steps", lang, steps=steps) if steps else ""),
            extra={"batch": receipt.batch_id})

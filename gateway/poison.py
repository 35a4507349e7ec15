"""Telling a poison delivery (it will fail however long we wait) from an outage.

The consumer holds a delivery through failures: an outage ends and the batch goes
through, so waiting is right. A batch that fails for a reason no wait cures (a table the
store lacks, a value the database refuses, a bug that raises on this payload) would be
held ``hold_seconds`` per delivery and up to the queue's delivery limit, blocking a
worker and a prefetch slot for hours. ``Streak`` counts such failures of one delivery;
after ``poison_attempts`` in a row the consumer keeps the batch as a failed batch
(payload and reason, for replay) and acks it.

Never an outage: ``RetriableError`` (store or broker away, locks, deadlocks, a failover
the store reports as such), ``ConfigError`` (the installation, not the batch: once the
operator fixes it, held batches go through by themselves), ``OSError`` and
``MemoryError`` (the machine) are transient and break a streak, so a store that flaps
between "away" and a stranger error is never taken for poison.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import ConfigError, RetriableError, message_of
from schemas.messages import Localized

__all__ = ["POISON_REASON", "Streak", "describe", "transient"]

POISON_REASON = "processing-error"  # the failed batch's reason code, as refusals have theirs
_TRANSIENT = (RetriableError, ConfigError, OSError, MemoryError)


def transient(exc: BaseException) -> bool:
    """True when waiting may cure the failure: never a reason to give up on a batch."""
    return isinstance(exc, _TRANSIENT)


def describe(exc: BaseException) -> Localized:
    """The exception's type and first line in both languages: the English for the
    failed-batch detail and the receipt, the log's language for the log."""
    def first_line(lang: str) -> str:
        lines = message_of(exc, lang).strip().splitlines()
        silent = "(no message)" if lang == "en" else "（无错误信息）"
        return f"{type(exc).__name__}: {lines[0] if lines else silent}"
    return Localized(first_line("zh"), first_line("en"))


@dataclass
class Streak:
    """Failures in a row of one delivery for no transient reason."""

    limit: int
    count: int = 0

    def failed(self, exc: BaseException) -> bool:
        """Count one failure; True once the delivery has been poison ``limit`` times."""
        if transient(exc):
            self.count = 0
            return False
        self.count += 1
        return self.count >= self.limit

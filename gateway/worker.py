"""A worker thread's part of the level's consumer: one delivery through the ``Pipeline``.

Transient failures never lose a batch. A worker whose store write fails with
``RetriableError`` keeps the delivery unacked and retries with backoff. The quorum
queue's ``x-delivery-limit`` counts *returns* to the queue (on RabbitMQ before 4.3,
every nack-with-requeue and every channel close), so the gateway does not bounce the
message through the queue while it waits: a 30 s outage costs no delivery attempt at
all. Only after ``hold_seconds`` (below the broker's 30 min ``consumer_timeout``) is the
message nacked back (``basic.nack``, which RabbitMQ 4.3+ does not count as a failure),
so even a many-hour outage spends one attempt per ``hold_seconds``; past the limit the
queue dead-letters at least once to ``exgate.dead``, never drops.

Holding only helps when waiting can cure the failure. A delivery that fails
``poison_attempts`` times in a row for no transient reason (``gateway.poison``) is given
up on instead, after the usual short backoff: a batch is kept in the failed-batch store
with a ``failed`` receipt, then acked; a heartbeat is dropped. When even that fails (the
store is away after all) the delivery goes on being held, never lost.

The ``Verdict`` goes back to the consumer's I/O thread (``gateway.consumer``), which
publishes the receipt and acks. The log names a held heartbeat by its node (it has no
batch ID).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.amqp.topology import node_of
from gateway.config import GatewaySettings
from gateway.holds import Holds
from gateway.log_text import both, say
from gateway.pipeline import Delivery, Outcome, Pipeline
from gateway.poison import Streak, describe
from schemas.errors import ExgateError, RetriableError
from schemas.messages import Localized

__all__ = ["Verdict", "Worker", "backoff"]

log = logging.getLogger("exgate.gateway")
MAX_BACKOFF_S = 30.0
Work = Callable[[Delivery], "Verdict"]
GiveUp = Callable[[Delivery, Localized], "Verdict"]  # the delivery and why, for a poison one


@dataclass(frozen=True)
class Verdict:
    """What the I/O thread does with a delivery once a worker is done with it."""

    action: str                    # ack | requeue | leave (unacked until the channel closes)
    outcome: Outcome | None = None


class Worker:
    """What a worker thread does with a delivery: ``patiently`` runs the pipeline on it,
    logging in the pipeline's language."""

    def __init__(self, pipeline: Pipeline, settings: GatewaySettings, stop: threading.Event,
                 holds: Holds) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.stop = stop
        self._holds = holds
        self.lang = pipeline.lang

    def patiently(self, dead: threading.Event, delivery: Delivery, kind: str,
                  taken: float) -> Verdict:
        """Handle a ``kind`` ("batch" | "heartbeat") delivery; hold it through transient
        failures, with backoff, until ``hold_seconds`` after it was ``taken`` (monotonic)
        from the queue: a delivery that waited behind its node's earlier ones (held too)
        must still be settled before the broker's ``consumer_timeout``. ``dead``: the
        connection it came on is gone, let go.

        After ``poison_attempts`` failures in a row for no transient reason it is given
        up on instead; if that fails too, holding goes on. ``holds()`` counts it from its
        first failure until it is settled or let go.
        """
        if kind == "batch":
            work, give_up = self._work_batch, self._give_up_batch
        else:
            work, give_up = self._work_heartbeat, self._give_up_heartbeat
        token = object()  # this delivery in the hold state while this worker has it
        try:
            return self._hold(dead, _Subject.of(kind, delivery), delivery, work, give_up,
                              token, taken)
        finally:
            self._holds.ended(token, through=False)  # let go (or a crash): no longer held

    def _hold(self, dead: threading.Event, subject: _Subject, delivery: Delivery, work: Work,
              give_up: GiveUp, token: object, started: float) -> Verdict:
        failures = 0
        streak = Streak(self.settings.poison_attempts)
        while not (dead.is_set() or self.stop.is_set()):
            try:
                verdict = work(delivery)
            except Exception as exc:  # anything else too is retried, never lost
                failures += 1
                self._holds.failed(token)
                self._log_failure(subject, exc, failures)
                if streak.failed(exc):
                    settled = self._settle_poison(subject, delivery, exc, streak.count,
                                                  give_up)
                    if settled is not None:
                        self._holds.ended(token, through=True)
                        return settled
                if time.monotonic() - started >= self.settings.hold_seconds:
                    return Verdict("requeue")
                dead.wait(min(backoff(failures),
                              max(0.0, self.settings.hold_seconds - (
                                  time.monotonic() - started))))
                continue
            self._holds.ended(token, through=True)
            if failures:
                log.info(say("went-through", self.lang, subject=subject.text,
                             failures=failures), extra=subject.ids)
            return verdict
        return Verdict("leave")

    def _settle_poison(self, subject: _Subject, delivery: Delivery, exc: Exception,
                       attempts: int, give_up: GiveUp) -> Verdict | None:
        cause = both("poison-cause", attempts=attempts, error=describe(exc))
        try:
            return give_up(delivery, cause)
        except Exception as failure:  # the failed-batch store is away too: keep holding
            log.error(say("cannot-settle", self.lang, subject=subject.text, cause=cause,
                          settled=subject.settled, error=describe(failure)),
                      extra=subject.ids)
            return None

    def _work_batch(self, delivery: Delivery) -> Verdict:
        return Verdict("ack", self.pipeline.handle(delivery))

    def _give_up_batch(self, delivery: Delivery, cause: Localized) -> Verdict:
        return Verdict("ack", self.pipeline.quarantine(delivery, cause))

    def _work_heartbeat(self, delivery: Delivery) -> Verdict:
        self.pipeline.heartbeat(delivery)
        return Verdict("ack")

    def _give_up_heartbeat(self, delivery: Delivery, cause: Localized) -> Verdict:
        # A heartbeat is superseded within a minute: not worth keeping for a replay.
        log.error(say("heartbeat-dropped", self.lang, key=delivery.routing_key, cause=cause))
        return Verdict("ack")

    def _log_failure(self, subject: _Subject, exc: Exception, failures: int) -> None:
        if not isinstance(exc, ExgateError):
            log.exception(say("held-unexpected", self.lang, subject=subject.text),
                          extra=subject.ids)
            return
        level = logging.ERROR
        if isinstance(exc, RetriableError):
            level = logging.WARNING if failures == 1 or failures % 10 == 0 else logging.DEBUG
        log.log(level, say("held", self.lang, subject=subject.text, failures=failures,
                           error=exc), extra=subject.ids)


@dataclass(frozen=True)
class _Subject:
    """How the log names a delivery, and the ids it files the lines under."""

    text: Localized                # "batch B… from node n1" | "heartbeat of node n1"
    ids: dict[str, Any]
    settled: Localized             # what giving up on it means

    @classmethod
    def of(cls, kind: str, delivery: Delivery) -> _Subject:
        if kind == "heartbeat":
            # No batch ID, no node header: the routing key names the node (its topic
            # permissions let it publish under its own only).
            sender = node_of(delivery.routing_key)[:64]
            return cls(both("heartbeat-subject", node=sender), {"node_id": sender},
                       both("settle-heartbeat"))
        node = delivery.headers.get("x-exgate-node")
        return cls(both("batch-subject", batch=delivery.message_id, node=node),
                   {"batch_id": delivery.message_id, "node_id": node}, both("settle-batch"))


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling, capped."""
    return float(min(MAX_BACKOFF_S, 0.25 * 2 ** min(failures, 10)))

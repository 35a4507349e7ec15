"""Poison deliveries: a batch that keeps failing for no transient reason is kept as failed.

The consumer's worker loop (``Worker.patiently``) runs here without a broker: the
pipeline is real, the store is the in-memory one with scripted failures.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from adapters.sealing import NodeKeys, generate_node_keys
from adapters.stores.base import (
    SETTLED_BY_STORING,
    FailedBatch,
    Heartbeat,
    IncomingBatch,
    ReceiptRow,
    WriteResult,
)
from gateway.config import GatewaySettings
from gateway.holds import Holds
from gateway.pipeline import Delivery, Pipeline
from gateway.poison import POISON_REASON, Streak, transient
from gateway.worker import Verdict, Worker
from schemas.errors import ConfigError, FatalError, RetriableError
from schemas.messages import Localized
from tests.unit.gateway.test_pipeline import NOW, FakeRegistry, MemoryStore, delivery, plain

MISSING_TABLE = FatalError("cannot store batch B1 at sqlite:///s.db: no such table: ST_SL")
OUTAGE = RetriableError("cannot store batch B1 at sqlite:///s.db: database is locked; "
                        "will retry")


@dataclass
class ScriptedStore(MemoryStore):
    """``write`` raises the next of ``errors`` (None: it works); so may the other writes."""

    errors: Iterator[BaseException | None] = field(default_factory=lambda: itertools.repeat(None))
    writes: int = 0
    failed_errors: Iterator[BaseException | None] = field(
        default_factory=lambda: itertools.repeat(None))
    receipt_error: BaseException | None = None
    heartbeat_error: BaseException | None = None

    def write(self, batch: IncomingBatch) -> WriteResult:
        self.writes += 1
        error = next(self.errors)
        if error is not None:
            raise error
        return super().write(batch)

    def record_failed(self, failed: FailedBatch) -> None:
        error = next(self.failed_errors)
        if error is not None:
            raise error
        super().record_failed(failed)

    def record_receipt(self, receipt: ReceiptRow) -> None:
        if self.receipt_error is not None:
            raise self.receipt_error
        super().record_receipt(receipt)

    def record_heartbeat(self, heartbeat: Heartbeat) -> None:
        if self.heartbeat_error is not None:
            raise self.heartbeat_error
        super().record_heartbeat(heartbeat)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.worker.backoff", lambda failures: 0.01)


@pytest.fixture
def keys() -> NodeKeys:
    return generate_node_keys("n1", 1)


@pytest.fixture
def message(keys: NodeKeys) -> Delivery:
    return delivery(keys, plain())


def pipeline_over(store: MemoryStore, keys: NodeKeys) -> Pipeline:
    registry = FakeRegistry()
    registry.add(keys, "430102")
    return Pipeline("430100", registry, store, clock=lambda: NOW)


def patiently(pipeline: Pipeline, message: Delivery, *, hold_seconds: float = 5.0,
              poison_attempts: int = 3, kind: str = "batch",
              waited: float = 0.0) -> Verdict:
    """What the worker loop decides; ``hold_seconds`` bounds a loop that never settles.
    ``waited``: how long ago the delivery was taken from the queue (behind its node's
    earlier deliveries)."""
    settings = GatewaySettings(workers=1, prefetch=1, hold_seconds=hold_seconds,
                               poison_attempts=poison_attempts)
    worker = Worker(pipeline, settings, threading.Event(), Holds())
    return worker.patiently(threading.Event(), message, kind, time.monotonic() - waited)


def test_a_batch_failing_for_no_transient_reason_becomes_a_failed_batch(
        keys: NodeKeys, message: Delivery, caplog: pytest.LogCaptureFixture) -> None:
    store = ScriptedStore(errors=itertools.repeat(MISSING_TABLE))
    with caplog.at_level(logging.ERROR, logger="exgate.gateway"):
        verdict = patiently(pipeline_over(store, keys), message)
    assert store.writes == 3                       # poison_attempts, then no more
    assert verdict.action == "ack" and verdict.outcome is not None
    outcome = verdict.outcome
    assert (outcome.status, outcome.reason, outcome.receipt_to) == ("failed", POISON_REASON,
                                                                    "n1")
    [kept] = store.failed
    assert (kept.batch_id, kept.node_id, kept.reason, kept.body, kept.routing_key) == (
        "B1", "n1", POISON_REASON, message.body, message.routing_key)
    assert "3 times in a row" in kept.detail and "FatalError: " in kept.detail
    assert "no such table: ST_SL" in kept.detail
    assert [(r.batch_id, r.status) for r in store.receipts] == [("B1", "failed")]
    assert outcome.receipt["reasons"][0].startswith(f"{POISON_REASON}: failed 3 times")
    assert any("B1" in r.getMessage() and POISON_REASON in r.getMessage()
               for r in caplog.records)


def test_a_bug_raising_on_one_payload_is_poison_too(keys: NodeKeys, message: Delivery) -> None:
    store = ScriptedStore(errors=itertools.repeat(KeyError("SL")))
    verdict = patiently(pipeline_over(store, keys), message, poison_attempts=2)
    assert verdict.action == "ack" and store.writes == 2
    assert "KeyError: 'SL'" in store.failed[0].detail


@pytest.mark.parametrize("outage", [OUTAGE, ConfigError("registry/n1.json: cannot read"),
                                    OSError(5, "Input/output error")])
def test_an_outage_is_held_and_never_taken_for_poison(keys: NodeKeys, message: Delivery,
                                                      outage: Exception) -> None:
    store = ScriptedStore(errors=itertools.repeat(outage))
    verdict = patiently(pipeline_over(store, keys), message, hold_seconds=0.3)
    assert verdict == Verdict("requeue")
    assert store.writes > 3 and not store.failed and not store.receipts


def test_a_delivery_that_waited_its_hold_behind_its_nodes_earlier_ones_is_tried_once(
        keys: NodeKeys, message: Delivery) -> None:
    # The hold counts from when it was taken: the broker's consumer_timeout does too.
    store = ScriptedStore(errors=itertools.repeat(OUTAGE))
    verdict = patiently(pipeline_over(store, keys), message, hold_seconds=600, waited=600)
    assert verdict == Verdict("requeue")
    assert store.writes == 1 and not store.failed


def test_an_outage_between_stranger_errors_breaks_the_streak(keys: NodeKeys,
                                                             message: Delivery) -> None:
    # A store that flaps may raise anything while it goes: only failures in a row count.
    store = ScriptedStore(errors=itertools.cycle([MISSING_TABLE, MISSING_TABLE, OUTAGE]))
    verdict = patiently(pipeline_over(store, keys), message, hold_seconds=0.3)
    assert verdict == Verdict("requeue")
    assert store.writes > 3 and not store.failed


def test_a_batch_that_goes_through_in_time_is_stored(keys: NodeKeys, message: Delivery) -> None:
    store = ScriptedStore(errors=iter([MISSING_TABLE, MISSING_TABLE, None]))
    verdict = patiently(pipeline_over(store, keys), message)
    assert verdict.outcome is not None and verdict.outcome.status == "stored"
    assert not store.failed and [r.status for r in store.receipts] == ["stored"]


def test_a_poison_batch_stays_held_while_the_failed_store_is_away(keys: NodeKeys,
                                                                  message: Delivery) -> None:
    store = ScriptedStore(errors=itertools.repeat(MISSING_TABLE),
                          failed_errors=itertools.repeat(OUTAGE))
    verdict = patiently(pipeline_over(store, keys), message, hold_seconds=0.3)
    assert verdict == Verdict("requeue")            # back to the queue, never acked
    assert not store.failed and not store.receipts


def test_a_poison_batch_is_kept_once_the_failed_store_is_back(keys: NodeKeys,
                                                              message: Delivery) -> None:
    store = ScriptedStore(errors=itertools.repeat(MISSING_TABLE),
                          failed_errors=iter([OUTAGE, OUTAGE, None]))
    verdict = patiently(pipeline_over(store, keys), message)
    assert verdict.action == "ack" and [f.reason for f in store.failed] == [POISON_REASON]
    assert store.writes == 5


def test_a_stored_batch_is_never_reported_failed(keys: NodeKeys, message: Delivery) -> None:
    # The write commits, then keeping the receipt fails: the batch is fine, the store not.
    store = ScriptedStore(receipt_error=FatalError("no such table: ST_RECEIPT"))
    verdict = patiently(pipeline_over(store, keys), message, hold_seconds=0.3)
    assert verdict == Verdict("requeue")
    assert store.batch_state("B1") == "stored" and not store.failed


def test_a_poison_heartbeat_is_dropped(keys: NodeKeys, caplog: pytest.LogCaptureFixture
                                       ) -> None:
    store = ScriptedStore(heartbeat_error=FatalError("no such table: ST_HEARTBEAT"))
    beat = Delivery("430000.430100.430102.n1", b'{"node_id": "n1"}', None, "u-n1", {})
    with caplog.at_level(logging.ERROR, logger="exgate.gateway"):
        verdict = patiently(pipeline_over(store, keys), beat, kind="heartbeat")
    assert verdict == Verdict("ack") and not store.failed
    assert caplog.records[-1].getMessage() == (  # the log is Chinese by default
        "路由键 430000.430100.430102.n1 的心跳连续失败 3 次（最后一次错误：FatalError: "
        "no such table: ST_HEARTBEAT）：已丢弃")


def test_quarantine_sends_a_receipt_only_to_a_proven_node(keys: NodeKeys,
                                                          message: Delivery) -> None:
    store = ScriptedStore()
    pipeline = pipeline_over(store, keys)
    outcome = pipeline.quarantine(replace(message, user_id="u-someone-else"),
                                  Localized("处理失败", "it failed"))
    assert (outcome.status, outcome.receipt_to) == ("failed", None)
    assert [(f.node_id, f.detail) for f in store.failed] == \
        [(None, "it failed (x-exgate-node claims 'n1')")] and not store.receipts


def test_a_stored_batch_settles_its_quarantined_refusals() -> None:
    # The store names the reason by its text (adapters import no gateway code): a renamed
    # POISON_REASON would leave every quarantined-then-stored batch outstanding.
    assert POISON_REASON in SETTLED_BY_STORING


def test_a_streak_counts_failures_in_a_row_for_no_transient_reason() -> None:
    streak = Streak(3)
    assert not streak.failed(MISSING_TABLE) and not streak.failed(ValueError("bug"))
    assert not streak.failed(OUTAGE) and streak.count == 0
    assert [streak.failed(MISSING_TABLE) for _ in range(3)] == [False, False, True]
    assert all(transient(e) for e in (OUTAGE, ConfigError("x"), OSError(), MemoryError()))
    assert not any(transient(e) for e in (MISSING_TABLE, KeyError("x"), RuntimeError()))

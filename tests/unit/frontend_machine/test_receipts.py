"""Receipts from the levels: recorded in the outbox, acked only once they are committed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sources.base import Chunk, Origin
from frontend_machine.link import Delivery, Verdict
from frontend_machine.outbox import Outbox
from frontend_machine.outbox_batches import BatchState
from frontend_machine.receipts import apply_receipt
from schemas.errors import RetriableError
from schemas.record_check import RecordCheck
from schemas.records import Record
from tests.unit.schemas.documents import record as document_record


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db", levels=("province",)) as box:
        yield box


def sent_batch(outbox: Outbox) -> str:
    _, fields = document_record("SBXX", SBLSH="A")
    record = Record("SBXX", fields, ("A",), 1, None)
    outbox.journal("src", Chunk(((Origin("src", "EX_SBXX#1"),
                                  RecordCheck("SBXX", None, record, ())),)))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    outbox.mark_sent(batch)
    return batch


def delivery(**receipt: Any) -> Delivery:
    body = {"level": "province", "division": "430000", "status": "stored", "stored": 1,
            "reasons": []} | receipt
    return Delivery(json.dumps(body).encode(), str(receipt.get("batch_id")), False)


def test_a_receipt_is_recorded_then_acked(outbox: Outbox) -> None:
    batch = sent_batch(outbox)
    assert apply_receipt(outbox, delivery(batch_id=batch)) is Verdict.ACK
    assert outbox.batch(batch).state is BatchState.STORED  # type: ignore[union-attr]


def test_a_failed_receipt_for_a_stored_batch_is_acked_and_leaves_it_stored(
        outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    batch = sent_batch(outbox)
    apply_receipt(outbox, delivery(batch_id=batch))
    refused = delivery(batch_id=batch, status="failed", reasons=["resent with other content"])
    assert apply_receipt(outbox, refused, "en") is Verdict.ACK
    assert outbox.batch(batch).state is BatchState.STORED  # type: ignore[union-attr]
    assert "about a later copy" in caplog.text and "resent with other content" in caplog.text


@pytest.mark.parametrize(("lang", "expected"), [
    ("zh", "收到省级（430000）的回执：失败，但该级已入库该批次：该回执针对的是之后重发的另一份"
           "副本，或早于入库的旧回执，批次状态不变（现为：已发送）；原因：节点已停用（node-disabled）："
           "node n1 is disabled"),
    ("en", "receipt from province 430000: failed, for a batch that level has already stored: "
           "it is about a later copy, or older than the stored one, so the batch stays sent; "
           "reasons: node disabled (node-disabled): node n1 is disabled"),
])
def test_a_refusal_redelivered_after_the_levels_stored_receipt_leaves_the_batch_sent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, lang: str, expected: str) -> None:
    with Outbox(tmp_path / "city.db", levels=("province", "city")) as box:
        batch = sent_batch(box)
        assert apply_receipt(box, delivery(batch_id=batch)) is Verdict.ACK
        refused = delivery(batch_id=batch, status="failed", stored=0,
                           reasons=["node-disabled: node n1 is disabled"])
        with caplog.at_level(logging.INFO, "exgate.agent.receipts"):
            assert apply_receipt(box, refused, lang) is Verdict.ACK
        assert box.batch(batch).state is BatchState.SENT  # type: ignore[union-attr]
        assert [(r["level"], r["status"]) for r in box.receipts_of(batch)] == [
            ("province", "stored")]
    assert caplog.records[-1].getMessage() == expected


def test_a_late_refusal_from_a_level_that_stored_is_said_late_while_another_refuses(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The batch is failed (the city refused it), yet the province's late refusal is not
    # recorded: the log must not report it as the province's refusal.
    with Outbox(tmp_path / "city.db", levels=("province", "city")) as box:
        batch = sent_batch(box)
        apply_receipt(box, delivery(batch_id=batch))
        apply_receipt(box, delivery(batch_id=batch, level="city", division="430100",
                                    status="failed", stored=0, reasons=["node-disabled"]))
        late = delivery(batch_id=batch, status="failed", stored=0, reasons=["node-disabled"])
        with caplog.at_level(logging.INFO, "exgate.agent.receipts"):
            assert apply_receipt(box, late, "en") is Verdict.ACK
        assert box.batch(batch).state is BatchState.FAILED  # type: ignore[union-attr]
        assert [(r["level"], r["status"]) for r in box.receipts_of(batch)] == [
            ("city", "failed"), ("province", "stored")]
    said = caplog.records[-1].getMessage()
    assert said.startswith("receipt from province 430000: failed, for a batch that level "
                           "has already stored") and "stays failed" in said


def test_a_malformed_receipt_is_dropped(outbox: Outbox) -> None:
    assert apply_receipt(outbox, Delivery(b"not json", None, False)) is Verdict.DROP


def test_a_receipt_for_a_batch_this_outbox_never_had_is_dropped(outbox: Outbox) -> None:
    """After the outbox was re-created, old receipts still wait on the node's queue.

    They can never apply; raising instead left each one unacked on the channel for good
    and stopped the publisher's step at every redelivery.
    """
    sent_batch(outbox)
    assert apply_receipt(outbox, delivery(batch_id="B20261120100000-0123456789ab")) \
        is Verdict.DROP
    assert outbox.receipts_of("B20261120100000-0123456789ab") == []


def test_a_receipt_the_outbox_cannot_commit_stays_on_the_broker(
        outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = sent_batch(outbox)

    def full(*args: object, **kwargs: object) -> BatchState:
        raise RetriableError("database or disk is full")

    monkeypatch.setattr(outbox, "record_receipt", full)
    assert apply_receipt(outbox, delivery(batch_id=batch)) is Verdict.REQUEUE


# -- the agent's language -----------------------------------------------------------------


@pytest.mark.parametrize(("lang", "expected"), [
    (None, "收到省级（430000）的回执：已入库（入库 1 条，重复 0 条，冲突 0 条）；批次现为：已入库"),
    ("zh", "收到省级（430000）的回执：已入库（入库 1 条，重复 0 条，冲突 0 条）；批次现为：已入库"),
    ("en", "receipt from province 430000: stored (stored 1, duplicates 0, conflicts 0); "
           "batch now stored"),
])
def test_a_receipt_is_logged_in_the_agents_language(
        outbox: Outbox, caplog: pytest.LogCaptureFixture, lang: str | None,
        expected: str) -> None:
    batch = sent_batch(outbox)
    with caplog.at_level(logging.INFO, "exgate.agent.receipts"):
        if lang is None:  # the default: Chinese
            apply_receipt(outbox, delivery(batch_id=batch))
        else:
            apply_receipt(outbox, delivery(batch_id=batch), lang)
    [line] = [r for r in caplog.records if r.name == "exgate.agent.receipts"]
    assert (line.levelno, line.getMessage(), line.batch) == (  # type: ignore[attr-defined]
        logging.INFO, expected, batch)


@pytest.mark.parametrize(("lang", "expected"), [
    ("zh", "回执暂未记录，留在消息服务器上稍后再记：database or disk is full"),
    ("en", "receipt not recorded yet, left on the broker: database or disk is full")])
def test_a_receipt_left_on_the_broker_says_so_in_the_agents_language(
        outbox: Outbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        lang: str, expected: str) -> None:
    batch = sent_batch(outbox)

    def full(*args: object, **kwargs: object) -> BatchState:
        raise RetriableError("database or disk is full")  # sqlite's words stay as they are

    monkeypatch.setattr(outbox, "record_receipt", full)
    apply_receipt(outbox, delivery(batch_id=batch), lang)
    assert [r.getMessage() for r in caplog.records] == [expected]


def test_a_malformed_receipt_is_named_in_the_agents_language(
        outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    apply_receipt(outbox, Delivery(b"[]", None, False))
    apply_receipt(outbox, Delivery(b"[]", None, False), "en")
    assert [r.getMessage() for r in caplog.records] == [
        "丢弃格式错误的回执：回执不是 JSON 对象",
        "dropping a malformed receipt: receipt is not a JSON object"]


@pytest.mark.parametrize(("lang", "expected"), [
    ("zh", "收到省级（430000）的回执：失败（入库 0 条，重复 0 条，冲突 0 条），原因："
           "节点已停用（node-disabled）：node n1 is disabled；内容摘要不符（sha256-mismatch）："
           "digest differs；内容摘要不符（sha256-mismatch）：digest differs again；批次现为：失败；"
           "处理办法：本节点已被省级中心停用：如应恢复，请联系省级中心启用，之后由其重放该批次；"
           "该副本无法使用：请在本前置机上运行 exgate agent replay {batch} 重新发送"),
    ("en", "receipt from province 430000: failed (stored 0, duplicates 0, conflicts 0) "
           "reasons: node disabled (node-disabled): node n1 is disabled; payload digest does "
           "not match (sha256-mismatch): digest differs; payload digest does not match "
           "(sha256-mismatch): digest differs again; batch now failed; what to do: the "
           "provincial centre disabled this node: if it should send, ask the centre to enable "
           "it; it then replays the batch; this copy cannot be used: send it again with exgate "
           "agent replay {batch} on this front-end machine"),
])
def test_a_failed_receipts_reasons_are_named_with_what_to_do_in_the_agents_language(
        outbox: Outbox, caplog: pytest.LogCaptureFixture, lang: str, expected: str) -> None:
    batch = sent_batch(outbox)
    refused = delivery(batch_id=batch, status="failed", stored=0,
                       reasons=["node-disabled: node n1 is disabled",
                                "sha256-mismatch: digest differs",
                                "sha256-mismatch: digest differs again"])
    with caplog.at_level(logging.INFO, "exgate.agent.receipts"):
        apply_receipt(outbox, refused, lang)
    assert [r.getMessage() for r in caplog.records] == [expected.format(batch=batch)]

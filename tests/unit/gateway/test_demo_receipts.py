"""The demo runs its agents again until every batch's receipts are in, within a bound."""

from __future__ import annotations

from typing import cast

import pytest

from gateway import demo


def test_agents_run_again_until_no_batch_awaits_its_receipts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[bool] = []
    awaiting = iter([True, True, False])
    monkeypatch.setattr(demo, "_run_agents", lambda _demo, report: runs.append(report))
    monkeypatch.setattr(demo, "_awaiting_receipts", lambda _demo: next(awaiting))
    demo._collect_receipts(cast(demo._Demo, object()))  # the fakes ignore it
    assert runs == [False, False, False]


def test_receipts_that_never_come_end_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[bool] = []
    monkeypatch.setattr(demo, "RECEIPTS_WAIT_S", 0.0)
    monkeypatch.setattr(demo, "_run_agents", lambda _demo, report: runs.append(report))
    monkeypatch.setattr(demo, "_awaiting_receipts", lambda _demo: True)
    demo._collect_receipts(cast(demo._Demo, object()))  # the fakes ignore it
    assert runs == [False]

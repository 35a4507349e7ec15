"""Every refusal reason the gateway can give has words and a next step in both
languages: a reason added without them would show as a bare code on Chinese screens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.stores.base import BATCH_ID_REUSED_REASON
from gateway.dead_letters import DEAD_LETTERED
from gateway.poison import POISON_REASON
from schemas.refusals import REFUSAL_REASONS, next_step, node_step, reason_name

ROOT = Path(__file__).resolve().parents[3]
# Where reasons are raised: Refusal("…") in the pipeline, SealError("…") in sealing,
# reason="…" wherever a batch is quarantined; and the named constants.
_RAISED = re.compile(r'(?:Refusal|SealError)\(\s*"([a-z0-9-]+)"|reason="([a-z0-9-]+)"')


def raised_reasons() -> set[str]:
    found: set[str] = set()
    for path in (*ROOT.joinpath("gateway").glob("*.py"), ROOT / "adapters" / "sealing.py"):
        for match in _RAISED.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2))
    return found | {POISON_REASON, BATCH_ID_REUSED_REASON, DEAD_LETTERED}


def test_every_raised_reason_is_explained() -> None:
    raised = raised_reasons()
    assert {"bad-signature", "unknown-node", "division-outside"} <= raised  # it scans
    assert raised - REFUSAL_REASONS.keys() == set()


@pytest.mark.parametrize("code", sorted(REFUSAL_REASONS))
def test_each_reason_reads_in_both_languages(code: str) -> None:
    name, step = reason_name(code), next_step(code)
    assert step is not None
    assert code in name.zh and code in name.en and name.zh != name.en
    assert re.search(r"[\u4e00-\u9fff]", name.zh + step.zh)
    assert not re.search(r"[\u4e00-\u9fff]", name.en + step.en)
    assert step.en[0].isupper()


def test_an_unknown_code_is_shown_as_it_is() -> None:
    assert reason_name("new-reason") == ("new-reason", "new-reason")
    assert next_step("new-reason") is None


@pytest.mark.parametrize("code", sorted(REFUSAL_REASONS))
def test_each_reason_tells_the_node_s_staff_what_they_can_do(code: str) -> None:
    """The level's steps name gateway commands (node enable, batches replay): the node's
    own staff get steps of their own, with the batch's ID filled in."""
    step = node_step(code, "B-20261124-0001")
    assert step is not None
    assert re.search(r"[\u4e00-\u9fff]", step.zh) and not re.search(r"[\u4e00-\u9fff]", step.en)
    for words in (step.zh, step.en):
        assert "exgate batches replay" not in words and "exgate node enable" not in words
        assert "{" not in words and "BATCH_ID" not in words
        if "agent replay" in words:
            assert "exgate agent replay B-20261124-0001" in words
    assert node_step("new-reason", "B1") is None

"""Every refusal reason the gateway can give has words and a next step in both
languages: a reason added without them would show as a bare code on Chinese screens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.stores.base import BATCH_ID_REUSED_REASON
from gateway.dead_letters import DEAD_LETTERED
from gateway.poison import POISON_REASON
from schemas.refusals import REFUSAL_REASONS, next_step, reason_name

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

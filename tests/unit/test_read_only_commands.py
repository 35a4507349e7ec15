"""Commands that only read open what is there: a mistyped store or outbox path is an
error naming it, in Chinese by default, and nothing is created at that path.

Before, each of them created an empty store or outbox there and reported on it: "0
batches, 0 failed", or a dashboard answering 503 for ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from gateway.dashboard.command import run_dashboard
from tests.unit.frontend_machine.test_run_once import write_config as agent_config
from tests.unit.gateway.test_replay import write_config as gateway_config


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def missing_store(tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "typo" / "stroe.db"
    return gateway_config(tmp_path, f"sqlite:///{store}", tmp_path / "registry"), store


@pytest.mark.parametrize("command", [["batches", "list"], ["batches", "show", "B1"],
                                     ["status"], ["export", "--out", "EXPORT"]])
def test_a_gateway_command_that_reads_never_creates_the_store(
        missing_store: tuple[Path, Path], command: list[str]) -> None:
    config, store = missing_store
    command = [str(config.parent / "out") if part == "EXPORT" else part for part in command]
    code, out = invoke(*command, "-c", str(config))
    assert code == 2 and f"未找到监察库：{store}" in out
    assert not store.parent.exists()
    code, out = invoke(*command, "-c", str(config), "--lang", "en")
    assert code == 2 and f"store not found: {store}" in out


def test_the_dashboard_never_creates_the_store(missing_store: tuple[Path, Path]) -> None:
    config, store = missing_store
    assert run_dashboard(config, "127.0.0.1:0") == 2
    assert not store.parent.exists()


@pytest.mark.parametrize("command", [["agent", "batches"], ["agent", "replay", "--all-failed"]])
def test_an_agent_command_that_reads_never_creates_the_outbox(tmp_path: Path,
                                                              command: list[str]) -> None:
    config = agent_config(tmp_path)
    outbox = tmp_path / "outbox.db"
    code, out = invoke(*command, "-c", str(config))
    assert code == 2 and "未找到发件箱" in out and str(outbox) in out
    assert not outbox.exists()

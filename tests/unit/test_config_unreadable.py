"""A config file the operator's user may not read is named in exgate's own words (in
Chinese by default; the gateway service in its log), not refused by click in English
before exgate sees it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main


@pytest.fixture
def unreadable(tmp_path: Path, deny: Callable[[Path], None]) -> Path:
    config = tmp_path / "exgate.toml"
    config.write_text("[store]\n", encoding="utf-8")
    deny(config)
    return config


@pytest.mark.parametrize("command", [
    ["agent", "once"], ["agent", "run"], ["agent", "batches"], ["status"],
])
def test_an_unreadable_config_file_is_named_with_the_reason(unreadable: Path,
                                                            command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "-c", str(unreadable)])
    assert result.exit_code == 2
    assert "is not readable" not in result.output
    assert f"{unreadable}：无法读取配置文件" in result.output


def test_the_gateway_service_logs_an_unreadable_config_file(
        unreadable: Path, caplog: pytest.LogCaptureFixture) -> None:
    result = CliRunner().invoke(main, ["gateway", "run", "-c", str(unreadable)])
    assert result.exit_code == 2
    # No [gateway] lang can be read from it: said in Chinese, the default.
    assert f"{unreadable}：无法读取配置文件" in caplog.text

"""``exgate gateway run`` refuses to start what could only fail batch after batch."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.run import run_gateway
from tests.unit.gateway.test_replay import write_config


def started(config: Path, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="exgate.gateway"):
        code = run_gateway(config, drain=True)
    return code, caplog.text


def test_a_broker_user_without_a_password_is_a_config_error_not_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped example leaves password_file commented out: pika then failed with
    # "argument of type 'NoneType' is not iterable" and exit code 1.
    monkeypatch.delenv("EXGATE_BROKER_PASSWORD", raising=False)
    (tmp_path / "registry").mkdir()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "registry")
    code, text = started(config, caplog)
    assert code == 2 and "[broker] url 给出了用户名但没有口令" in text  # Chinese by default


def test_a_registry_folder_that_is_not_there_is_a_config_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mistyped path refused every batch as an unknown node's, and sent no receipt.
    monkeypatch.setenv("EXGATE_BROKER_PASSWORD", "s3cret")
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "registy")
    with config.open("a", encoding="utf-8") as toml:
        toml.write('[gateway]\nlang = "en"\n')
    code, text = started(config, caplog)
    assert code == 2 and f"[registry] path {tmp_path / 'registy'} is not a folder" in text
    assert not (tmp_path / "store.db").exists()  # nothing was started



def test_a_lang_other_than_zh_or_en_is_a_config_error_naming_the_key(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXGATE_BROKER_PASSWORD", "s3cret")
    (tmp_path / "registry").mkdir()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "registry")
    with config.open("a", encoding="utf-8") as toml:
        toml.write('[gateway]\nlang = "fr"\n')
    code, text = started(config, caplog)
    # Said in Chinese, the default: the config asks for no language there is.
    assert code == 2 and f"{config}：[gateway] lang 为 'fr'；请使用 \"zh\" 或 \"en\"" in text
    assert not (tmp_path / "store.db").exists()

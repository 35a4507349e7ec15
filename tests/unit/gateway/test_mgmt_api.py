"""The management API's admin credentials stay off the command line."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gateway.broker_state import STATE_FILE, STATE_VERSION, NodeSettings, load_settings, read_pids
from gateway.mgmt_api import ManagementApi
from schemas.errors import ConfigError, RetriableError


def test_the_admin_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXGATE_ADMIN_PASSWORD", "s3cret")
    api = ManagementApi.from_url("http://admin@127.0.0.1:15672")
    assert "s3cret" not in repr(api)
    assert api._auth == "Basic " + base64.b64encode(b"admin:s3cret").decode()


@pytest.mark.parametrize("url", ["http://127.0.0.1:15672", "http://admin@127.0.0.1:port",
                                 "http://admin@[::1:15672", "http://admin@:15672"])
def test_a_malformed_url_says_its_form_and_where_the_password_goes(url: str) -> None:
    with pytest.raises(ConfigError, match="EXGATE_ADMIN_PASSWORD") as refused:
        ManagementApi.from_url(url)
    assert "http://USER@HOST:PORT" in refused.value.message("zh")


def test_an_ipv6_host_keeps_its_brackets() -> None:
    assert ManagementApi.from_url("http://admin@[::1]:15672").root == "http://[::1]:15672/api/"


def test_the_dev_broker_settings_never_show_the_admin_password() -> None:
    assert NodeSettings.__dataclass_fields__["admin_password"].repr is False


def test_an_unreachable_management_api_is_reported_in_chinese_too() -> None:
    api = ManagementApi("http://127.0.0.1:1", "admin", "secret", timeout=2)
    with pytest.raises(RetriableError) as away:
        api.get("overview")
    assert "unreachable" in str(away.value)
    assert "无法连接管理 API http://127.0.0.1:1/api/" in away.value.message("zh")
    assert "secret" not in str(away.value) + away.value.message("zh")


@pytest.mark.parametrize(("text", "zh"), [
    ("{not json", "不是 exgate 写入的消息服务器状态文件"),
    ("[1, 2]", "的版本为 None"),
    ('{"version": 1}', "缺少键 'node_name'"),
], ids=["not-json", "no-object", "missing-key"])
def test_a_broker_state_file_exgate_did_not_write_is_named(tmp_path: Path, text: str,
                                                          zh: str) -> None:
    (tmp_path / STATE_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path)
    assert str(tmp_path / STATE_FILE) in refused.value.message("en")
    assert zh in refused.value.message("zh")


@pytest.mark.parametrize(("pids", "en"), [
    (None, "lacks the key 'pids'"),
    ('{"bogus": 1}', "holds a value of another form (NodePids.__init__() got an unexpected "
                     "keyword argument 'bogus')"),
])
def test_pids_of_a_state_file_exgate_did_not_write_are_a_config_error(
        tmp_path: Path, pids: str | None, en: str) -> None:
    state = {"version": STATE_VERSION}
    text = json.dumps(state)[:-1] + (f', "pids": {pids}}}' if pids else "}")
    (tmp_path / STATE_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        read_pids(tmp_path)
    assert str(refused.value) == f"{tmp_path / STATE_FILE} {en}: not a state file this " \
                                 "exgate wrote"


def test_a_state_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).mkdir()
    with pytest.raises(ConfigError, match="cannot be read: Is a directory"):
        load_settings(tmp_path)

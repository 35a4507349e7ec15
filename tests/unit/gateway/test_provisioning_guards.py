"""``node add`` and ``node disable`` refuse before any change: no overwritten
credentials file, no user created on a broker that is not the node's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.sealing import BrokerLogin, generate_node_keys, write_node_keys
from gateway import node_command
from gateway.mgmt_api import ManagementApi, ManagementError
from gateway.node_command import run_node
from gateway.provisioning import CredentialsRefused, add_node, disable_node
from gateway.registry import Registry
from schemas.errors import ConfigError


class RecordingApi(ManagementApi):
    """Every call is recorded; GET of a user in ``missing`` answers 404."""

    def __init__(self, missing: tuple[str, ...] = ()) -> None:
        super().__init__("http://127.0.0.1:1", "admin", "pw")
        self.calls: list[tuple[str, str]] = []
        self.missing = missing

    def _send(self, method: str, path: str, body: Any, headers: Any = None) -> Any:
        self.calls.append((method, path))
        if method == "GET" and path.startswith("users/") and path[6:] in self.missing:
            raise ManagementError(f"GET {path}: HTTP 404", status=404, reason="Not Found")
        return [] if method == "GET" else None


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Another node's credentials file: its broker password exists nowhere else."""
    path = tmp_path / "tianxin-01.key"
    write_node_keys(path, generate_node_keys("tianxin-01", 1),
                    BrokerLogin("exgate-node-tianxin-01", "only-copy"))
    return path


def test_node_add_never_overwrites_a_credentials_file(tmp_path: Path, victim: Path) -> None:
    api, registry = RecordingApi(), Registry(tmp_path / "reg")
    before = victim.read_bytes()
    with pytest.raises(CredentialsRefused, match="already exists") as refused:
        add_node(lambda: api, registry, "yuelu-01", "430104", victim)
    assert "已存在" in refused.value.message("zh") and "rotate-key" in str(refused.value)
    assert victim.read_bytes() == before
    assert api.calls == [] and registry.get("yuelu-01") is None


@pytest.mark.parametrize(("lang", "words"), [("zh", "已存在"), ("en", "already exists")])
def test_the_command_refuses_with_exit_2(
        tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], lang: str, words: str) -> None:
    api = RecordingApi()
    monkeypatch.setattr(node_command, "admin_api", lambda *args: api)
    before = victim.read_bytes()
    assert run_node("add", node_id="yuelu-01", division="430104", registry=tmp_path / "reg",
                    admin_url="http://admin@127.0.0.1:1", out=victim, lang=lang) == 2
    assert words in capsys.readouterr().err
    assert victim.read_bytes() == before and api.calls == []
    assert snapshot(tmp_path / "reg") == {}


def test_an_exclusive_write_keeps_a_file_that_appeared(victim: Path) -> None:
    before = victim.read_bytes()
    with pytest.raises(FileExistsError):
        write_node_keys(victim, generate_node_keys("yuelu-01", 1), replace=False)
    assert victim.read_bytes() == before
    assert [p.name for p in victim.parent.iterdir()] == [victim.name]


def test_disable_on_a_broker_without_the_user_changes_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    registry.add("yuelu-01", "430104", "exgate-node-yuelu-01",
                 generate_node_keys("yuelu-01", 1).verifier())
    before = snapshot(registry.path)
    api = RecordingApi(missing=("exgate-node-yuelu-01",))
    with pytest.raises(ConfigError, match="does not exist on the broker at") as refused:
        disable_node(api, registry, "yuelu-01")
    assert "http://127.0.0.1:1/api/" in str(refused.value)
    assert "未做任何修改" in refused.value.message("zh")
    assert api.calls == [("GET", "users/exgate-node-yuelu-01")]
    assert snapshot(registry.path) == before and registry.get("yuelu-01").active


def test_disable_on_the_nodes_broker_revokes(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    registry.add("yuelu-01", "430104", "exgate-node-yuelu-01",
                 generate_node_keys("yuelu-01", 1).verifier())
    api = RecordingApi()
    disable_node(api, registry, "yuelu-01")
    assert not registry.get("yuelu-01").active
    assert ("PUT", "users/exgate-node-yuelu-01") in api.calls
    assert api.calls[0] == ("GET", "users/exgate-node-yuelu-01")

"""The status view beside a registry with an unreadable file, and on a store not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from adapters.sealing import generate_node_keys
from adapters.stores.sql import SqlStore
from gateway.registry import Registry
from gateway.status_command import run_status
from gateway.status_json import report_json
from gateway.status_rules import StatusThresholds
from gateway.status_source import StatusSource
from tests.unit.adapters.status_store import fill_store
from tests.unit.gateway.test_status_command import config_for


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """The store's four nodes with tianxin-02 disabled, yuelu-01 never seen, one broken file."""
    reg = Registry(tmp_path / "registry")
    for node, division in (("furong-01", "430102"), ("furong-02", "430102"),
                           ("tianxin-01", "430103"), ("tianxin-02", "430103"),
                           ("yuelu-01", "430104")):
        reg.add(node, division, f"exgate-node-{node}", generate_node_keys(node).verifier())
    reg.disable("tianxin-02")
    (reg.path / "zz-broken.json").write_text("{")
    return reg


def test_one_broken_file_leaves_the_other_entries_in_the_report(
        sqlite_store: SqlStore, registry: Registry) -> None:
    fill_store(sqlite_store)
    report = StatusSource(sqlite_store, "430100", StatusThresholds(),
                          registry_path=registry.path).report()
    lights = {n.node_id: (n.light.value, n.reasons) for n in report.nodes}
    assert lights["tianxin-02"] == ("off", ("disabled",))
    assert lights["yuelu-01"] == ("red", ("never-seen",))
    assert report.degraded
    assert [(b.file.name, b.reason.split(":")[0]) for b in report.registry_errors] == \
        [("zz-broken.json", "cannot read node entry")]
    data = report_json(report)
    assert data["degraded"] is True
    assert data["registry_errors"] == [{"file": str(registry.path / "zz-broken.json"),
                                        "reason": report.registry_errors[0].reason}]


def test_a_sound_registry_is_not_degraded(sqlite_store: SqlStore, registry: Registry) -> None:
    (registry.path / "zz-broken.json").unlink()
    report = StatusSource(sqlite_store, "430100", StatusThresholds(),
                          registry_path=registry.path).report()
    assert not report.degraded and report_json(report)["registry_errors"] == []


@pytest.mark.parametrize(("lang", "words", "reason"), [
    ("zh", "状态不完整", "无法读取节点登记条目"), ("en", "Incomplete status", "cannot read node entry")])
def test_exgate_status_says_it_is_degraded(sqlite_store: SqlStore, registry: Registry,
                                           tmp_path: Path, lang: str, words: str,
                                           reason: str) -> None:
    fill_store(sqlite_store)
    path = config_for(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    console = Console(record=True, width=400, color_system=None)
    assert run_status(path, False, lang, console=console) == 0
    text = console.export_text()
    assert words in text and f"zz-broken.json: {reason}" in text
    assert "yuelu-01" in text
    console = Console(record=True, width=400, color_system=None)
    assert run_status(path, True, lang, console=console) == 0
    data = json.loads(console.export_text())
    assert data["degraded"] is True
    assert {n["node_id"]: n["light"] for n in data["nodes"]}["tianxin-02"] == "off"


@pytest.mark.parametrize(("lang", "words"), [("zh", "未找到监察库"), ("en", "store not found")])
def test_exgate_status_never_creates_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             lang: str, words: str) -> None:
    missing = tmp_path / "typo" / "stroe.db"
    path = config_for(tmp_path, f"sqlite:///{missing}")
    assert run_status(path, False, lang, console=Console(record=True)) == 2
    err = capsys.readouterr().err
    assert words in err and "stroe.db" in err
    assert not missing.parent.exists()

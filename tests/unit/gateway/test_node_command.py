"""``exgate node rotate-key``, ``node list`` and ``node add``'s refusals as an operator sees
them (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sealing import BrokerLogin, generate_node_keys, load_broker_login, write_node_keys
from gateway.node_command import run_node
from gateway.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = Registry(tmp_path / "registry")
    for node, division in (("furong-01", "430102"), ("tianxin-01", "430103")):
        keys = generate_node_keys(node, 1)
        reg.add(node, division, f"exgate-node-{node}", keys.verifier())
        write_node_keys(tmp_path / "node-machine" / f"{node}.key", keys,
                        BrokerLogin(f"exgate-node-{node}", f"S3cr3t-{node}"))
    return reg.path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("node_id", "division", "words"), [
    ("bad id", "430102", "节点 ID 'bad id' 须为"),
    ("good-01", "43010", "行政区划代码 '43010' 不是 6 位"),
    ("good-01", "403102", "行政区划代码 '403102' 不是 6 位 GB/T 2260 行政区划代码，前两位须为省级代码"),
    ("furong-01", "430102", "节点 furong-01 已在"),
    ("good-01", "430102", "tianxin-01.key 已存在"),
])
def test_node_add_names_what_is_wrong_before_looking_for_a_broker(
        registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], node_id: str, division: str, words: str) -> None:
    """With no broker option it reported the missing private broker instead."""
    monkeypatch.setenv("EXGATE_BROKER_BASE", str(tmp_path / "no-broker"))
    taken = tmp_path / "node-machine" / "tianxin-01.key"  # only the last case reaches it
    before = snapshot(registry)
    assert run_node("add", node_id=node_id, division=division, registry=registry,
                    out=taken) == 2
    err = capsys.readouterr().err
    assert words in err and "没有私有消息服务器" not in err
    assert snapshot(registry) == before


@pytest.mark.parametrize("action", ["disable", "enable"])
def test_disable_and_enable_name_a_node_not_registered_before_the_broker(
        registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        action: str) -> None:
    before = snapshot(registry)
    assert run_node(action, node_id="no-such", registry=registry,
                    broker_base=tmp_path / "no-broker") == 2
    err = capsys.readouterr().err
    assert "节点 'no-such' 未在" in err and "没有私有消息服务器" not in err
    assert snapshot(registry) == before


@pytest.mark.parametrize(("lang", "words"), [("zh", "不存在"), ("en", "does not exist")])
def test_rotate_key_without_the_credentials_file_refuses(
        registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], lang: str, words: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the default --out, furong-01.key, is not here
    before = snapshot(registry)
    assert run_node("rotate-key", node_id="furong-01", registry=registry, lang=lang) == 2
    err = capsys.readouterr().err
    assert words in err and "furong-01.key" in err
    assert list(elsewhere.iterdir()) == []
    assert snapshot(registry) == before


def test_rotate_key_into_another_nodes_file_refuses(
        registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "node-machine" / "tianxin-01.key"
    before = (other.read_bytes(), snapshot(registry))
    assert run_node("rotate-key", node_id="furong-01", registry=registry, out=other) == 2
    assert "属于节点 tianxin-01，不是 furong-01" in capsys.readouterr().err
    assert (other.read_bytes(), snapshot(registry)) == before


def test_rotate_key_keeps_the_broker_password(
        registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = tmp_path / "node-machine" / "furong-01.key"
    assert run_node("rotate-key", node_id="furong-01", registry=registry, out=own,
                    lang="en") == 0
    assert "new key, version 2" in capsys.readouterr().out
    assert load_broker_login(own) == BrokerLogin("exgate-node-furong-01", "S3cr3t-furong-01")
    assert Registry(registry).get("furong-01").key_version == 2


@pytest.mark.parametrize(("lang", "words", "reasons"), [
    ("zh", "无法读取", ("文件名不是节点 ID", "不是节点登记条目", "无法读取节点登记条目")),
    ("en", "unreadable", ("not a node ID", "not a node registry entry",
                          "cannot read node entry"))])
def test_node_list_lists_the_good_entries_and_names_the_bad_ones(
        registry: Path, capsys: pytest.CaptureFixture[str], lang: str, words: str,
        reasons: tuple[str, str, str]) -> None:
    (registry / "zz-broken.json").write_text("{")
    (registry / "yy-other.json").write_text('{"node_id": "yy-other"}')
    (registry / "not a node.json").write_text("{}")
    assert run_node("list", registry=registry, lang=lang) == 2
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == ["furong-01", "tianxin-01"]
    lines = err.splitlines()
    assert len(lines) == 3 and all(words in line for line in lines)
    assert "not a node.json" in lines[0] and reasons[0] in lines[0]
    assert "yy-other.json" in lines[1] and reasons[1] in lines[1]
    assert "zz-broken.json" in lines[2] and reasons[2] in lines[2]


@pytest.mark.parametrize(("lang", "words"), [("zh", "节点登记簿 {} 不存在：请检查 --registry"),
                                             ("en", "node registry {} does not exist")])
def test_node_list_of_a_registry_not_there_is_an_error_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str, words: str) -> None:
    """It exited 0 with "登记簿中没有节点：<path>", which reads as no node of that name."""
    typo = tmp_path / "regsitry"
    assert run_node("list", registry=typo, lang=lang) == 2
    out, err = capsys.readouterr()
    assert out == "" and words.format(typo) in err
    assert not typo.exists()


def test_node_list_of_a_sound_registry_exits_0(registry: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run_node("list", registry=registry, lang="en") == 0
    out, err = capsys.readouterr()
    assert "furong-01\t430102\tactive\tkey version 1" in out and err == ""


def test_an_older_key_is_listed_until_retired_then_refused(
        registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "node-machine" / "furong-01.key"
    assert run_node("rotate-key", node_id="furong-01", registry=registry, out=key_file,
                    lang="en") == 0
    assert "retire-key furong-01 --version 1" in capsys.readouterr().out
    run_node("list", registry=registry, lang="en")
    assert "furong-01\t430102\tactive\tkey version 2 (older 1 still valid)\t" in \
        capsys.readouterr().out
    # the one it seals with, and one it never had, are refused and change nothing
    before = snapshot(registry)
    assert run_node("retire-key", node_id="furong-01", registry=registry, key_version=2,
                    lang="en") == 2
    assert "rotate the key first" in capsys.readouterr().err
    assert run_node("retire-key", node_id="furong-01", registry=registry, key_version=7,
                    lang="zh") == 2
    assert "没有密钥版本 7（现有 1, 2）" in capsys.readouterr().err
    assert snapshot(registry) == before
    assert run_node("retire-key", node_id="furong-01", registry=registry, key_version=1,
                    lang="en") == 0
    assert "versions still valid: 2" in capsys.readouterr().out
    entry = Registry(registry).get("furong-01")
    assert entry is not None and [k.version for k in entry.keys] == [2]
    assert Registry(registry).verifier("furong-01", 1) is None

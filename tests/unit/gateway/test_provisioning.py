"""Key rotation without a broker: the node's own credentials file, kept login, ordering."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adapters.sealing import (
    BrokerLogin,
    NodeKeys,
    generate_node_keys,
    load_broker_login,
    load_node_keys,
    seal,
    unseal,
    write_node_keys,
)
from gateway import provisioning
from gateway.provisioning import CredentialsRefused, rotate_node_key
from gateway.registry import Registry
from schemas.errors import ConfigError

LOGIN = BrokerLogin("exgate-node-n1", "S3cr3t-n1")


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def old_keys(registry: Registry) -> NodeKeys:
    keys = generate_node_keys("n1", 1)
    registry.add("n1", "430102", LOGIN.user, keys.verifier())
    return keys


@pytest.fixture
def key_file(tmp_path: Path, old_keys: NodeKeys) -> Path:
    path = tmp_path / "node" / "n1.key"
    write_node_keys(path, old_keys, LOGIN)
    return path


def registry_file(registry: Registry, node_id: str = "n1") -> bytes:
    return (registry.path / f"{node_id}.json").read_bytes()


def test_rotation_keeps_the_login_and_both_versions_verify(
        registry: Registry, old_keys: NodeKeys, key_file: Path) -> None:
    entry = rotate_node_key(registry, "n1", key_file)
    assert entry.key_version == 2
    new = load_node_keys(key_file)
    assert (new.node_id, new.key_version) == ("n1", 2)
    assert load_broker_login(key_file) == LOGIN
    assert load_broker_login(key_file).password == LOGIN.password
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for keys in (old_keys, new):
        verifier = registry.verifier("n1", keys.key_version)
        assert verifier is not None
        assert unseal(seal(b"x", keys, "B"), verifier, "B") == b"x"
    assert [p.name for p in key_file.parent.iterdir()] == ["n1.key"]


def test_a_missing_credentials_file_is_refused_and_nothing_written(
        registry: Registry, old_keys: NodeKeys, tmp_path: Path) -> None:
    before = registry_file(registry)
    missing = tmp_path / "elsewhere" / "n1.key"
    with pytest.raises(CredentialsRefused) as refused:
        rotate_node_key(registry, "n1", missing)
    assert "does not exist" in str(refused.value) and "nothing was changed" in str(refused.value)
    assert "不存在" in refused.value.message("zh") and "未做任何修改" in refused.value.message("zh")
    assert refused.value.message("en") == str(refused.value)
    assert not missing.parent.exists()
    assert registry_file(registry) == before


def test_another_nodes_file_is_refused_and_left_alone(
        registry: Registry, old_keys: NodeKeys, key_file: Path, tmp_path: Path) -> None:
    other_keys = generate_node_keys("n2", 1)
    registry.add("n2", "430103", "exgate-node-n2", other_keys.verifier())
    other = tmp_path / "node" / "n2.key"
    write_node_keys(other, other_keys, BrokerLogin("exgate-node-n2", "S3cr3t-n2"))
    before = (other.read_bytes(), registry_file(registry, "n1"), registry_file(registry, "n2"))
    with pytest.raises(CredentialsRefused) as refused:
        rotate_node_key(registry, "n1", other)
    assert "belongs to node n2, not n1" in str(refused.value)
    assert "属于节点 n2，不是 n1" in refused.value.message("zh")
    assert (other.read_bytes(), registry_file(registry, "n1"),
            registry_file(registry, "n2")) == before
    assert sorted(p.name for p in other.parent.iterdir()) == ["n1.key", "n2.key"]


def test_a_file_logging_in_as_another_broker_user_is_refused(
        registry: Registry, old_keys: NodeKeys, tmp_path: Path) -> None:
    # Same node ID, another deployment's file: its login is not this registry's node's.
    stray = tmp_path / "stray.key"
    write_node_keys(stray, old_keys, BrokerLogin("someone-else", "pw"))
    before = (stray.read_bytes(), registry_file(registry))
    with pytest.raises(CredentialsRefused, match="broker user someone-else"):
        rotate_node_key(registry, "n1", stray)
    assert (stray.read_bytes(), registry_file(registry)) == before


def test_a_file_that_cannot_be_staged_changes_nothing(
        registry: Registry, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (key_file.read_bytes(), registry_file(registry))

    def full_disk(path: Path, *_: object) -> None:
        Path(path).write_text("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(provisioning, "write_node_keys", full_disk)
    with pytest.raises(ConfigError, match="not rotated"):
        rotate_node_key(registry, "n1", key_file)
    assert (key_file.read_bytes(), registry_file(registry)) == before
    assert [p.name for p in key_file.parent.iterdir()] == ["n1.key"]


def test_a_failed_rename_takes_the_new_key_out_of_the_registry(
        registry: Registry, old_keys: NodeKeys, key_file: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry learnt version 2 before the rename: seen from the agent's side, it must
    # never end up with a key the registry lacks, nor the registry with one nobody holds.
    before = key_file.read_bytes()
    seen: list[int] = []
    real_replace = os.replace

    def refuse(src: str | Path, dst: str | Path) -> None:
        if Path(dst) != key_file:
            return real_replace(src, dst)
        seen.append(registry.get("n1").key_version)
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ConfigError, match="taken out of the registry again"):
        rotate_node_key(registry, "n1", key_file)
    assert seen == [2]
    entry = registry.get("n1")
    assert [k.version for k in entry.keys] == [1]
    assert registry.verifier("n1", 2) is None and registry.verifier("n1", 1) is not None
    assert key_file.read_bytes() == before
    assert [p.name for p in key_file.parent.iterdir()] == ["n1.key"]


def test_a_file_without_login_is_rotated_as_it_is(registry: Registry, old_keys: NodeKeys,
                                                  tmp_path: Path) -> None:
    # Nothing to lose: the agent then logs in with the user of its broker.url.
    bare = tmp_path / "n1.key"
    write_node_keys(bare, old_keys)
    assert rotate_node_key(registry, "n1", bare).key_version == 2
    assert load_broker_login(bare) is None and load_node_keys(bare).key_version == 2

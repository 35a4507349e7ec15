"""The node registry: add, get, verifier, disable, rotate, list, file modes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from adapters.sealing import generate_node_keys, seal, unseal
from gateway.registry import Registry
from schemas.errors import ConfigError


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


def test_add_get_and_unseal_with_verifier(registry: Registry):
    keys = generate_node_keys("n1")
    entry = registry.add("n1", "430102", "node-n1", keys.verifier())
    assert (entry.node_id, entry.division, entry.broker_user, entry.status) == \
        ("n1", "430102", "node-n1", "active")
    assert registry.get("n1") == entry
    verifier = registry.verifier("n1", 1)
    assert verifier is not None
    assert unseal(seal(b"<x/>", keys, "B1"), verifier, "B1") == b"<x/>"


def test_files_are_private_and_match_the_contract(registry: Registry):
    keys = generate_node_keys("n1")
    registry.add("n1", "430102", "node-n1", keys.verifier())
    file = registry.path / "n1.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(registry.path.stat().st_mode) == 0o700
    data = json.loads(file.read_text())
    assert set(data) == {"node_id", "division", "broker_user", "status", "keys"}
    assert set(data["keys"][0]) == {"version", "verify_key", "dek", "created"}
    assert [p.name for p in registry.path.iterdir()] == ["n1.json"]


def test_unknown_nodes_and_versions(registry: Registry):
    assert registry.get("nope") is None
    assert registry.get("../etc/passwd") is None
    assert registry.verifier("nope", 1) is None
    registry.add("n1", "430102", "node-n1", generate_node_keys("n1").verifier())
    assert registry.verifier("n1", 2) is None


def test_add_twice_is_refused(registry: Registry):
    registry.add("n1", "430102", "node-n1", generate_node_keys("n1").verifier())
    with pytest.raises(ConfigError, match="rotate-key"):
        registry.add("n1", "430102", "node-n1", generate_node_keys("n1").verifier())


def test_disabled_node_has_no_verifier(registry: Registry):
    registry.add("n1", "430102", "node-n1", generate_node_keys("n1").verifier())
    assert registry.disable("n1").status == "disabled"
    assert registry.verifier("n1", 1) is None
    assert Registry(registry.path).get("n1").status == "disabled"
    registry.enable("n1")
    assert registry.verifier("n1", 1) is not None


def test_rotate_keeps_old_versions(registry: Registry):
    old = generate_node_keys("n1", 1)
    registry.add("n1", "430102", "node-n1", old.verifier())
    new = generate_node_keys("n1", 2)
    entry = registry.rotate("n1", new.verifier())
    assert entry.key_version == 2
    for keys in (old, new):
        verifier = registry.verifier("n1", keys.key_version)
        assert unseal(seal(b"x", keys, "B"), verifier, "B") == b"x"
    with pytest.raises(ConfigError, match="above 2"):
        registry.rotate("n1", generate_node_keys("n1", 2).verifier())


def test_admin_of_unknown_node(registry: Registry):
    with pytest.raises(ConfigError, match="not registered"):
        registry.disable("ghost")


def test_list_sorted(registry: Registry):
    assert registry.list() == []
    for node in ("b", "a"):
        registry.add(node, "430100", f"node-{node}", generate_node_keys(node).verifier())
    assert [e.node_id for e in registry.list()] == ["a", "b"]


def test_other_process_changes_are_seen(registry: Registry):
    registry.add("n1", "430102", "node-n1", generate_node_keys("n1").verifier())
    assert registry.get("n1").active
    Registry(registry.path).disable("n1")
    assert not registry.get("n1").active


def test_corrupt_entry_is_a_config_error(registry: Registry):
    registry.path.mkdir(parents=True)
    (registry.path / "n1.json").write_text('{"node_id": "n1"}')
    with pytest.raises(ConfigError, match="not a node registry entry"):
        registry.get("n1")


def test_entry_repr_hides_deks(registry: Registry):
    keys = generate_node_keys("n1")
    entry = registry.add("n1", "430102", "node-n1", keys.verifier())
    assert entry.keys[0].dek not in repr(entry)


@pytest.mark.parametrize(("node", "division"), [("a/b", "430102"), ("n1", "43010")])
def test_bad_ids_refused(registry: Registry, node, division):
    with pytest.raises(ValueError):
        registry.add(node, division, "u", generate_node_keys("x").verifier())

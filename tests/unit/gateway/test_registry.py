"""The node registry: add, get, verifier, disable, rotate, scan, file modes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from adapters.sealing import encode_dek, encode_verify_key, generate_node_keys, seal, unseal
from gateway.pipeline import Pipeline
from gateway.registry import EntryError, Registry, RegistryScan
from schemas.errors import ConfigError
from tests.unit.gateway.test_pipeline import NOW, MemoryStore, delivery, plain


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


def test_scan_sorted(registry: Registry):
    assert registry.scan() == RegistryScan((), ())
    for node in ("b", "a"):
        registry.add(node, "430100", f"node-{node}", generate_node_keys(node).verifier())
    assert [e.node_id for e in registry.scan().entries] == ["a", "b"]


def test_scan_names_each_unreadable_file_and_keeps_the_others(registry: Registry):
    for node in ("a", "c"):
        registry.add(node, "430100", f"node-{node}", generate_node_keys(node).verifier())
    registry.disable("c")
    broken = {"b.json": "{", "d.json": '{"node_id": "d"}', "e.json": _entry_text("x"),
              "bad name.json": "{}"}
    for name, text in broken.items():
        (registry.path / name).write_text(text)
    (registry.path / "f.json").mkdir()
    scan = registry.scan()
    assert [(e.node_id, e.status) for e in scan.entries] == [("a", "active"), ("c", "disabled")]
    reasons = {bad.file.name: bad.reason for bad in scan.unreadable}
    assert list(reasons) == ["b.json", "bad name.json", "d.json", "e.json", "f.json"]
    assert "not a node ID" in reasons["bad name.json"]
    assert reasons["b.json"].startswith("cannot read node entry: Expecting")
    assert "not a node registry entry" in reasons["d.json"]
    assert reasons["e.json"] == "holds node 'x', not 'e'"
    assert reasons["f.json"].startswith("cannot read node entry:")
    assert all(bad.file.parent == registry.path for bad in scan.unreadable)


def test_a_broken_entry_still_stops_verification(registry: Registry):
    # The gateways read get/verifier: a broken file is an error, never an unknown node
    # (nor a known one), and other nodes' files do not matter.
    keys = generate_node_keys("a")
    registry.add("a", "430102", "u-a", keys.verifier())
    (registry.path / "b.json").write_text("{")
    assert registry.get("nope") is None and registry.verifier("nope", 1) is None
    assert registry.verifier("a", 1) is not None
    for read in (lambda: registry.get("b"), lambda: registry.verifier("b", 1)):
        with pytest.raises(EntryError, match="cannot read node entry") as failed:
            read()
        assert failed.value.file == registry.path / "b.json"


def test_the_pipeline_refuses_unknown_and_broken_nodes_beside_a_broken_file(registry: Registry):
    store = MemoryStore()
    pipeline = Pipeline("430100", registry, store, clock=lambda: NOW)
    good, broken, stranger = (generate_node_keys(n, 1) for n in ("n1", "n2", "n9"))
    for keys in (good, broken):
        registry.add(keys.node_id, "430102", f"u-{keys.node_id}", keys.verifier())
    (registry.path / "n2.json").write_text("{")
    (registry.path / "zz.json").write_text("{")
    assert pipeline.handle(delivery(good, plain())).status == "stored"
    unknown = pipeline.handle(delivery(stranger, plain("B2", "n9"), "B2"))
    assert (unknown.status, unknown.reason) == ("failed", "unknown-node")
    with pytest.raises(ConfigError):
        pipeline.handle(delivery(broken, plain("B3", "n2"), "B3"))
    assert set(store.batches) == {"B1"}


def test_withdraw_undoes_a_rotation(registry: Registry):
    registry.add("n1", "430102", "node-n1", generate_node_keys("n1", 1).verifier())
    registry.rotate("n1", generate_node_keys("n1", 2).verifier())
    entry = registry.withdraw("n1", 2)
    assert [k.version for k in entry.keys] == [1] and registry.get("n1") == entry
    assert registry.verifier("n1", 2) is None


def _entry_text(node_id: str) -> str:
    verifier = generate_node_keys(node_id).verifier()
    return json.dumps({"node_id": node_id, "division": "430102", "broker_user": "u",
                       "status": "active", "keys": [{"version": 1, "verify_key":
                       encode_verify_key(verifier.verify_key), "dek": encode_dek(verifier.dek)}]})


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

"""Replay of failed batches over a SQLite store, with the real registry and sealing.

The story: a node sends a batch before it is registered; the gateway refuses it
(``unknown-node``) and keeps it. The node gets registered; a dry run changes nothing;
the replay stores the batch and marks it; a second replay changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters.amqp.topology import routing_key
from adapters.sealing import NodeKeys, generate_node_keys, seal
from adapters.stores.sql import SqlStore, iter_latest
from adapters.stores.sql_rows import ElementWriter
from adapters.stores.sql_status import read_status_rows
from cli import main
from gateway.pipeline import Delivery, Pipeline
from gateway.registry import Registry
from gateway.replay import Replayer, failed_rows, list_batches, preview
from tests.unit.schemas.documents import document, record

LEVEL = "430100"


@dataclass
class Level:
    """A city level: its store, its registry folder and a gateway config file."""

    store: SqlStore
    registry: Registry
    config: Path

    def pipeline(self) -> Pipeline:
        return Pipeline(LEVEL, self.registry, self.store)


def write_config(folder: Path, store_url: str, registry: Path, division: str = LEVEL) -> Path:
    config = folder / "gateway.toml"
    config.write_text(
        f'[level]\ndivision = "{division}"\n'
        '[broker]\nurl = "amqp://gateway@127.0.0.1:1/exgate"\n'
        f'[store]\nurl = "{store_url}"\n'
        f'[registry]\npath = "{registry}"\n', encoding="utf-8")
    return config


@pytest.fixture
def level(tmp_path: Path) -> Iterator[Level]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = SqlStore(url, sqlite_busy_s=0.5)
    store.migrate()
    registry = Registry(tmp_path / "registry")
    yield Level(store, registry, write_config(tmp_path, url, registry.path))
    store.close()


def sealed(keys: NodeKeys, batch_id: str, division: str = "430102",
           recs: list[tuple[str, dict[str, str]]] | None = None) -> Delivery:
    """A batch exactly as the agent publishes it."""
    recs = recs if recs is not None else [record("SBXX"), record("SL")]
    xml = document(recs, head={"BATCHID": batch_id, "NODEID": keys.node_id,
                               "COUNT": str(len(recs))})
    headers = {"x-exgate-node": keys.node_id, "x-exgate-key-version": keys.key_version,
               "x-exgate-schema-version": 1, "x-exgate-records": len(recs),
               "x-exgate-sha256": hashlib.sha256(xml).hexdigest()}
    return Delivery(routing_key(division, keys.node_id), seal(xml, keys, batch_id), batch_id,
                    f"node-{keys.node_id}", headers)


def register(level: Level, keys: NodeKeys, division: str = "430102") -> None:
    level.registry.add(keys.node_id, division, f"node-{keys.node_id}", keys.verifier())


def dump(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: the whole store, to prove nothing changed."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with store.engine.connect() as conn:
        for table in store.schema.metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return tables


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def keys() -> NodeKeys:
    return generate_node_keys("n1", 1)


@pytest.fixture
def refused(level: Level, keys: NodeKeys) -> str:
    """Batch B1 from n1, refused because n1 is not registered yet."""
    outcome = level.pipeline().handle(sealed(keys, "B1"))
    assert (outcome.status, outcome.reason) == ("failed", "unknown-node")
    return "B1"


def test_replay_stores_a_batch_once_its_node_is_registered(level: Level, keys: NodeKeys,
                                                           refused: str) -> None:
    register(level, keys)
    [row] = failed_rows(level.store)
    result = Replayer(LEVEL, level.registry, level.store).replay(row)
    assert (result.status, result.stored, result.duplicates) == ("stored", 2, 0)
    assert level.store.batch_state(refused) == "stored"
    assert [r["SBLSH"] for r in iter_latest(level.store, "SBXX")] == ["SB0001"]
    assert failed_rows(level.store) == []
    [done] = failed_rows(level.store, outstanding=False)
    assert done.replayed_at is not None


def test_a_second_replay_changes_nothing(level: Level, keys: NodeKeys, refused: str) -> None:
    register(level, keys)
    replayer = Replayer(LEVEL, level.registry, level.store)
    replayer.replay(failed_rows(level.store)[0])
    before = dump(level.store)
    [again] = failed_rows(level.store, [refused], outstanding=False)
    assert replayer.replay(again).status == "skipped"
    assert run("batches", "replay", "--all-failed", "-c", str(level.config),
               "--no-receipts", "--lang", "en")[0] == 0
    code, out = run("batches", "replay", refused, "-c", str(level.config), "--no-receipts",
                    "--lang", "en")
    assert code == 0 and "replayed before" in out
    assert dump(level.store) == before


def test_dry_run_changes_nothing(level: Level, keys: NodeKeys, refused: str) -> None:
    register(level, keys)
    before = dump(level.store)
    result = Replayer(LEVEL, level.registry, level.store, dry_run=True).replay(
        failed_rows(level.store)[0])
    assert (result.status, result.stored, result.dry_run) == ("stored", 2, True)
    code, out = run("batches", "replay", "--all-failed", "--dry-run", "-c", str(level.config),
                    "--lang", "en")
    assert code == 0 and "would store" in out and "dry run" in out
    assert dump(level.store) == before


def test_still_failing_batches_say_why_and_exit_1(level: Level, keys: NodeKeys,
                                                  refused: str) -> None:
    before = dump(level.store)
    code, out = run("batches", "replay", "--all-failed", "-c", str(level.config),
                    "--no-receipts", "--lang", "en")
    assert code == 1
    assert "B1: still failing: unknown-node" in out
    assert level.store.batch_state(refused) == "failed"
    assert failed_rows(level.store)[0].replayed_at is None
    after = dump(level.store)
    assert after["ST_FAILED_BATCH"] == before["ST_FAILED_BATCH"]  # one copy, same reason


def test_a_fixed_cause_is_replayed_while_another_still_fails(level: Level, keys: NodeKeys,
                                                            refused: str) -> None:
    other = generate_node_keys("n2", 1)
    level.pipeline().handle(sealed(other, "B2"))
    register(level, keys)
    code, out = run("batches", "replay", "--all-failed", "-c", str(level.config),
                    "--no-receipts", "--json")
    data = json.loads(out)
    assert code == 1
    assert {r["batch_id"]: r["status"] for r in data["results"]} == {"B1": "stored",
                                                                     "B2": "failed"}
    assert run("batches", "replay", "B1", "NOPE", "-c", str(level.config),
               "--no-receipts")[0] == 1  # NOPE: not found


def test_a_replayed_batch_the_node_resent_meanwhile_is_a_redelivery(
        level: Level, keys: NodeKeys, refused: str) -> None:
    register(level, keys)
    [listed] = failed_rows(level.store)  # by the operator, before the node's resend
    assert level.pipeline().handle(sealed(keys, "B1")).status == "stored"
    # Unknown then, the sender was no proven n1: storing n1's B1 does not vouch for it.
    assert failed_rows(level.store) == [listed]
    result = Replayer(LEVEL, level.registry, level.store).replay(listed)
    assert (result.status, result.stored, result.detail) == \
        ("stored", 0, "already stored (redelivery)")
    assert failed_rows(level.store) == []


def test_list_and_show_redact_secrets(level: Level, keys: NodeKeys, refused: str) -> None:
    code, out = run("batches", "list", "--failed", "-c", str(level.config), "--json")
    assert code == 0
    [listed] = json.loads(out)["batches"]
    assert (listed["batch_id"], listed["state"], listed["reason"]) == \
        ("B1", "failed", "unknown-node")
    assert preview(failed_rows(level.store)[0], level.registry).opened is False
    register(level, keys)
    code, out = run("batches", "show", "B1", "-c", str(level.config), "--lang", "en")
    assert code == 0
    assert "SB0001" in out and "unknown-node" in out and "sealed, not shown" in out
    dek = json.loads((level.registry.path / "n1.json").read_text())["keys"][0]["dek"]
    assert dek not in out
    body = failed_rows(level.store)[0].body
    assert body.hex()[:64] not in out and repr(body)[:40] not in out
    assert run("batches", "show", "NOPE", "-c", str(level.config))[0] == 1


def test_list_shows_stored_and_failed(level: Level, keys: NodeKeys, refused: str) -> None:
    register(level, keys)
    level.pipeline().handle(sealed(keys, "B3", recs=[record("BJ")]))
    states = {(r.batch_id, r.state) for r in list_batches(level.store)}
    assert states == {("B1", "failed"), ("B3", "stored")}
    # B1 came before n1 was registered: nothing vouched for its x-exgate-node.
    [b1] = list_batches(level.store, failed_only=True)
    assert b1.node_id is None and "claims 'n1'" in (b1.detail or "")
    assert list_batches(level.store, node_id="n1", failed_only=True) == []


def test_a_missing_config_is_exit_2(tmp_path: Path) -> None:
    code, _ = run("batches", "list", "-c", str(tmp_path / "missing.toml"))
    assert code == 2


def test_the_store_keeps_optional_fields_the_first_row_of_a_batch_lacks(
        level: Level, keys: NodeKeys) -> None:
    """Found by the export round trip: executemany took its columns from the first row."""
    register(level, keys)
    recs = [record("SL"), record("SL", SBLSH="SB0002", SLZT="2", BSLYY="材料不全")]
    assert level.pipeline().handle(sealed(keys, "B9", recs=recs)).status == "stored"
    reasons = {r["SBLSH"]: r["BSLYY"] for r in iter_latest(level.store, "SL")}
    assert reasons == {"SB0001": None, "SB0002": "材料不全"}


def test_replaying_an_unknown_batch_says_so_and_exits_1(level: Level) -> None:
    code, out = run("batches", "replay", "NO-SUCH-BATCH", "-c", str(level.config), "--lang",
                    "en")
    assert code == 1 and "NO-SUCH-BATCH: no failed batch to replay" in out


@pytest.mark.parametrize("args", [
    ("batches", "list", "--since", "99999999d"),
    ("batches", "list", "--since", "9999-12-31T23:00:00-10:00"),
    ("export", "--out", "{tmp}/out", "--since", "99999999d"),
    ("export", "--out", "{tmp}/out", "--until", "2026-13-01"),
    ("export", "--out", "{tmp}/out", "--element", "NOPE"),
    ("export", "--out", "{tmp}/out", "--division", "4301xx"),
    ("export", "--out", "{tmp}/out", "--division", "4301/../../00"),
    ("export", "--out", "{tmp}/gateway.toml/out"),
])
def test_bad_input_is_a_usage_error_not_a_traceback(level: Level, tmp_path: Path,
                                                    args: tuple[str, ...]) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    code, out = run(*argv, "-c", str(level.config), "--lang", "en")
    assert code == 2 and "error:" in out
    assert not (tmp_path / "out").exists()


def test_a_processing_error_not_fixed_yet_still_fails_and_the_rest_goes_on(
        level: Level, keys: NodeKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    register(level, keys)
    pipeline = level.pipeline()
    pipeline.quarantine(sealed(keys, "B1", recs=[record("SF")]), "ValueError: boom")
    level.registry.disable("n1")
    pipeline.handle(sealed(keys, "B2"))
    level.registry.enable("n1")
    real_write = ElementWriter.write

    def bug_on_sf(self: ElementWriter, *args: Any) -> Any:  # the cause of B1, still there
        if self.et.spec.code == "SF":
            raise ValueError("boom")
        return real_write(self, *args)

    monkeypatch.setattr(ElementWriter, "write", bug_on_sf)
    code, out = run("batches", "replay", "--all-failed", "-c", str(level.config),
                    "--no-receipts", "--lang", "en")
    assert code == 1
    assert "B1: still failing: processing-error: ValueError: boom" in out
    assert "replayed 2: 1 landed, 1 still failing" in out
    assert (level.store.batch_state("B1"), level.store.batch_state("B2")) == \
        ("failed", "stored")


def test_a_refused_batch_the_node_resends_later_is_no_longer_failing(
        level: Level, keys: NodeKeys) -> None:
    register(level, keys)
    level.registry.disable("n1")
    for _ in range(2):
        assert level.pipeline().handle(sealed(keys, "B1")).reason == "node-disabled"
    level.registry.enable("n1")
    assert level.pipeline().handle(sealed(keys, "B1")).status == "stored"
    assert list_batches(level.store, failed_only=True) == []
    rows = read_status_rows(level.store, heartbeat_window_s=1800, throughput_hours=24)
    assert [(t.node_id, t.failed) for t in rows.totals] == [("n1", 0)]

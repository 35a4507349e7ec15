"""Replay of failed batches over a SQLite store, with the real registry and sealing.

The story: a node sends a batch before it is registered; the gateway refuses it
(``unknown-node``) and keeps it. The node gets registered; a dry run changes nothing;
the replay stores the batch and marks it; a second replay changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pika
import pika.exceptions as px
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from rich.cells import cell_len

from adapters.amqp.topology import routing_key
from adapters.sealing import NodeKeys, generate_node_keys, seal
from adapters.stores.base import NodeInfo
from adapters.stores.sql import SqlStore
from adapters.stores.sql_latest import iter_latest
from adapters.stores.sql_rows import ElementWriter
from adapters.stores.sql_status import read_status_rows
from adapters.stores.sql_values import now_beijing
from cli import main
from gateway import replay_receipts
from gateway.pipeline import Delivery, Pipeline
from gateway.registry import Registry
from gateway.replay import (
    FailedRow,
    Replayer,
    english,
    failed_rows,
    list_batches,
    preview,
    stored_batch,
)
from schemas.errors import RetriableError
from schemas.messages import Localized
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


def run_apart(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@contextmanager
def write_lock(store: SqlStore) -> Iterator[sqlite3.Connection]:
    """The store's write lock, held as a gateway's long batch transaction holds it."""
    writer = sqlite3.connect(str(store.url.database), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield writer
    finally:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        writer.close()


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
    assert "B1: still failing: node not registered (unknown-node): node 'n1' is not" in out
    assert "\n  next: Register the node (exgate node add)" in out
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
    assert (result.status, result.stored, english(result.detail)) == \
        ("stored", 0, "already stored (redelivery)")
    assert failed_rows(level.store) == []


def test_a_stale_key_s_bad_signature_is_settled_by_the_node_s_stored_resend(
        level: Level, keys: NodeKeys) -> None:
    register(level, keys)
    level.registry.rotate("n1", (rotated := generate_node_keys("n1", 2)).verifier())
    stale = replace(rotated, key_version=1)  # the new key under the old version's number
    assert level.pipeline().handle(sealed(keys, "B1")).status == "stored"
    # The stale copy arrives after the good one was stored: the write settled nothing.
    assert level.pipeline().handle(sealed(stale, "B1")).reason == "bad-signature"
    assert level.pipeline().handle(sealed(stale, "B2")).reason == "bad-signature"
    [b1, b2] = failed_rows(level.store)
    result = Replayer(LEVEL, level.registry, level.store).replay(b1)
    assert (result.status, english(result.detail)) == (
        "stored", "the node's resend of this very content is stored: this copy needs no replay")
    assert [r.batch_id for r in failed_rows(level.store)] == ["B2"]  # B2 never landed
    assert Replayer(LEVEL, level.registry, level.store).replay(b2).status == "failed"


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


def test_show_lists_the_conflicts_a_stored_batch_brought(level: Level, keys: NodeKeys) -> None:
    register(level, keys)
    level.pipeline().handle(sealed(keys, "B1", recs=[record("BJ")]))
    other = record("BJ", BJJGMS="准予许可（变更后）")  # same key and version, other content
    assert level.pipeline().handle(sealed(keys, "B2", recs=[other])).status == "stored"
    code, out = run("batches", "show", "B2", "-c", str(level.config), "--lang", "en")
    assert code == 0 and "conflict: BJ key " in out and "for a person to resolve" in out
    code, out = run("batches", "show", "B2", "-c", str(level.config), "--json")
    [conflict] = json.loads(out)["conflicts"]
    assert f"(exgate conflicts show {conflict['id']})" in run(
        "batches", "show", "B2", "-c", str(level.config), "--lang", "en")[1]
    assert (conflict["element"], conflict["version"], conflict["resolved_at"]) == \
        ("BJ", int(record("BJ")[1]["SJBBH"]), None)
    assert json.loads(run("batches", "show", "B1", "-c", str(level.config),
                          "--json")[1])["conflicts"] == []


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
    pipeline.quarantine(sealed(keys, "B1", recs=[record("SF")]),
                        Localized("ValueError: boom", "ValueError: boom"))
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
    assert "B1: still failing: the gateway could not process it (processing-error): " \
        "ValueError: boom" in out
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


# -- receipts -----------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_every_receipt_the_replay_cannot_send_is_listed_with_the_node_s_remedy(
        level: Level, keys: NodeKeys, monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    for batch_id in ("B1", "B2", "B3"):
        level.pipeline().handle(sealed(keys, batch_id))
    register(level, keys)
    attempts: list[object] = []

    def unreachable(params: object) -> None:
        attempts.append(params)
        raise px.AMQPConnectionError("connection refused")

    monkeypatch.setattr(pika, "BlockingConnection", unreachable)
    config = level.config.read_text(encoding="utf-8")
    level.config.write_text(config.replace("//gateway@", "//gateway:secret@"),
                            encoding="utf-8")
    code, out, err = run_apart("batches", "replay", "--all-failed", "-c", str(level.config),
                               "--lang", "en", *(["--json"] if as_json else []))
    assert code == 0  # every batch landed: receipts are best effort, as --help says
    assert len(attempts) == 1  # a broker found away is not tried again for each receipt
    if as_json:
        data = json.loads(out)
        assert data["receipts_not_sent"] == ["B1", "B2", "B3"]
        assert {r["batch_id"]: (r["receipt"]["to"], r["receipt"]["sent"])
                for r in data["results"]} == {b: ("n1", False) for b in ("B1", "B2", "B3")}
        assert all("connection refused" in r["receipt"]["error"] for r in data["results"])
        return
    assert "3 receipts not sent" in err
    for batch_id in ("B1", "B2", "B3"):
        assert f"  {batch_id} → node n1: " in err
    assert "on node n1's front-end machine run exgate agent replay B1 B2 B3" in err


def test_receipts_sent_are_not_listed(level: Level, keys: NodeKeys, refused: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    register(level, keys)
    sent: list[str] = []
    monkeypatch.setattr(replay_receipts.BrokerReceipts, "_publish",
                        lambda self, outcome: sent.append(outcome.batch_id))
    code, out, err = run_apart("batches", "replay", "B1", "-c", str(level.config),
                               "--json")
    assert code == 0 and sent == ["B1"] and err == ""
    data = json.loads(out)
    assert data["receipts_not_sent"] == []
    assert data["results"][0]["receipt"] == {"to": "n1", "sent": True, "error": None}


# -- the store's write lock ------------------------------------------------------------------


def test_list_show_and_a_dry_run_read_while_a_gateway_holds_the_write_lock(
        level: Level, keys: NodeKeys, refused: str) -> None:
    register(level, keys)
    level.pipeline().handle(sealed(keys, "B3", recs=[record("BJ")]))
    config = str(level.config)
    with write_lock(level.store):
        assert {r.batch_id for r in list_batches(level.store)} == {"B1", "B3"}
        assert stored_batch(level.store, "B3") is not None
        code, out = run("batches", "list", "-c", config, "--lang", "en")
        assert code == 0 and "2 batches shown; 1 failed" in out
        code, out = run("batches", "show", "B1", "-c", config, "--lang", "en")
        assert code == 0 and "batch B1: state failed" in out
        code, out = run("batches", "show", "B3", "-c", config, "--lang", "en")
        assert code == 0 and "batch B3: state stored" in out
        code, out = run("batches", "replay", "--all-failed", "--dry-run", "-c", config,
                        "--lang", "en")
        assert code == 0 and "B1: would store" in out


def test_batch_state_and_latest_records_read_while_a_gateway_holds_the_write_lock(
        level: Level, keys: NodeKeys, refused: str) -> None:
    # The pipeline asks batch_state for every batch it receives: were it to wait for the
    # write lock, a second gateway process on the level would stall behind the first.
    register(level, keys)
    level.pipeline().handle(sealed(keys, "B3", recs=[record("BJ")]))
    with write_lock(level.store):
        assert [level.store.batch_state(b) for b in ("B1", "B3", "B9")] == \
            ["failed", "stored", None]
        assert len(list(iter_latest(level.store, "BJ"))) == 1


def test_a_replay_waits_for_a_busy_store_then_lands(level: Level, keys: NodeKeys,
                                                    refused: str) -> None:
    register(level, keys)
    waits: list[tuple[str, float]] = []

    def heard(row: FailedRow, exc: RetriableError, wait_s: float) -> None:
        assert "database is locked" in str(exc)
        waits.append((row.batch_id, wait_s))

    with write_lock(level.store) as writer:
        def sleep(seconds: float) -> None:
            if len(waits) == 2:  # the gateway commits while the replay waits
                writer.execute("COMMIT")

        replayer = Replayer(LEVEL, level.registry, level.store, on_wait=heard,
                            waits_s=(0.0, 0.5, 1.0), sleep=sleep)
        result = replayer.replay(failed_rows(level.store)[0])
    assert (result.status, result.stored) == ("stored", 2)
    assert waits == [("B1", 0.0), ("B1", 0.5)]
    assert failed_rows(level.store) == []


def test_a_store_that_stays_busy_stops_the_replay_and_changes_nothing(
        level: Level, keys: NodeKeys, refused: str) -> None:
    register(level, keys)
    before = dump(level.store)
    slept: list[float] = []
    with write_lock(level.store), pytest.raises(RetriableError, match="database is locked"):
        Replayer(LEVEL, level.registry, level.store, waits_s=(0.0, 0.0),
                 sleep=slept.append).replay(failed_rows(level.store)[0])
    assert slept == [0.0, 0.0]
    assert dump(level.store) == before


@pytest.mark.parametrize("as_json", [False, True])
def test_the_run_stops_where_the_store_went_away_and_names_what_is_left(
        level: Level, keys: NodeKeys, monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    for batch_id in ("B1", "B2", "B3"):
        level.pipeline().handle(sealed(keys, batch_id))
    register(level, keys)
    real = Replayer.replay

    def away_from_b2(self: Replayer, row: FailedRow) -> Any:
        if row.batch_id == "B2":
            raise RetriableError("cannot store batch B2: database is locked")
        return real(self, row)

    monkeypatch.setattr(Replayer, "replay", away_from_b2)
    code, out, err = run_apart("batches", "replay", "--all-failed", "-c", str(level.config),
                               "--no-receipts", "--lang", "en",
                               *(["--json"] if as_json else []))
    assert code == 2
    assert level.store.batch_state("B1") == "stored"
    if as_json:
        data = json.loads(out)
        assert [r["batch_id"] for r in data["results"]] == ["B1"]
        assert data["not_tried"] == ["B2", "B3"] and "database is locked" in data["stopped"]
        return
    assert "B1: stored" in out
    assert "the replay stopped with 2 batches not tried (B2, B3)" in err


# -- contact ---------------------------------------------------------------------------------


def test_a_replay_is_no_contact_from_the_node(level: Level, keys: NodeKeys,
                                              refused: str) -> None:
    """Replaying a silent node's old batch must not make it look alive in the status."""
    register(level, keys)
    old = now_beijing() - timedelta(days=3)
    level.store.mirror_node(NodeInfo("n1", "430102", "node-n1", "active", (1,)), seen_at=old)
    f, b, r = level.store.schema.failed, level.store.schema.batch, level.store.schema.receipt
    with level.store.engine.begin() as conn:
        conn.execute(sa.update(f).values(RECEIVED_AT=old))
    result = Replayer(LEVEL, level.registry, level.store).replay(failed_rows(level.store)[0])
    assert (result.status, result.stored) == ("stored", 2)
    rows = read_status_rows(level.store, heartbeat_window_s=1800, throughput_hours=24)
    assert [(n.node_id, n.last_seen_at) for n in rows.nodes] == [("n1", old)]
    with level.store.engine.connect() as conn:
        assert conn.execute(sa.select(b.c.RECEIVED_AT)).scalar_one() == old
        assert conn.execute(sa.select(r.c.STATUS).where(r.c["BATCH_ID"] == "B1")).all() == \
            [("stored",)]


# -- language --------------------------------------------------------------------------------


def test_batches_speak_chinese_unless_told_english(level: Level, keys: NodeKeys,
                                                   refused: str) -> None:
    config = str(level.config)
    code, out = run("batches", "show", "B1", "-c", config)
    assert code == 0
    assert "批次 B1：状态 失败" in out and "路由键：" in out and "消息头：" in out
    assert "无法解密预览：节点 n1 的密钥版本 1 不在注册表中" in out
    code, out = run("batches", "show", "B1", "-c", config, "--lang", "en")
    assert "batch B1: state failed" in out and "routing key: " in out
    assert "cannot open for preview: node n1 key version 1 is not in the registry" in out
    register(level, keys)
    assert run("batches", "replay", "B1", "-c", config, "--no-receipts")[0] == 0
    code, out = run("batches", "replay", "B1", "-c", config, "--no-receipts")
    assert code == 0 and "B1: 此前已重放（重放于 " in out
    code, out = run("batches", "show", "B1", "-c", config)
    assert "批次 B1：状态 已入库" in out and "记录 2 条：新入库 2，重复 0，冲突 0" in out
    for lang in ("zh", "en"):  # JSON is the same in either language
        code, out = run("batches", "show", "B1", "-c", config, "--json", "--lang", lang)
        shown = json.loads(out)
        assert shown["state"] == "stored"
        assert shown["stored"]["detail"] == "stored 2, duplicates 0, conflicts 0"


def test_the_list_summary_counts_failed_batches_beyond_the_ones_shown(
        level: Level, keys: NodeKeys, refused: str) -> None:
    # The summary counted the rows shown: with the newest --limit batches all stored,
    # an older failed batch vanished from it ("0 failed").
    register(level, keys)
    level.pipeline().handle(sealed(keys, "B3", recs=[record("BJ")]))
    code, out = run("batches", "list", "-c", str(level.config), "--limit", "1", "--lang", "en")
    assert code == 0 and "B3" in out and "B1" not in out
    assert "1 batches shown; 1 failed and not yet replayed in all" in out


def cells(line: str) -> list[tuple[int, int, str]]:
    """The cells of a listing's line (two spaces or more apart) with the terminal columns
    each starts and ends at (a Chinese character takes two)."""
    found, at = [], 0
    for part in re.split(r"( {2,})", line):
        if part and not part.isspace():
            found.append((at, at + cell_len(part), part))
        at += cell_len(part)
    return found


@pytest.mark.parametrize(("lang", "names", "state", "reason"), [
    ("zh", ["时间", "批次号", "节点", "状态", "记录数", "原因：详情"], "失败", "节点未登记（unknown-node）："),
    ("en", ["time", "batch ID", "node", "state", "records", "reason: detail"], "failed",
     "node not registered (unknown-node): ")])
def test_the_list_names_its_columns_above_rows_in_those_columns(
        level: Level, keys: NodeKeys, refused: str, lang: str, names: list[str], state: str,
        reason: str) -> None:
    # The rows came bare: an operator could not tell a node from a batch ID or a count.
    register(level, keys)
    level.pipeline().handle(sealed(keys, "B3", recs=[record("BJ")]))
    code, out = run("batches", "list", "-c", str(level.config), "--lang", lang)
    assert code == 0
    header, failed, stored, _summary = out.splitlines()
    assert [text for _, _, text in cells(header)] == names
    assert [text for _, _, text in cells(failed)][1:5] == ["B1", "?", state, "2"]  # no node yet
    assert cells(failed)[5][2].startswith(reason)
    assert [text for _, _, text in cells(stored)][1:] == [
        "B3", "n1", "已入库" if lang == "zh" else "stored", "1"]
    for row in (failed, stored):  # each cell where its column's name is, counts on the right
        for column, (name, cell) in enumerate(zip(cells(header), cells(row), strict=False)):
            assert (cell[1] == name[1]) if column == 4 else (cell[0] == name[0]), (name, row)
    code, out = run("batches", "list", "-c", str(level.config), "--node", "n9", "--lang", lang)
    assert code == 0 and len(out.splitlines()) == 1  # no rows: the summary, no header


@pytest.mark.parametrize(("lang", "label"), [("zh", "重放"), ("en", "replaying")])
def test_the_progress_bar_speaks_the_reader_s_language(lang: str, label: str) -> None:
    from rich.progress import Progress, TextColumn

    from gateway.replay_command import _progress

    with _progress(3, True, lang) as progress:
        assert isinstance(progress, Progress)
        [column, *_] = progress.columns
        assert isinstance(column, TextColumn) and column.text_format == label

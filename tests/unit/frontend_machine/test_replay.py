"""``exgate agent batches`` and ``agent replay`` through the command line, on local files:
which batches go back to the publisher, a source that fails beside one that works, and
the language the config asks for."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.sources.base import Chunk, Origin
from cli import main
from frontend_machine.outbox import Outbox
from frontend_machine.outbox_batches import BatchState
from frontend_machine.replay import replay_database
from schemas.catalog import load_catalog
from schemas.reader import DocumentReader
from tests.unit.frontend_machine.test_run_once import write_config
from tests.unit.gateway.test_replay import cells
from tests.unit.schemas.documents import document, record


def broken_db(tmp_path: Path, strategy: str = "flag") -> str:
    """A database source whose file is there but is no SQLite database."""
    front = tmp_path / "front.db"
    front.write_bytes(b"not a database, whatever its name says" * 100)
    return f"""
[[sources]]
kind = "db"
name = "legacy"
url = "sqlite:///{front}"
strategy = "{strategy}"
tables = ["SBXX"]
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def replay(config: Path, *args: str) -> tuple[int, str]:
    return invoke("agent", "replay", "-c", str(config), *args)


def sent_batch(config: Path, *stored_at: str, key: str = "SB0001") -> str:
    """A batch the broker confirmed, which only ``stored_at`` levels answered."""
    with Outbox(config.parent / "outbox.db") as box:
        check = next(iter(DocumentReader(document([record("SBXX", SBLSH=key)]), "a.xml")))
        box.journal("drop", Chunk(((Origin("drop", "a.xml", 5), check),)))
        [batch_id] = box.seal_batches(100, 1 << 20, 0)
        box.mark_sent(batch_id)
        for level in stored_at:
            box.mark_stored(batch_id, level, 1)
    return batch_id


def state_of(config: Path, batch_id: str) -> BatchState:
    with Outbox(config.parent / "outbox.db") as box:
        info = box.batch(batch_id)
        assert info is not None
        return info.state


# -- batches whose receipt never came --------------------------------------------------------

def test_a_named_sent_batch_is_sent_again_keeping_the_receipts_it_has(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    batch_id = sent_batch(config, "province")
    code, out = replay(config, batch_id, "--dry-run", "--lang", "en")
    assert code == 0 and state_of(config, batch_id) is BatchState.SENT
    code, out = replay(config, batch_id, "--lang", "en")
    assert code == 0, out
    assert f"✓ batch {batch_id}: requeued to be sent again: no receipt yet from city, county" \
        in out
    assert state_of(config, batch_id) is BatchState.PENDING
    with Outbox(tmp_path / "outbox.db") as box:
        assert box.next_pending_batches(5)[0].batch_id == batch_id
        assert [(r["level"], r["status"]) for r in box.receipts_of(batch_id)] == [
            ("province", "stored")]
    code, out = replay(config, batch_id)  # pending now: nothing to do, in Chinese
    assert code == 1 and "状态为“待发送”：无需处理" in out


def test_all_failed_leaves_sent_batches_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    batch_id = sent_batch(config)
    code, out = replay(config, "--all-failed", "--lang", "en")
    assert code == 0 and "0 sent back in, 0 not" in out
    assert state_of(config, batch_id) is BatchState.SENT


def test_a_batch_the_refusing_level_stored_on_replay_is_sent_and_not_failed(
        tmp_path: Path) -> None:
    # Refused at the province (node disabled), stored there by `exgate batches replay`:
    # it was listed "失败" with only the province's stored receipt, and requeued.
    config = write_config(tmp_path)
    batch_id = sent_batch(config)
    with Outbox(tmp_path / "outbox.db") as box:
        box.mark_failed(batch_id, "node-disabled: node furong-01 is disabled", "province")
        box.mark_stored(batch_id, "province", 1)
    code, out = invoke("agent", "batches", "-c", str(config))
    assert code == 0 and f"{batch_id}  已发送" in out and "省级=已入库 市级=- 县级=-" in out
    assert "失败 0 个" in out
    code, out = replay(config, "--all-failed", "--dry-run", "--lang", "en")
    assert code == 0 and "0 sent back in, 0 not" in out and batch_id not in out
    assert state_of(config, batch_id) is BatchState.SENT


def test_stored_batches_and_sent_batches_without_payloads_stay(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    stored = sent_batch(config, "province", "city", "county")
    unbuildable = sent_batch(config, key="SB0002")
    with Outbox(tmp_path / "outbox.db") as box:
        box._db.execute("UPDATE records SET payload = NULL WHERE batch_id = ?", (unbuildable,))
    code, out = replay(config, stored, unbuildable, "--json")
    report = json.loads(out)
    assert code == 1 and (report["done"], report["not_done"]) == (0, 2)
    assert [a["detail"] for a in report["actions"]] == [
        "状态为“已入库”：无需处理（只有失败或已发送未收齐回执的批次可重新发送）",
        "批次记录的报文内容已清除，无法重新发送"]
    assert state_of(config, stored) is BatchState.STORED
    assert state_of(config, unbuildable) is BatchState.SENT


# -- rejects: one source failing beside another -----------------------------------------------

def ran_agent(tmp_path: Path) -> Path:
    """The agent's config, after a first run made its outbox (replay never makes one)."""
    config = write_config(tmp_path)
    Outbox(tmp_path / "outbox.db").close()
    return config


def corrected_file(tmp_path: Path) -> Path:
    error = tmp_path / "drop" / "error"
    (error / "fixed.xml").write_bytes(document([record("SBXX")]))
    (error / "fixed.xml.error.json").write_text("{}", encoding="utf-8")
    return error / "fixed.xml"


def test_a_failing_source_is_reported_beside_what_the_others_did(tmp_path: Path) -> None:
    config = ran_agent(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + broken_db(tmp_path), encoding="utf-8")
    corrected_file(tmp_path)
    code, out = replay(config, "--rejects", "--json", "--lang", "en")
    report = json.loads(out)
    assert code == 1 and (report["done"], report["not_done"]) == (1, 1)
    moved, failed = report["actions"]
    assert moved == {"kind": "file", "subject": "fixed.xml", "done": True, "failed": False,
                     "detail": "valid now → inbox/fixed.xml"}
    assert (failed["kind"], failed["subject"], failed["done"], failed["failed"]) == (
        "source", "legacy", False, True)
    assert failed["detail"].startswith(
        f"cannot reset rejected rows at sqlite:///{tmp_path / 'front.db'}: ")
    assert (tmp_path / "drop" / "inbox" / "fixed.xml").exists()


@pytest.mark.parametrize(("lang", "said"), [
    ("zh", "无法重置拒收行（sqlite:///{front}）：(sqlite3.DatabaseError) file is not a database"),
    ("en", "cannot reset rejected rows at sqlite:///{front}: (sqlite3.DatabaseError) "
           "file is not a database"),
])
def test_a_database_that_fails_is_said_in_the_driver_s_words_on_one_line(
        tmp_path: Path, lang: str, said: str) -> None:
    """Without SQLAlchemy's SQL, parameters and link, as the database source says it."""
    front = tmp_path / "front.db"
    front.write_bytes(b"not a database, whatever its name says" * 100)
    with Outbox(tmp_path / "o.db") as box:
        [action] = replay_database(box, "front", {"url": f"sqlite:///{front}",
                                                  "tables": ["SBXX"]},
                                   load_catalog(), "430102", lang=lang)
    assert action.failed and action.detail == said.format(front=front)


def test_a_misconfigured_source_exits_2_after_the_others_are_replayed(tmp_path: Path) -> None:
    config = ran_agent(tmp_path)
    config.write_text(config.read_text(encoding="utf-8")
                      + broken_db(tmp_path, "bogus"), encoding="utf-8")
    corrected_file(tmp_path)
    code, out = replay(config, "--rejects")
    assert code == 2
    assert "✓ 文件 fixed.xml: 已合规 → inbox/fixed.xml" in out
    assert "✗ 数据源 legacy: 配置错误：" in out and "重新送入 1 项，未处理 1 项" in out


def test_a_file_the_system_refuses_to_move_back_does_not_stop_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ran_agent(tmp_path)
    stuck = corrected_file(tmp_path)
    (stuck.parent / "other.xml").write_bytes(document([record("SBXX", SBLSH="SB0002")]))
    rename = os.rename

    def refusing(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == stuck:
            raise PermissionError(13, "Permission denied", str(src))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", refusing)
    code, out = replay(config, "--rejects", "--lang", "en")
    assert code == 1
    assert ("✗ file fixed.xml: valid now, but it cannot be moved back to inbox/: "
            "Permission denied") in out
    assert "✓ file other.xml: valid now → inbox/other.xml" in out
    assert stuck.exists() and (stuck.parent / "fixed.xml.error.json").exists()


def test_a_source_with_nothing_to_reset_is_a_note_not_a_failure(tmp_path: Path) -> None:
    config = ran_agent(tmp_path)
    config.write_text(config.read_text(encoding="utf-8")
                      + broken_db(tmp_path, "cursor"), encoding="utf-8")
    code, out = replay(config, "--rejects", "--lang", "en")
    assert code == 0
    assert "✗ source legacy: cursor strategy: no reject flag is kept" in out


# -- language ------------------------------------------------------------------------------------

def test_the_configs_language_holds_unless_the_command_line_names_one(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + '[agent]\nlang = "en"\n',
                      encoding="utf-8")
    (tmp_path / "drop" / "error" / "bad.xml").write_bytes(
        document([record("SBXX", TJFS="7")]))
    batch_id = sent_batch(config)
    code, out = invoke("agent", "batches", "-c", str(config))
    assert code == 0 and f"{batch_id}  sent" in out and "1 batches, 0 failed" in out
    code, out = replay(config, "--rejects", "B-unknown")
    assert code == 1
    assert "✗ batch B-unknown: not in the outbox" in out
    assert "✗ file bad.xml: still invalid (1 issue(s)): " in out
    assert "0 sent back in, 2 not" in out
    code, out = invoke("agent", "batches", "-c", str(config), "--lang", "zh")
    assert code == 0 and f"{batch_id}  已发送" in out and "共 1 个批次" in out
    code, out = replay(config, "--rejects", "B-unknown", "--lang", "zh")
    assert code == 1
    assert "✗ 批次 B-unknown: 发件箱中没有该批次" in out
    assert "✗ 文件 bad.xml: 仍不合规（1 个问题）：" in out
    assert "重新送入 0 项，未处理 2 项" in out


# -- no English inside the Chinese lines ------------------------------------------------------

def test_batches_and_replay_name_levels_states_and_reasons_in_the_agents_language(
        tmp_path: Path) -> None:
    config = write_config(tmp_path)
    batch_id = sent_batch(config, "province")
    with Outbox(tmp_path / "outbox.db") as box:
        box.mark_failed(batch_id, "node-disabled: node furong-01 is disabled", "city")
    code, out = invoke("agent", "batches", "-c", str(config))
    assert code == 0
    assert "省级=已入库 市级=失败 县级=-" in out
    assert "    市级：节点已停用（node-disabled）：node furong-01 is disabled" in out
    assert "province" not in out and "stored" not in out

    code, out = replay(config, batch_id)
    assert code == 0 and "已重新排队（市级答复失败）" in out and "failed at" not in out

    batch_id = sent_batch(config, key="SB0002")
    with Outbox(tmp_path / "outbox.db") as box:
        box.mark_failed(batch_id, "invalid-payload: 1 validation problem(s)", "county")
    code, out = invoke("agent", "batches", "-c", str(config), "--lang", "en")
    assert "province=- city=- county=failed" in out
    assert "    county: payload does not validate (invalid-payload): 1 validation problem(s)" \
        in out
    code, out = replay(config, batch_id, "--lang", "en")
    assert code == 0 and "requeued (failed at county)" in out


@pytest.mark.parametrize(("lang", "names", "states", "marks"), [
    ("zh", ["创建时间", "批次号", "状态", "记录数", "各级回执"], ["已发送", "失败"],
     ["省级=已入库 市级=- 县级=-", "省级=- 市级=失败 县级=-"]),
    ("en", ["created", "batch ID", "state", "records", "receipts by level"], ["sent", "failed"],
     ["province=stored city=- county=-", "province=- city=failed county=-"])])
def test_batches_name_their_columns_above_rows_in_those_columns(
        tmp_path: Path, lang: str, names: list[str], states: list[str],
        marks: list[str]) -> None:
    # The rows came bare: an operator could not tell a state from a count.
    config = write_config(tmp_path)
    sent = sent_batch(config, "province")
    failed = sent_batch(config, key="SB0002")
    with Outbox(tmp_path / "outbox.db") as box:
        box.mark_failed(failed, "node-disabled: node furong-01 is disabled", "city")
    code, out = invoke("agent", "batches", "-c", str(config), "--lang", lang)
    assert code == 0
    header, first, second, _reason, _summary = out.splitlines()
    assert [text for _, _, text in cells(header)] == names
    for row, batch_id, state, mark in zip((first, second), (sent, failed), states, marks,
                                          strict=True):
        assert [text for _, _, text in cells(row)][1:] == [batch_id, state, "1", mark]
        for column, (name, cell) in enumerate(zip(cells(header), cells(row), strict=True)):
            assert (cell[1] == name[1]) if column == 3 else (cell[0] == name[0]), (name, row)
    with Outbox(tmp_path / "outbox.db") as box:
        box.mark_stored(sent, "city", 1)
        box.mark_stored(sent, "county", 1)
        box.mark_stored(failed, "city", 1)
        box.mark_stored(failed, "province", 1)
        box.mark_stored(failed, "county", 1)
    code, out = invoke("agent", "batches", "-c", str(config), "--lang", lang)
    assert code == 0 and len(out.splitlines()) == 1  # no rows: the summary, no header

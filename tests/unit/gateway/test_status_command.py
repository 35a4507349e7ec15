"""``exgate status``: when the store cannot be read, the hint fits the failure and ``--json``
still says something on stdout; failed batch IDs always whole."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from adapters.stores.status_rows import CoverageRow, FailedCount, FailedRow, NodeRow, StatusRows
from gateway.status import StatusReport, build_report
from gateway.status_command import _failed_table, render_tree, run_status
from gateway.status_source import element_labels
from gateway.status_text import LANGS


def config_for(tmp_path: Path, store_url: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[level]\ndivision = "430100"\n[broker]\nurl = "amqp://g@127.0.0.1/"\n'
                      f'[store]\nurl = "{store_url}"\n[registry]\npath = "registry"\n',
                      encoding="utf-8")
    return config


def status(config: Path, as_json: bool, lang: str, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, str, str]:
    console = Console(record=True, width=200, color_system=None)
    code = run_status(config, as_json, lang, console=console)
    return code, console.export_text(), capsys.readouterr().err


CODES = [code for code, _ in element_labels()]

# PostgreSQL on a port nothing listens on: refused at once, as by a stopped server.
AWAY = "postgresql+psycopg://exgate:s3cret@127.0.0.1:1/exgate_city"


@pytest.mark.parametrize(("lang", "hint"), [
    ("zh", "请检查监察库所在的数据库服务是否在运行"),
    ("en", "is the store's database server running and reachable?")])
def test_a_store_away_is_reported_as_unreachable_without_a_retry_promise(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str, hint: str) -> None:
    code, out, err = status(config_for(tmp_path, AWAY), False, lang, capsys)
    assert code == 1 and out == ""
    assert hint in err and "will retry" not in err
    assert "gateway run" not in err and "建好表" not in err


def test_a_store_away_still_prints_json_on_stdout_with_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = status(config_for(tmp_path, AWAY), True, "zh", capsys)
    data = json.loads(out)
    assert code == 1 and data["schema"] == 1 and data["error"] == "store-unavailable"
    assert "will retry" not in data["detail"] and "s3cret" not in out + err
    assert "暂时无法访问" in err


@pytest.mark.parametrize(("lang", "words"), [("zh", "未找到监察库"), ("en", "store not found")])
def test_a_store_not_there_still_prints_json_on_stdout_with_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str, words: str) -> None:
    """It printed nothing on stdout: a script reading the JSON got no answer at all."""
    missing = tmp_path / "typo" / "stroe.db"
    code, out, err = status(config_for(tmp_path, f"sqlite:///{missing}"), True, lang, capsys)
    data = json.loads(out)
    assert code == 2 and data["schema"] == 1 and data["error"] == "store-not-found"
    assert data["detail"].startswith(f"store not found: {missing} (check [store] url")
    assert words in err and str(missing) in err
    assert not missing.parent.exists()


def test_a_store_without_tables_asks_whether_gateway_run_created_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sqlite3.connect(tmp_path / "store.db").close()    # a database, but not exgate's yet
    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    code, _, err = status(config, False, "en", capsys)
    assert code == 1 and "has `exgate gateway run` migrated this store?" in err
    code, out, err = status(config, True, "zh", capsys)
    assert code == 1 and json.loads(out)["error"] == "store-not-migrated"
    assert "此监察库是否已由 `exgate gateway run` 建好表？" in err


def test_failed_batch_ids_are_never_cut_on_a_narrow_terminal() -> None:
    now = datetime(2026, 11, 24, 10, 53, 19)
    batch_id, node_id = "B20261124105319-590e6f0c2a7d", "changsha-furong-01"  # agent's IDs
    failed = FailedRow(batch_id, node_id, "bad-signature", "signature does not verify "
                       "with key version 1 of the node " * 3, now)
    rows = StatusRows(now, [NodeRow(node_id, "430102")], failed=[failed],
                      failed_counts=[FailedCount(node_id, 1, 1)])
    report = build_report(rows, level="430100", elements=element_labels())
    for lang in LANGS:
        console = Console(record=True, width=80, color_system=None)
        console.print(_failed_table(report, lang))
        text = console.export_text()
        assert batch_id in text and node_id in text and "2026-11-24" in text
        assert max(len(line) for line in text.splitlines()) <= 80
        wide = Console(record=True, width=200, color_system=None)
        wide.print(_failed_table(report, lang))  # the reason named in the reader's language
        assert ("签名校验失败（bad-signature）" if lang == "zh" else
                "signature does not verify (bad-signature)") in wide.export_text()


def tree_text(report: StatusReport, lang: str) -> str:
    console = Console(record=True, width=400, color_system=None)
    console.print(render_tree(report, lang))
    return console.export_text()


def covering(*codes: str, node_id: str = "furong-01") -> list[CoverageRow]:
    now = datetime(2026, 11, 24, 10, 0, 0)
    return [CoverageRow(node_id, code, now, now, 1) for code in codes]


@pytest.mark.parametrize(("covered", "zh", "en"), [
    (CODES[:12], "要素覆盖 12/14（缺 SF 收费、LQDJ 领取登记）",
     "Element coverage 12/14 (missing SF Fee, LQDJ Result pick-up)"),
    (CODES[:11], "要素覆盖 11/14（缺 BJ 办结、SF 收费、LQDJ 领取登记）",
     "Element coverage 11/14 (missing BJ Completion, SF Fee, LQDJ Result pick-up)"),
    (CODES[2:10], "要素覆盖 8/14（缺 JGXX、SXXX、TBCXJG、BJ、SF、LQDJ）",  # named no more
     "Element coverage 8/14 (missing JGXX, SXXX, TBCXJG, BJ, SF, LQDJ)"),
    (CODES[8:], "要素覆盖 6/14（缺 JGXX、SXXX、SBXX、SBCL、YSL 等 8 项）",  # the line kept short
     "Element coverage 6/14 (missing 8: JGXX, SXXX, SBXX, SBCL, YSL …)")])
def test_the_tree_names_the_elements_a_node_lacks(covered: list[str], zh: str,
                                                 en: str) -> None:
    # "要素覆盖 12/14" left the operator to guess which two elements never came.
    now = datetime(2026, 11, 24, 10, 53, 19)
    rows = StatusRows(now, [NodeRow("furong-01", "430102")], coverage=covering(*covered))
    report = build_report(rows, level="430100", elements=element_labels())
    assert zh in tree_text(report, "zh") and en in tree_text(report, "en")


def test_the_tree_adds_nothing_when_a_node_has_every_element_or_none() -> None:
    now = datetime(2026, 11, 24, 10, 53, 19)
    rows = StatusRows(now, [NodeRow("furong-01", "430102"), NodeRow("furong-02", "430102")],
                      coverage=covering(*CODES))
    report = build_report(rows, level="430100", elements=element_labels())
    text = tree_text(report, "zh")
    assert "要素覆盖 14/14" in text and "要素覆盖 0/14" in text and "缺" not in text
    assert "missing" not in tree_text(report, "en")

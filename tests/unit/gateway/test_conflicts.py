"""``exgate conflicts list|show|resolve`` over a real SQLite store: the differing fields
are named, resolving takes a conflict out of the node's count, keeps who and why, and
changes no record."""

from __future__ import annotations

import getpass
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters.stores.sql import SqlStore
from cli import main
from gateway.conflicts import conflict_detail, list_conflicts, resolve
from schemas.errors import ConfigError
from schemas.times import BEIJING
from tests.unit.adapters.test_sql_store import batch, records
from tests.unit.gateway.test_status_command import config_for
from tests.unit.schemas.documents import record


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store  # at tmp_path / "store.db", where the gateway config points


@pytest.fixture
def conflicted(store: SqlStore) -> SqlStore:
    """B2 brings SB0002 again, version 1, with another SQRMC (PostgreSQL: its store)."""
    store.write(batch("B1", records(record("SBXX"), record("SBXX", SBLSH="SB0002"))))
    store.write(batch("B2", records(record("SBXX", SBLSH="SB0002", SQRMC="李四"))))
    return store


def stored_rows(store: SqlStore) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        table = store.schema.elements["SBXX"].table
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def node_conflicts(store: SqlStore) -> int:
    c = store.schema.conflict
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(c).where(
            c.c.NODE_ID == "n1", c.c.RESOLVED_AT.is_(None))).scalar_one())


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    result = CliRunner().invoke(main, ["conflicts", *args, "-c", str(config)])
    return result.exit_code, result.stdout, result.stderr


def test_a_conflict_names_the_fields_that_differ(conflicted: SqlStore) -> None:
    store = conflicted
    [entry] = list_conflicts(store)
    assert (entry.node_id, entry.element, entry.key_text, entry.batch_id) == \
        ("n1", "SBXX", "SB0002", "B2")
    found = conflict_detail(store, entry.conflict_id)
    assert found is not None
    _, differences = found
    assert [(d.field, d.incoming) for d in differences] == [("SQRMC", "李四")]
    assert differences[0].stored not in (None, "李四")
    assert conflict_detail(store, entry.conflict_id + 100) is None


def test_resolving_takes_it_out_of_the_count_and_changes_no_record(
        conflicted: SqlStore) -> None:
    store = conflicted
    [entry] = list_conflicts(store)
    rows = stored_rows(store)
    assert node_conflicts(store) == 1
    outcome = resolve(store, [entry.conflict_id, entry.conflict_id, 999], " 王五 ",
                      "源系统已以 SJBBH 2 重发")
    assert (outcome.resolved, outcome.already, outcome.unknown) == \
        ([entry.conflict_id], [], [999])
    assert node_conflicts(store) == 0 and list_conflicts(store) == []
    assert stored_rows(store) == rows
    [kept] = list_conflicts(store, include_resolved=True)
    assert kept.resolved_at is not None
    assert (kept.resolved_by, kept.resolution_note) == ("王五", "源系统已以 SJBBH 2 重发")
    again = resolve(store, [entry.conflict_id], "赵六", "another reason")
    assert (again.resolved, again.already) == ([], [entry.conflict_id])
    [still] = list_conflicts(store, include_resolved=True)
    assert still == kept  # the first resolution stays


def test_a_resolution_another_operator_made_meanwhile_is_kept(conflicted: SqlStore) -> None:
    # Both operators' commands saw the conflict open; the second store write finds it
    # resolved and must neither overwrite the first nor report it as its own.
    store = conflicted
    [entry] = list_conflicts(store)
    at = datetime(2026, 11, 24, 9, 0, tzinfo=BEIJING)
    assert store.resolve_conflicts([entry.conflict_id], at, "王五", "first") == \
        {entry.conflict_id}
    assert store.resolve_conflicts([entry.conflict_id], at, "赵六", "second") == set()
    [kept] = list_conflicts(store, include_resolved=True)
    assert (kept.resolved_by, kept.resolution_note) == ("王五", "first")


@pytest.mark.parametrize(("by", "note", "says"), [
    ("王五", "  ", "--note is empty"),
    ("", "resent", "--by is empty"),
    ("王五", "因" * 501, "--note has 501 characters; at most 500"),
    ("王五", "𠮷" * 251, "--note has 502 characters (a rare character beyond the BMP counts twice)"),
    ("王五", "因" * 498 + "𠮷", None),  # exactly 500 units
    ("x" * 65, "resent", "--by has 65 characters; at most 64"),
    ("王五", "resent\n[2] node n9 SBXX open", "--note holds a line break"),
    ("王五", "resent \u202eton", "--note holds a line break, a control character or an "
                                   "invisible format character"),  # shown reversed
    ("王五\t", "resent", None),  # surrounding white space is dropped, not refused
    ("王五", "经核实\u3000以省级数据为准", None),  # an ideographic space is no control
    ("王五", "resent\u2028again", "--note holds a line break"),
])
def test_a_resolution_needs_who_and_why_that_fit(conflicted: SqlStore, by: str, note: str,
                                                 says: str | None) -> None:
    [entry] = list_conflicts(conflicted)
    if says is None:
        assert resolve(conflicted, [entry.conflict_id], by, note).by == "王五"
        [kept] = list_conflicts(conflicted, include_resolved=True)
        assert kept.resolution_note == note.strip()
        return
    with pytest.raises(ConfigError, match=re.escape(says)):
        resolve(conflicted, [entry.conflict_id], by, note)
    assert list_conflicts(conflicted) == [entry]  # nothing was resolved


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", ("节点 n1 SBXX 业务键 SB0002 版本 1", "SQRMC：已入库", "新到 李四", "已标记为已处理",
            "operator：resent as SJBBH 2）")),
    ("en", ("node n1 SBXX key SB0002 version 1", "SQRMC: stored", "incoming 李四",
            "marked resolved", "by operator: resent as SJBBH 2"))])
def test_the_commands_list_show_and_resolve(conflicted: SqlStore, tmp_path: Path, lang: str,
                                            words: tuple[str, ...],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "operator")
    monkeypatch.delenv("SUDO_USER", raising=False)
    [entry] = list_conflicts(conflicted)
    ident = str(entry.conflict_id)
    code, listed, _ = run(tmp_path, "list", "--lang", lang)
    assert code == 0 and words[0] in listed and f"[{ident}]" in listed
    code, shown, _ = run(tmp_path, "show", ident, "--lang", lang)
    assert code == 0 and words[1] in shown and words[2] in shown
    code, said, _ = run(tmp_path, "resolve", ident, "--note", "resent as SJBBH 2",
                        "--lang", lang)
    assert code == 0 and words[3] in said
    code, listed, _ = run(tmp_path, "list", "--json")
    assert code == 0 and json.loads(listed) == {"conflicts": []}
    code, listed, _ = run(tmp_path, "list", "--all", "--json")
    [kept] = json.loads(listed)["conflicts"]
    assert kept["id"] == entry.conflict_id and kept["resolved_at"] is not None
    # Without --by, the login name running the command.
    assert (kept["resolved_by"], kept["resolution_note"]) == ("operator", "resent as SJBBH 2")
    code, listed, _ = run(tmp_path, "list", "--all", "--lang", lang)
    assert code == 0 and words[4] in listed


def test_resolve_under_sudo_names_who_ran_sudo_and_says_so_in_json(
        conflicted: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "exgate")  # the account sudo ran as
    monkeypatch.setenv("SUDO_USER", "wangwu")
    [entry] = list_conflicts(conflicted)
    code, said, _ = run(tmp_path, "resolve", str(entry.conflict_id), "--note", " resent ",
                        "--json")
    assert code == 0
    assert json.loads(said) == {"resolved": [entry.conflict_id], "already": [], "unknown": [],
                                "resolved_by": "wangwu", "resolution_note": "resent"}


def test_an_unknown_conflict_is_an_error(conflicted: SqlStore, tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "show", "999", "--lang", "en")
    assert code == 1 and "conflict 999 not found" in err
    code, _, err = run(tmp_path, "resolve", "999", "--note", "gone", "--by", "王五",
                       "--lang", "en")
    assert code == 1 and "not found: 999" in err


def test_resolving_without_a_note_is_refused(conflicted: SqlStore, tmp_path: Path) -> None:
    [entry] = list_conflicts(conflicted)
    code, _, err = run(tmp_path, "resolve", str(entry.conflict_id))
    assert code == 2 and "--note" in err
    code, _, err = run(tmp_path, "resolve", str(entry.conflict_id), "--note", " ",
                       "--lang", "en")
    assert code == 2 and "error: --note is empty" in err
    assert list_conflicts(conflicted) == [entry]


def test_an_empty_note_is_said_before_a_store_not_there(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "resolve", "1", "--note", " ", "--lang", "en")
    assert code == 2 and "--note is empty" in err
    assert not (tmp_path / "store.db").exists()


def test_a_value_with_line_breaks_stays_on_its_field_s_line(store: SqlStore,
                                                            tmp_path: Path) -> None:
    store.write(batch("B1", records(record("SBXX"))))
    store.write(batch("B2", records(record("SBXX", SQRMC="李四\n  SQRZJHM：已入库 1，新到 2"))))
    [entry] = list_conflicts(store)
    code, shown, _ = run(tmp_path, "show", str(entry.conflict_id), "--lang", "zh")
    [difference] = [line for line in shown.splitlines() if line.startswith("  ")]
    assert code == 0 and difference.startswith("  SQRMC：")
    assert difference.endswith("新到 李四\\x0a  SQRZJHM：已入库 1，新到 2")

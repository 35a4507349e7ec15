"""``frontdb init`` on a database that already has some of the tables, and Oracle's
triggers that do not compile."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters import frontdb_create
from adapters.frontdb_create import TriggersInvalid
from cli import main


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", "以下表已存在，但缺少列：EX_SBXX (XZQHDM, TYSHXYDM,"),
    ("en", "tables already there lack columns: EX_SBXX (XZQHDM, TYSHXYDM,")])
def test_an_older_table_is_refused_before_anything_is_created(
        tmp_path: Path, lang: str, words: str) -> None:
    # CREATE TABLE skipped it, and the triggers then failed each legacy UPDATE on it.
    url = f"sqlite:///{tmp_path / 'front.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE EX_SBXX (ROW_ID INTEGER PRIMARY KEY, SBLSH TEXT,"
                             " SYNC_FLAG INTEGER, SYNC_TIME TEXT, SYNC_MSG TEXT,"
                             " CREATED_AT TEXT)")
        conn.exec_driver_sql("INSERT INTO EX_SBXX (SBLSH, SYNC_FLAG) VALUES ('SB1', 0)")
    refused = CliRunner().invoke(
        main, ["frontdb", "init", "--url", url, "--triggers", "--lang", lang])
    assert refused.exit_code == 2, refused.output
    assert words in refused.stderr
    assert "SYNC_FLAG" not in refused.stderr.split("EX_SBXX (")[1].split(")")[0]
    try:
        assert sa.inspect(engine).get_table_names() == ["EX_SBXX"]  # nothing created
        with engine.begin() as conn:  # and the legacy system's own writes still work
            conn.exec_driver_sql("UPDATE EX_SBXX SET SBLSH = 'SB2'")
    finally:
        engine.dispose()


def test_oracle_triggers_that_do_not_compile_are_reported() -> None:
    said = "PLS-00049: bad bind variable 'NEW.SLZT'"
    asked: list[str] = []

    def execute(query: Any) -> list[tuple[str, int, str]]:
        asked.append(str(query))
        return [("EX_SL_AU", 1, said)]

    oracle = SimpleNamespace(dialect=SimpleNamespace(name="oracle"), execute=execute)
    errors = frontdb_create._oracle_trigger_errors(oracle)  # type: ignore[arg-type]
    assert errors == [("EX_SL_AU", 1, said)]
    assert "FROM user_errors WHERE type = 'TRIGGER'" in asked[0]
    message = TriggersInvalid("oracle://scott@db/orcl", errors)
    assert f"EX_SL_AU line 1: {said}" in str(message)
    assert "would fail every write to their tables" in str(message)
    assert "编译失败" in message.message("zh")
    other = SimpleNamespace(dialect=SimpleNamespace(name="postgresql"), execute=execute)
    assert frontdb_create._oracle_trigger_errors(other) == []  # type: ignore[arg-type]


def test_init_refuses_triggers_the_server_says_do_not_compile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No Oracle here: what USER_ERRORS would answer stands in, the rest is init itself.
    errors = [("EX_SL_AU", 1, "PLS-00049: bad bind variable 'NEW.SLZT'")]
    monkeypatch.setattr(frontdb_create, "_oracle_trigger_errors", lambda conn: errors)
    url = f"sqlite:///{tmp_path / 'front.db'}"
    refused = CliRunner().invoke(main, ["frontdb", "init", "--url", url, "--triggers",
                                        "--lang", "en"])
    assert refused.exit_code == 1
    assert f"triggers at {url} do not compile" in refused.stderr
    assert "EX_SL_AU line 1: PLS-00049: bad bind variable 'NEW.SLZT'" in refused.stderr
    assert "ready" not in refused.output


def test_an_unsupported_dialect_is_named_before_its_driver_is_looked_for() -> None:
    refused = CliRunner().invoke(main, ["frontdb", "init", "--url", "mssql+pyodbc://h/db"])
    assert refused.exit_code == 2
    assert "未知的数据库方言 'mssql'" in refused.stderr

"""``agent once`` with a drop folder on local disk: what it reports when its last step fails."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from adapters.sealing import generate_node_keys, write_node_keys
from frontend_machine.agent_command import run_once
from frontend_machine.outbox import Outbox
from schemas.errors import RetriableError
from tests.unit.adapters.front_rows import row
from tests.unit.schemas.documents import document, record


def write_config(tmp_path: Path, stable_seconds: float = 0.0, chunk_records: int = 500) -> Path:
    """An agent with one drop folder under ``tmp_path`` and no broker (also used by the
    integration tests of the folder source)."""
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[node]
id = "test-node"
division = "430102"
[outbox]
path = "outbox.db"
batch_linger_seconds = 0
[[sources]]
kind = "folder"
name = "drop"
path = "drop"
stable_seconds = {stable_seconds}
rescan_seconds = 1
observer = "none"
chunk_records = {chunk_records}
""", encoding="utf-8")
    for sub in ("inbox", "processing", "done", "error"):
        (tmp_path / "drop" / sub).mkdir(parents=True, exist_ok=True)
    return config


def once(config: Path) -> tuple[int, str]:
    out = io.StringIO()
    return run_once(config, "en", out=out), out.getvalue()


def test_a_failed_final_seal_is_a_warning_and_the_next_run_seals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path)
    keys = [f"SB{n:04d}" for n in range(3)]
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(
        document(record("SBXX", SBLSH=key) for key in keys))
    seal = Outbox.seal_batches

    def disk_full_when_flushing(self: Outbox, max_records: int, max_bytes: int,
                                linger_seconds: float) -> list[str]:
        if linger_seconds == 0:  # only the final flush of the run fails
            raise RetriableError("outbox: database or disk is full")
        return seal(self, max_records, max_bytes, linger_seconds)

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING, "exgate"):
        patched.setattr(Outbox, "seal_batches", disk_full_when_flushing)
        code, report = once(config)
    assert code == 0, report
    [warning] = [r.getMessage() for r in caplog.records if "final sealing" in r.getMessage()]
    assert "in the outbox and marked taken" in warning and "disk is full" in warning
    assert [p.name for p in (tmp_path / "drop" / "done").glob("*/*.xml")] == ["a.xml"]
    with Outbox(tmp_path / "outbox.db") as outbox:
        depth = outbox.depth()
        assert (outbox.record_count(), depth.unbatched_records, depth.pending_batches) == (3, 3, 0)

    assert once(config)[0] == 0
    with Outbox(tmp_path / "outbox.db") as outbox:
        depth = outbox.depth()
        assert (outbox.record_count(), depth.unbatched_records, depth.pending_batches) == (3, 0, 1)


def test_a_failed_seal_is_logged_in_the_agent_s_language(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path)
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(document([record("SBXX")]))

    def disk_full(self: Outbox, *args: object) -> list[str]:
        raise RetriableError("outbox o.db: database or disk is full, while sealing",
                             zh="发件箱 o.db 暂时无法写入：database or disk is full；稍后重试，"
                                "数据不会丢失")

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING, "exgate"):
        patched.setattr(Outbox, "seal_batches", disk_full)
        assert run_once(config, "zh", out=io.StringIO()) == 0
    [warning] = [r.getMessage() for r in caplog.records if "最后一次封装" in r.getMessage()]
    assert warning.endswith("：发件箱 o.db 暂时无法写入：database or disk is full；稍后重试，"
                            "数据不会丢失")


def test_once_without_a_broker_says_its_batches_are_never_sent(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(document([record("SBXX")]))
    code, out = once(config)
    assert code == 0 and "outbox: 1 pending batch(es)" in out
    assert "no [broker] in the config: batches stay in the outbox and are never sent" in out


def test_once_names_every_source_in_the_configs_order_even_one_that_took_nothing(
        tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "empty" / "inbox").mkdir(parents=True)
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[[sources]]", '[[sources]]\nkind = "folder"\nname = "empty"\npath = "empty"\n'
        'observer = "none"\n\n[[sources]]', 1), encoding="utf-8")
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(document([record("SBXX")]))
    code, out = once(config)
    assert code == 0, out
    said = [line.split(":")[0] for line in out.splitlines() if line.startswith("source ")]
    assert said == ["source empty", "source drop"], out
    assert "source empty: 0 added, 0 duplicate, 0 conflicting, 0 rejected" in out


@pytest.mark.parametrize(("outbox", "said"), [
    ("box", "configuration error: cannot open outbox {root}/box: it is a folder; give "
            "[outbox] path the journal's file, such as {root}/box/outbox.db"),
    ("file/outbox.db", "configuration error: cannot open outbox {root}/file/outbox.db: "
                       "[Errno 17] File exists"),
])
def test_an_outbox_path_that_cannot_be_a_journal_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], outbox: str, said: str) -> None:
    """It exited 1, and systemd restarted the agent every 5 s into the same error."""
    config = write_config(tmp_path)
    (tmp_path / "box").mkdir()
    (tmp_path / "file").write_bytes(b"")
    config.write_text(config.read_text(encoding="utf-8").replace(
        'path = "outbox.db"', f'path = "{outbox}"'), encoding="utf-8")
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(document([record("SBXX")]))
    code, out = once(config)
    assert code == 2 and out == ""
    assert capsys.readouterr().err.startswith(said.format(root=tmp_path))
    assert [p.name for p in (tmp_path / "drop" / "inbox").iterdir()] == ["a.xml"]


def test_a_refused_login_is_placed_where_the_login_came_from() -> None:
    from types import SimpleNamespace

    from frontend_machine.agent_command import _login_source

    def config(url: str) -> object:
        return SimpleNamespace(path=Path("/etc/exgate/agent.toml"),
                               broker=SimpleNamespace(url=url),
                               node=SimpleNamespace(key_file=Path("/etc/exgate/node.key")))

    assert _login_source(config("amqps://mq:5671/exgate")) == "/etc/exgate/node.key"  # type: ignore[arg-type]
    assert _login_source(config("amqps://n1:pw@mq:5671/exgate")) == \
        "/etc/exgate/agent.toml (broker.url)"  # type: ignore[arg-type]


def _front_with_one_row(front: str) -> tuple[sa.Engine, sa.Table]:
    """A SQLite front-end database at ``front`` with one SBXX row waiting."""
    create_all(front)
    table = front_tables("sqlite").elements["SBXX"]
    engine = sa.create_engine(front)
    with engine.begin() as conn:
        conn.execute(table.insert(), [row("SBXX", 1)])
    return engine, table


@pytest.mark.parametrize("key_file", ["missing", "readable by others"])
def test_once_checks_the_credentials_before_it_reads_any_source(
        tmp_path: Path, key_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    """As `agent run` does: a credentials file that cannot be used stops `once` (exit 2)
    with no row marked taken, no file moved and no outbox created."""
    front = f"sqlite:///{tmp_path / 'front.db'}"
    engine, table = _front_with_one_row(front)
    config = write_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'division = "430102"', 'division = "430102"\nkey_file = "node.key"') + f"""
[[sources]]
kind = "db"
name = "front"
url = "{front}"
tables = ["SBXX"]
[broker]
url = "amqp://127.0.0.1:9/exgate"
""", encoding="utf-8")
    key = tmp_path / "node.key"
    if key_file == "readable by others":
        write_node_keys(key, generate_node_keys("test-node"))
        os.chmod(key, 0o644)
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(document([record("SBXX")]))

    assert run_once(config, "zh", out=io.StringIO()) == 2
    said = capsys.readouterr().err
    assert f"配置错误：{config}：配置项 node.key_file：{key}：" in said  # which setting, too
    assert ("无法读取密钥文件" if key_file == "missing" else "密钥文件可被他人读取（权限 644）") \
        in said
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.SYNC_FLAG)).scalars().all() == [0]
    engine.dispose()
    assert [p.name for p in (tmp_path / "drop").rglob("*.xml")] == ["a.xml"]
    assert (tmp_path / "drop" / "inbox" / "a.xml").exists()
    assert not (tmp_path / "outbox.db").exists()


def test_once_reads_a_relative_sqlite_source_beside_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`url = "sqlite:///front.db"` is the file beside the config, whatever the working
    directory (``/`` under systemd): not a new, empty database there."""
    conf = tmp_path / "conf"
    conf.mkdir()
    config = write_config(conf)
    engine, table = _front_with_one_row(f"sqlite:///{conf / 'front.db'}")
    config.write_text(config.read_text(encoding="utf-8") + """
[[sources]]
kind = "db"
name = "front"
url = "sqlite:///front.db"
tables = ["SBXX"]
""", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, report = once(config)
    assert code == 0, report
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.SYNC_FLAG)).scalars().all() == [1]
    engine.dispose()
    assert list(elsewhere.iterdir()) == []

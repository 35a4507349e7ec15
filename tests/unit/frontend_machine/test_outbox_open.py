"""Opening the outbox: the agent creates it; ``create=False`` opens an existing one only."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from frontend_machine.outbox import Outbox, OutboxBroken, OutboxNotFound
from frontend_machine.outbox_connection import OutboxPathUnusable, unopenable
from frontend_machine.outbox_schema import SCHEMA_VERSION
from schemas.errors import ConfigError


def test_a_missing_outbox_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "outbx.db"
    with pytest.raises(OutboxNotFound) as refused:
        Outbox(missing, create=False)
    assert isinstance(refused.value, ConfigError)
    assert str(refused.value).startswith(f"outbox not found: {missing} ")
    assert refused.value.message("zh").startswith(f"未找到发件箱：{missing}（")
    assert refused.value.message("en") == str(refused.value)
    assert not missing.parent.exists()


@pytest.mark.parametrize("name", ["outbox.db", "a b?c#d%20e.db"])
def test_an_existing_outbox_opens(tmp_path: Path, name: str) -> None:
    path = tmp_path / "new" / name
    with Outbox(path) as made:  # the agent's way: folders and file created
        assert made.batches((), 10) == []
    with Outbox(path, create=False) as opened:
        assert opened.batches((), 10) == [] and opened.open_rejects() == 0
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) \
        == [name]


def test_an_outbox_a_newer_exgate_wrote_says_so_in_both_languages(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_meta SET value = '99' WHERE key = 'version'")
    db.close()
    with pytest.raises(OutboxBroken) as refused:
        Outbox(path)
    assert str(refused.value) == (
        f"cannot open outbox {path}: its schema version 99 was written by a newer exgate "
        f"than this one (version {SCHEMA_VERSION}); install that exgate version or a later "
        "one on this machine, then start the agent again")
    assert refused.value.message("zh") == (
        f"无法打开发件箱 {path}：其结构版本 99 由更新版本的 exgate 写入（本程序为 "
        f"{SCHEMA_VERSION}）；请在本机安装该版本或更新的 exgate，再启动代理")


def test_a_path_the_system_will_not_let_be_a_journal_is_a_config_error(
        tmp_path: Path) -> None:
    """A read-only file system (outside a systemd unit's ReadWritePaths, say): a
    restart cannot help, so the service manager must not restart into it."""
    read_only = OSError(errno.EROFS, "Read-only file system")
    assert isinstance(unopenable(tmp_path / "outbox.db", read_only), OutboxPathUnusable)
    broken = sqlite3.DatabaseError("file is not a database")
    assert type(unopenable(tmp_path / "outbox.db", broken)) is OutboxBroken


def test_a_folder_that_cannot_be_searched_still_gets_its_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking whether the path is a folder raised PermissionError from inside the error
    path: a traceback instead of the message."""
    def unsearchable(self: Path) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_dir", unsearchable)
    denied = PermissionError(13, "Permission denied")
    said = unopenable(tmp_path / "outbox.db", denied)
    assert isinstance(said, OutboxPathUnusable)
    assert "Permission denied" in str(said) and "[outbox] path" in str(said)

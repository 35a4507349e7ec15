"""The outbox and a SQLite level store are readable by their owner alone, whatever
the umask: they hold every record in plain text."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.private_files import create_private
from adapters.stores.sql import SqlStore
from frontend_machine.outbox import Outbox


@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0o022)  # the usual one, under which files are world-readable
    try:
        yield
    finally:
        os.umask(before)


def modes(folder: Path, prefix: str) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()
            if p.name.startswith(prefix)}


@pytest.mark.usefixtures("open_umask")
def test_the_outbox_and_its_wal_are_private(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.record_count()
        found = modes(tmp_path, "outbox.db")
    assert "outbox.db-wal" in found and set(found.values()) == {0o600}


@pytest.mark.usefixtures("open_umask")
def test_a_sqlite_store_and_its_wal_are_private(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        store.migrate()
        found = modes(tmp_path, "store.db")
    finally:
        store.close()
    assert "store.db" in found and set(found.values()) == {0o600}


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "outbox.db"
    shared.touch()
    shared.chmod(0o640)  # as its operator chose
    create_private(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640

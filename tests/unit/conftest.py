"""Fixtures shared by unit tests of several packages."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.stores.sql import SqlStore


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """A migrated central store in a temporary SQLite file."""
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", sqlite_busy_s=0.2)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a path unreadable as the system does for a user without the permission
    (root reads anything, and the tests may run as root): ``access`` says so, and
    opening the file or listing the folder is refused."""
    denied: set[Path] = set()
    access, scandir, open_file = os.access, os.scandir, io.open

    def refuse(path: object) -> None:
        if Path(str(path)) in denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def checked_access(path: str, mode: int, **kwargs: object) -> bool:
        return not (mode & os.R_OK and Path(path) in denied) and access(path, mode)

    def checked_scandir(path: str) -> os.ScandirIterator[str]:  # os.walk lists with it
        refuse(path)
        return scandir(path)

    def checked_open(file: str, *args: Any, **kwargs: Any) -> Any:  # Path.open's
        refuse(file)
        return open_file(file, *args, **kwargs)

    monkeypatch.setattr(os, "access", checked_access)
    monkeypatch.setattr(os, "scandir", checked_scandir)
    monkeypatch.setattr(io, "open", checked_open)
    return denied.add

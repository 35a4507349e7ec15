"""Fixtures shared by unit tests of several packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.stores.sql import SqlStore


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """A migrated central store in a temporary SQLite file."""
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", sqlite_busy_s=0.2)
    opened.migrate()
    yield opened
    opened.close()

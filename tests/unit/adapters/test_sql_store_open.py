"""Opening a SQLite store: created by default, only an existing one with ``create=False``."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.stores.sql import SqlStore
from adapters.stores.sql_engine import StoreNotFound
from schemas.errors import ConfigError


def test_a_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "stroe.db"
    with pytest.raises(StoreNotFound) as refused:
        SqlStore(f"sqlite:///{missing}", create=False)
    assert isinstance(refused.value, ConfigError)
    assert str(refused.value).startswith(f"store not found: {missing} ")
    assert refused.value.message("zh").startswith(f"未找到监察库：{missing}（")
    assert refused.value.message("en") == str(refused.value)
    assert not missing.parent.exists()


def test_a_relative_path_is_reported_in_full(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreNotFound, match=f"store not found: {tmp_path / 'x.db'} "):
        SqlStore("sqlite:///x.db", create=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["store.db", "a b?c#d%20e.db"])
def test_an_existing_store_opens_and_is_never_made_again(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    url = sa.URL.create("sqlite", database=str(path))  # a "?" in a URL string starts a query
    made = SqlStore(url)
    made.migrate()
    made.close()
    store = SqlStore(url, create=False)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM ST_BATCH")).scalar() == 0
        store.close()  # drop pooled connections: the next one opens the file again
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(sa.exc.OperationalError), store.engine.connect():
            pass
        assert not path.exists()
    finally:
        store.close()


def test_the_gateway_still_creates_its_store(tmp_path: Path) -> None:
    path = tmp_path / "new" / "store.db"
    store = SqlStore(f"sqlite:///{path}")
    store.migrate()
    store.close()
    assert path.is_file()

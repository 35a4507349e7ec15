"""Opening the outbox: the agent creates it; ``create=False`` opens an existing one only."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend_machine.outbox import Outbox, OutboxNotFound
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

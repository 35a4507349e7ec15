"""Sources that would read the same folder or table are refused when the config loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend_machine.config import load_config
from schemas.errors import ConfigError


def config(tmp_path: Path, sources: str, outbox: str = "outbox.db") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[node]\nid = "n1"\ndivision = "430102"\n[outbox]\npath = "{outbox}"\n'
                    + sources, encoding="utf-8")
    return path


def folder(name: str, path: str) -> str:
    return f'[[sources]]\nkind = "folder"\nname = "{name}"\npath = "{path}"\n'


def db(name: str, url: str, tables: str | None = None, mapped: str | None = None) -> str:
    text = f'[[sources]]\nkind = "db"\nname = "{name}"\nurl = "{url}"\n'
    if tables is not None:
        text += f"tables = {tables}\n"
    if mapped is not None:
        text += f'[sources.mapping.SBXX]\ntable = "{mapped}"\n'
    return text


@pytest.mark.parametrize(("sources", "shared"), [
    (folder("a", "drop") + folder("b", "./drop/"), "share a folder"),
    (folder("a", "drop") + folder("b", "drop/inbox"), "one is inside the other"),
    (folder("a", "x/../drop") + folder("b", "drop"), "share a folder"),
    (db("a", "sqlite:///front.db") + db("b", "sqlite:///front.db", '["SL"]'),
     "both read table EX_SL"),
    (db("a", "sqlite:///front.db", '["SBXX"]', "LEGACY")
     + db("b", "sqlite:///./front.db", '["BJ", "SBXX"]', "legacy"), "both read table LEGACY"),
])
def test_sources_reading_the_same_thing_are_refused_naming_both(
        tmp_path: Path, sources: str, shared: str) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError) as refused:
        load_config(config(tmp_path, sources))
    assert shared in str(refused.value)
    assert "'a'" in str(refused.value) and "'b'" in str(refused.value)
    assert "'a'" in refused.value.message("zh")


def test_an_outbox_inside_a_drop_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is inside the folder") as refused:
        load_config(config(tmp_path, folder("a", "drop"), outbox="drop/inbox/outbox.db"))
    assert "请将发件箱放在其外" in refused.value.message("zh")


def test_sources_side_by_side_are_fine(tmp_path: Path) -> None:
    loaded = load_config(config(
        tmp_path, folder("a", "drop-a") + folder("b", "drop-ab")
        + db("c", "sqlite:///front.db", '["SBXX"]') + db("d", "sqlite:///front.db", '["SL"]')
        + db("e", "sqlite:///other.db")))
    assert [s.name for s in loaded.sources] == ["a", "b", "c", "d", "e"]

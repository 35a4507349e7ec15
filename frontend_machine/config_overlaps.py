"""Sources that would read the same thing, refused when the agent's config loads.

Two folder sources on one folder, or one inside the other, race for the same files: a
file one claims into ``processing/`` is resumed by the other as half-done after a
restart, and the outer one finds the inner one's ``processing/``, ``done/`` and
``error/`` in its inbox. Two database sources on one table both journal its rows and
write its flags back. An outbox inside a drop folder would be taken for a dropped file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from schemas.messages import Localized

__all__ = ["overlap"]


class _Source(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


def overlap(sources: Iterable[_Source], outbox: Path,
            element_codes: Callable[[], Iterable[str]]) -> Localized | None:
    """What two of ``sources``, or a source and the outbox, share; None when nothing.

    ``element_codes`` gives the catalogue's, which a database source without ``tables``
    reads (asked for only then: it reads the schema).
    """
    sources = list(sources)
    folders = [(s.name, _real(Path(s.options["path"]))) for s in sources
               if s.kind == "folder" and isinstance(s.options.get("path"), str)]
    for index, (name, path) in enumerate(folders):
        for other, other_path in folders[index + 1:]:
            if _nested(path, other_path):
                return Localized(
                    f"数据源 {name!r} 与 {other!r} 的文件夹相同或相互嵌套（{path}，{other_path}）："
                    "两者会争抢同一批文件；请为每个数据源指定各自独立的文件夹",
                    f"sources {name!r} and {other!r} share a folder, or one is inside the"
                    f" other ({path}, {other_path}): they would race for the same files;"
                    " give each source a folder of its own")
        if path in _real(outbox).parents:
            return Localized(
                f"发件箱 {outbox} 位于数据源 {name!r} 的文件夹 {path} 之内：请将发件箱放在其外",
                f"the outbox {outbox} is inside the folder {path} of source {name!r}: put it"
                " outside")
    seen: dict[tuple[str, str], str] = {}
    for source in sources:
        if source.kind != "db" or not isinstance(source.options.get("url"), str):
            continue
        for table in _tables(source.options, element_codes):
            key = (source.options["url"], table)
            if key in seen:
                return Localized(
                    f"数据源 {seen[key]!r} 与 {source.name!r} 读取同一张表 {table}：两者都会采集"
                    "其中的行并回写标志；请只让一个数据源读取它",
                    f"sources {seen[key]!r} and {source.name!r} both read table {table}: both"
                    " would journal its rows and write its flags back; let one source read it")
            seen[key] = source.name
    return None


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _nested(one: Path, other: Path) -> bool:
    return one == other or one in other.parents or other in one.parents


def _tables(options: Mapping[str, Any],
            element_codes: Callable[[], Iterable[str]]) -> Iterator[str]:
    """The tables a database source reads, by name (upper case); what does not parse is
    left for the source to report, naming itself."""
    from adapters.frontdb import table_name  # SQLAlchemy: for database sources only

    tables = options["tables"] if "tables" in options else tuple(element_codes())
    mapping = options.get("mapping")
    for code in tables if isinstance(tables, list | tuple) else ():
        mapped = mapping.get(code) if isinstance(mapping, dict) else None
        name = mapped.get("table") if isinstance(mapped, dict) else None
        yield (name if isinstance(name, str) else table_name(code)).upper()

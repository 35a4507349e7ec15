"""The ``[[sources]]`` options of a ``kind = "folder"`` source, checked once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.config_files import is_number, number_wanted
from schemas.errors import ConfigError
from schemas.reader import Limits

__all__ = ["FolderOptions"]

_OBSERVERS = ("native", "polling", "none")


@dataclass(frozen=True, slots=True)
class FolderOptions:
    """The ``[[sources]]`` keys of ``kind = "folder"``."""

    path: Path
    stable_seconds: float = 5.0
    rescan_seconds: float = 30.0
    observer: str = "native"       # "polling" on network shares (NFS, SMB)
    chunk_records: int = 500
    files_per_chunk: int = 100     # small files share a chunk: one fsync, not one each
    max_report_issues: int = 10_000
    max_file_mb: int = 4096        # a larger file goes to error/ unread (file-too-large)

    @property
    def limits(self) -> Limits:
        """The reader's caps for this folder's files."""
        return Limits.from_megabytes(self.max_file_mb)

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> FolderOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            keys = ", ".join(sorted(known))
            raise ConfigError(f"unknown key {unknown[0]!r} (folder sources take: {keys})",
                              zh=f"未知的配置项 {unknown[0]!r}（folder 类型的数据源可用：{keys}）")
        if not isinstance(options.get("path"), str | Path) or not str(options["path"]):
            raise ConfigError("key 'path' is required: the drop folder holding inbox/",
                              zh="必须设置配置项 'path'：含有 inbox/ 的投递目录")
        values: dict[str, Any] = {"path": Path(options["path"])}
        for key, low in (("stable_seconds", 0.0), ("rescan_seconds", 0.01)):
            if key in options:
                values[key] = _number(options[key], key, low)
        for key in ("chunk_records", "files_per_chunk", "max_report_issues", "max_file_mb"):
            if key in options:
                values[key] = int(_number(options[key], key, 1, integer=True))
        observer = options.get("observer", "native")
        if observer not in _OBSERVERS:
            choices = ", ".join(_OBSERVERS)
            raise ConfigError(f"key 'observer' is {observer!r}; use one of {choices}",
                              zh=f"配置项 'observer' 为 {observer!r}；请使用以下之一：{choices}")
        return cls(observer=observer, **values)


def _number(value: Any, key: str, low: float, *, integer: bool = False) -> float:
    if not is_number(value, low, integer=integer):
        wanted, wanted_zh = number_wanted(low, integer=integer)
        raise ConfigError(f"key {key!r} is {value!r}; it must be {wanted}",
                          zh=f"配置项 {key!r} 为 {value!r}；必须是 {wanted_zh}")
    return float(value)

"""The ``[[sources]]`` options of a ``kind = "db"`` source, checked once at start-up.

```toml
[[sources]]
kind = "db"
name = "approvals"
url = "postgresql://exgate@127.0.0.1/front"
password_file = "/etc/exgate/front-db.password"   # the URL's password, kept out of the config
strategy = "flag"                 # "flag" (default) | "changelog" | "cursor"
tables = ["SBXX", "SL", "BJ"]     # element codes; default all 14
page_size = 2000                  # rows per page: one journal fsync and one UPDATE each
cursor_safety_lag_seconds = 60    # cursor: only rows older than this are read
cursor_null_scan_seconds = 3600   # cursor: how often rows with a NULL timestamp are sought
changelog_gap_wait_seconds = 300  # changelog: how long a SEQ gap may still fill
                                  # (purge EX_CHANGELOG with DELETE up to the journaled
                                  # "seq", never TRUNCATE: that restarts SEQ at 1)

[sources.mapping.SBXX]            # a legacy table or view feeding an element
table = "LEGACY_APPLY"            # flag/changelog: no other element's table may share
                                  # this name without its schema (APPA.T vs APPB.T)
columns = { SBLSH = "APPLY_NO", GXSJ = "UPD_TIME" }   # field → column; default: same names
key = ["APPLY_NO", "VERSION"]     # cursor tie-breaker; default: business key + SJBBH
timestamp = "UPD_TIME"            # cursor column; default: the GXSJ column
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.config_files import is_number, number_wanted
from adapters.frontdb import table_name
from schemas.catalog import SchemaCatalog
from schemas.errors import ConfigError

__all__ = ["STRATEGIES", "DatabaseOptions", "MappingOptions", "parse_options"]

STRATEGIES = ("flag", "changelog", "cursor")
_KEYS = frozenset({
    "url", "strategy", "tables", "page_size", "mapping", "cursor_safety_lag_seconds",
    "cursor_null_scan_seconds", "changelog_gap_wait_seconds", "oracle_thick",
    "oracle_client_lib", "password_file",
})
_MAPPING_KEYS = frozenset({"table", "columns", "key", "timestamp"})


@dataclass(frozen=True)
class MappingOptions:
    """Where one element is read from when it is not the standard EX_<CODE> table."""

    table: str
    columns: Mapping[str, str]      # field code → column name
    key: tuple[str, ...] = ()       # cursor tie-breaker columns
    timestamp: str | None = None    # cursor column


@dataclass(frozen=True)
class DatabaseOptions:
    url: str
    strategy: str = "flag"
    tables: tuple[str, ...] = ()
    page_size: int = 2000
    mapping: Mapping[str, MappingOptions] | None = None
    cursor_safety_lag_seconds: float = 60.0
    cursor_null_scan_seconds: float = 3600.0
    changelog_gap_wait_seconds: float = 300.0
    oracle_thick: bool = False
    oracle_client_lib: str | None = None
    password_file: str | None = None


def parse_options(options: Mapping[str, Any], catalog: SchemaCatalog) -> DatabaseOptions:
    """Check every option; a bad one raises ConfigError naming the key and a fix."""
    unknown = sorted(set(options) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise ConfigError(f"unknown option {unknown[0]!r}; known: {known}",
                          zh=f"未知的配置项 {unknown[0]!r}；可用：{known}")
    url = options.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError("'url' is required: a SQLAlchemy URL such as "
                          "'postgresql://user@host/db'",
                          zh="必须设置 'url'：SQLAlchemy URL，例如 'postgresql://user@host/db'")
    strategy = options.get("strategy", "flag")
    if strategy not in STRATEGIES:
        choices = ", ".join(STRATEGIES)
        raise _bad_value("strategy", strategy, f"one of {choices}", f"请使用以下之一：{choices}")
    tables = _tables(options.get("tables"), catalog)
    mapping = _mappings(options.get("mapping"), tables, strategy, catalog)
    if strategy != "cursor":
        _check_distinct_tables(tables, mapping or {})
    return DatabaseOptions(
        url=url,
        strategy=strategy,
        tables=tables,
        page_size=int(_number(options, "page_size", 2000, 1, integer=True)),
        mapping=mapping,
        cursor_safety_lag_seconds=_number(options, "cursor_safety_lag_seconds", 60.0, 0),
        cursor_null_scan_seconds=_number(options, "cursor_null_scan_seconds", 3600.0, 0),
        changelog_gap_wait_seconds=_number(options, "changelog_gap_wait_seconds", 300.0, 0),
        oracle_thick=_flag(options, "oracle_thick"),
        oracle_client_lib=_optional_text(options, "oracle_client_lib"),
        password_file=_optional_text(options, "password_file"),
    )


def _tables(value: Any, catalog: SchemaCatalog) -> tuple[str, ...]:
    if value is None:
        return catalog.element_codes
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError("'tables' must be a non-empty list of element codes, "
                          "such as [\"SBXX\", \"SL\"]",
                          zh="'tables' 必须是非空的要素代码列表，例如 [\"SBXX\", \"SL\"]")
    for code in value:
        if code not in catalog.elements:
            known = ", ".join(catalog.element_codes)
            raise ConfigError(f"'tables' names {code!r}, which is not an element; known: {known}",
                              zh=f"'tables' 中的 {code!r} 不是要素代码；可用：{known}")
    return tuple(code for code in catalog.element_codes if code in value)


def _number(options: Mapping[str, Any], key: str, default: float, minimum: float,
            integer: bool = False) -> float:
    value = options.get(key, default)
    if not is_number(value, minimum, integer=integer):
        wanted, wanted_zh = number_wanted(minimum, integer=integer)
        raise _bad_value(key, value, wanted, f"请使用 {wanted_zh}")
    return float(value)


def _flag(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if not isinstance(value, bool):
        raise _bad_value(key, value, "true or false", "请使用 true 或 false")
    return value


def _optional_text(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _bad_value(key, value, "a non-empty string", "请使用非空字符串")
    return value


def _bad_value(key: str, value: Any, use: str, use_zh: str) -> ConfigError:
    return ConfigError(f"{key!r} is {value!r}; use {use}", zh=f"{key!r} 为 {value!r}；{use_zh}")


def _check_distinct_tables(tables: tuple[str, ...], mapping: Mapping[str, MappingOptions]) -> None:
    """Refuse two elements whose tables share a name once the schema is dropped.

    The write-back finds a row's table by that bare name (EX_CHANGELOG.TABLE_NAME holds
    no schema), so the second table would have its rows marked taken without being
    read; and one SYNC_FLAG column cannot track two elements.
    """
    seen: dict[str, tuple[str, str]] = {}
    for code in tables:
        name = mapping[code].table if code in mapping else table_name(code)
        bare = name.rpartition(".")[2].upper()
        if bare in seen:
            other_code, other = seen[bare]
            raise ConfigError(
                f"elements {other_code} ({other!r}) and {code} ({name!r}) are read from "
                f"tables both named {bare!r} without their schema; the flag and changelog "
                "strategies (EX_CHANGELOG.TABLE_NAME, SYNC_FLAG) tell tables apart by that "
                "name alone: give each element a table or view of its own name",
                zh=f"要素 {other_code}（{other!r}）和 {code}（{name!r}）读取的表去掉模式名后"
                   f"都叫 {bare!r}；flag 和 changelog 策略（EX_CHANGELOG.TABLE_NAME、SYNC_FLAG）"
                   "只凭这个名称区分表：请为每个要素使用名称不同的表或视图")
        seen[bare] = (code, name)


def _mappings(value: Any, tables: tuple[str, ...], strategy: str,
              catalog: SchemaCatalog) -> dict[str, MappingOptions] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("'mapping' must be a table of element codes, such as "
                          "[sources.mapping.SBXX]",
                          zh="'mapping' 必须是以要素代码为键的表，例如 [sources.mapping.SBXX]")
    result = {}
    for code, entry in value.items():
        where = f"mapping.{code}"
        if code not in tables:
            listed = ", ".join(tables)
            raise ConfigError(f"{where!r}: {code!r} is not one of the source's tables "
                              f"({listed})",
                              zh=f"{where!r}：{code!r} 不在该数据源的 tables 中（{listed}）")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where!r} must be a table with 'table' and 'columns'",
                              zh=f"{where!r} 必须是含 'table' 和 'columns' 的表")
        result[code] = _mapping(where, code, entry, strategy, catalog)
    return result


def _mapping(where: str, code: str, entry: Mapping[str, Any], strategy: str,
             catalog: SchemaCatalog) -> MappingOptions:
    unknown = sorted(set(entry) - _MAPPING_KEYS)
    if unknown:
        known = ", ".join(sorted(_MAPPING_KEYS))
        raise ConfigError(f"'{where}.{unknown[0]}' is not an option; known: {known}",
                          zh=f"'{where}.{unknown[0]}' 不是可用的配置项；可用：{known}")
    table = entry.get("table")
    if not isinstance(table, str) or not table:
        raise ConfigError(f"'{where}.table' is required: the legacy table or view name",
                          zh=f"必须设置 '{where}.table'：旧系统的表名或视图名")
    spec = catalog.elements[code]
    columns = entry.get("columns", {f: f for f in spec.fields})
    if not isinstance(columns, dict) or not all(isinstance(c, str) and c for c in columns.values()):
        raise ConfigError(f"'{where}.columns' must map field codes to column names",
                          zh=f"'{where}.columns' 必须是字段代码到列名的映射")
    for field in columns:
        if field not in spec.fields:
            known = ", ".join(spec.fields)
            raise ConfigError(f"'{where}.columns' names {field!r}, which is not a field of "
                              f"{code}; known: {known}",
                              zh=f"'{where}.columns' 中的 {field!r} 不是 {code} 的字段；"
                                 f"可用：{known}")
    if strategy != "cursor":
        for option in ("key", "timestamp"):
            if option in entry:
                raise ConfigError(f"'{where}.{option}' is only used by strategy \"cursor\"",
                                  zh=f"'{where}.{option}' 只用于 strategy \"cursor\"")
        return MappingOptions(table, dict(columns))
    return MappingOptions(table, dict(columns), *_cursor_columns(where, code, entry, columns,
                                                                 catalog))


def _cursor_columns(where: str, code: str, entry: Mapping[str, Any], columns: Mapping[str, str],
                    catalog: SchemaCatalog) -> tuple[tuple[str, ...], str]:
    spec = catalog.elements[code]
    key = entry.get("key")
    if key is None:
        missing = [f for f in (*spec.key, "SJBBH") if f not in columns]
        if missing:
            raise ConfigError(f"'{where}.key' is needed: the business key field "
                              f"{missing[0]} is not mapped",
                              zh=f"需要设置 '{where}.key'：业务主键字段 {missing[0]} 未映射")
        key = [columns[f] for f in (*spec.key, "SJBBH")]
    if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
        raise ConfigError(f"'{where}.key' must be a non-empty list of column names",
                          zh=f"'{where}.key' 必须是非空的列名列表")
    timestamp = entry.get("timestamp", columns.get("GXSJ"))
    if not isinstance(timestamp, str) or not timestamp:
        raise ConfigError(f"'{where}.timestamp' is needed: a DATE/TIMESTAMP column",
                          zh=f"需要设置 '{where}.timestamp'：一个 DATE/TIMESTAMP 类型的列")
    return tuple(key), timestamp

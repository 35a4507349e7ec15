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
        raise ConfigError(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}")
    url = options.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError("'url' is required: a SQLAlchemy URL such as "
                          "'postgresql://user@host/db'")
    strategy = options.get("strategy", "flag")
    if strategy not in STRATEGIES:
        raise ConfigError(f"'strategy' is {strategy!r}; use one of {', '.join(STRATEGIES)}")
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
                          "such as [\"SBXX\", \"SL\"]")
    for code in value:
        if code not in catalog.elements:
            raise ConfigError(f"'tables' names {code!r}, which is not an element; "
                              f"known: {', '.join(catalog.element_codes)}")
    return tuple(code for code in catalog.element_codes if code in value)


def _number(options: Mapping[str, Any], key: str, default: float, minimum: float,
            integer: bool = False) -> float:
    value = options.get(key, default)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        wanted = "an integer" if integer else "a number"
        raise ConfigError(f"{key!r} is {value!r}; use {wanted} >= {minimum:g}")
    return float(value)


def _flag(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{key!r} is {value!r}; use true or false")
    return value


def _optional_text(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{key!r} is {value!r}; use a non-empty string")
    return value


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
                "name alone: give each element a table or view of its own name")
        seen[bare] = (code, name)


def _mappings(value: Any, tables: tuple[str, ...], strategy: str,
              catalog: SchemaCatalog) -> dict[str, MappingOptions] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("'mapping' must be a table of element codes, such as "
                          "[sources.mapping.SBXX]")
    result = {}
    for code, entry in value.items():
        where = f"mapping.{code}"
        if code not in tables:
            raise ConfigError(f"{where!r}: {code!r} is not one of the source's tables "
                              f"({', '.join(tables)})")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where!r} must be a table with 'table' and 'columns'")
        result[code] = _mapping(where, code, entry, strategy, catalog)
    return result


def _mapping(where: str, code: str, entry: Mapping[str, Any], strategy: str,
             catalog: SchemaCatalog) -> MappingOptions:
    unknown = sorted(set(entry) - _MAPPING_KEYS)
    if unknown:
        raise ConfigError(f"'{where}.{unknown[0]}' is not an option; "
                          f"known: {', '.join(sorted(_MAPPING_KEYS))}")
    table = entry.get("table")
    if not isinstance(table, str) or not table:
        raise ConfigError(f"'{where}.table' is required: the legacy table or view name")
    spec = catalog.elements[code]
    columns = entry.get("columns", {f: f for f in spec.fields})
    if not isinstance(columns, dict) or not all(isinstance(c, str) and c for c in columns.values()):
        raise ConfigError(f"'{where}.columns' must map field codes to column names")
    for field in columns:
        if field not in spec.fields:
            raise ConfigError(f"'{where}.columns' names {field!r}, which is not a field of "
                              f"{code}; known: {', '.join(spec.fields)}")
    if strategy != "cursor":
        for option in ("key", "timestamp"):
            if option in entry:
                raise ConfigError(f"'{where}.{option}' is only used by strategy \"cursor\"")
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
                              f"{missing[0]} is not mapped")
        key = [columns[f] for f in (*spec.key, "SJBBH")]
    if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
        raise ConfigError(f"'{where}.key' must be a non-empty list of column names")
    timestamp = entry.get("timestamp", columns.get("GXSJ"))
    if not isinstance(timestamp, str) or not timestamp:
        raise ConfigError(f"'{where}.timestamp' is needed: a DATE/TIMESTAMP column")
    return tuple(key), timestamp

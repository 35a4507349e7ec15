"""An element table read as it stands: each record's latest version, not its history."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Select, and_, func, select

from adapters.stores.sql import SqlStore
from adapters.stores.sql_schema import StoreSchema

__all__ = ["iter_latest", "latest"]


def latest(store_or_schema: SqlStore | StoreSchema, element: str) -> Select[Any]:
    """The latest version (highest SJBBH) of every record of ``element``."""
    schema = store_or_schema.schema if isinstance(store_or_schema, SqlStore) \
        else store_or_schema
    et = schema.elements[element]
    t = et.table
    top = (select(*et.key_columns, func.max(t.c.SJBBH).label("TOP"))
           .group_by(*et.key_columns).subquery())
    on = and_(*(t.c[code] == top.c[code] for code in et.spec.key),
              top.c["TOP"] == t.c.SJBBH)
    return select(t).join(top, on)


def iter_latest(store: SqlStore, element: str) -> Iterator[Mapping[str, Any]]:
    """Rows of ``latest(element)`` as mappings keyed by column name."""
    with store.reading(f"read the latest {element} records") as conn:
        for row in conn.execute(latest(store, element)).mappings():
            yield dict(row)

"""The conflicts a level keeps, for ``exgate conflicts list|show|resolve``.

A conflict is a record that came with a stored record's business key and version
(SJBBH) but other content (``adapters.stores.sql_rows``). The stored version stays:
a version is stored once, and a correction travels as a new version from the source.
The incoming content is kept in ``ST_CONFLICT`` with the batch and node that brought it.

What a person does with one: compare the two (``conflict_detail``: the fields that
differ), have the department send the right content as a new version when the stored
one is wrong, then mark the conflict resolved (``resolve``), saying who did and why:
both are kept beside the time, for the auditors. That takes it out of the node's count
in status, ``/status.json``, the dashboard and ``exgate_node_conflicts``, and changes
no record. Reads take no write lock (``read_only``).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from adapters.stores.sql import SqlStore
from adapters.stores.sql_schema import RESOLUTION_NOTE_LENGTH, RESOLVER_LENGTH
from adapters.stores.sql_values import now_beijing
from gateway.export import stored_fields
from gateway.replay_view import read_only
from schemas.errors import ConfigError

__all__ = ["ConflictEntry", "FieldDifference", "Resolution", "conflict_detail",
           "list_conflicts", "resolution_words", "resolve"]

# Control characters, line or paragraph separators, and invisible format characters (a
# right-to-left override would show a note reversed): `conflicts list` prints a note on
# one line, as written. Spaces of any width (U+3000 in Chinese text, U+00A0) are words'
# business.
_BREAKS_LINES = frozenset({"Cc", "Cf", "Zl", "Zp"})


@dataclass(frozen=True)
class ConflictEntry:
    """One row of ``ST_CONFLICT``."""

    conflict_id: int
    node_id: str
    element: str
    key_text: str
    version: int
    batch_id: str
    detected_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None = None  # None for one resolved before revision 0005
    resolution_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.conflict_id, "node_id": self.node_id, "element": self.element,
                "key": self.key_text, "version": self.version, "batch_id": self.batch_id,
                "detected_at": self.detected_at.isoformat(sep=" "),
                "resolved_at": None if self.resolved_at is None
                else self.resolved_at.isoformat(sep=" "),
                "resolved_by": self.resolved_by, "resolution_note": self.resolution_note}


@dataclass(frozen=True)
class FieldDifference:
    """A field whose stored and incoming texts differ (None: the field is absent)."""

    field: str
    stored: str | None
    incoming: str | None


@dataclass(frozen=True)
class Resolution:
    """What ``resolve`` did with each ID asked for."""

    resolved: list[int]
    already: list[int]
    unknown: list[int]
    by: str    # as kept for ``resolved``: without surrounding white space
    note: str


def list_conflicts(store: SqlStore, *, node_id: str | None = None, batch_id: str | None = None,
                   include_resolved: bool = False, limit: int = 500) -> list[ConflictEntry]:
    """The level's conflicts in the order they were found, of one node or one batch if
    asked; open ones only unless ``include_resolved``; ``limit`` 0: all."""
    c = store.schema.conflict
    query = select(*_columns(store)).order_by(c.c.CONFLICT_ID)
    if node_id is not None:
        query = query.where(c.c["NODE_ID"] == node_id)
    if batch_id is not None:
        query = query.where(c.c["BATCH_ID"] == batch_id)
    if not include_resolved:
        query = query.where(c.c.RESOLVED_AT.is_(None))
    if limit:
        query = query.limit(limit)
    with read_only(store, "read the conflicts") as conn:
        return [_entry(row) for row in conn.execute(query)]


def conflict_detail(store: SqlStore, conflict_id: int
                    ) -> tuple[ConflictEntry, list[FieldDifference]] | None:
    """The conflict and the fields where its incoming content differs from the stored
    version; None when there is no such conflict. Without a stored row (deleted by hand
    since), every incoming field is a difference."""
    c = store.schema.conflict
    with read_only(store, f"read conflict {conflict_id}") as conn:
        row = conn.execute(select(*_columns(store), c.c.PAYLOAD)
                           .where(c.c["CONFLICT_ID"] == conflict_id)).first()
        if row is None:
            return None
        entry = _entry(row)
        incoming: dict[str, str] = json.loads(row.PAYLOAD)
        element = store.schema.elements[entry.element]
        names = tuple(element.spec.fields)
        first_key = element.spec.key[0]
        t = element.table
        candidates = conn.execute(select(t).where(t.c[first_key] == incoming.get(first_key),
                                                  t.c["SJBBH"] == entry.version)).mappings()
        stored: dict[str, str] = {}
        for candidate in candidates:  # the first key column narrows; the whole key decides
            fields = stored_fields(names, candidate)
            if "|".join(fields.get(k, "") for k in element.spec.key)[:255] == entry.key_text:
                stored = fields
                break
    differences = [FieldDifference(name, stored.get(name), incoming.get(name))
                   for name in names if stored.get(name) != incoming.get(name)]
    return entry, differences


def resolve(store: SqlStore, conflict_ids: Sequence[int], by: str, note: str,
            at: datetime | None = None) -> Resolution:
    """Mark ``conflict_ids`` resolved by ``by`` (a person), ``note`` saying why; reports
    which were, which already were (their first resolution stays), and which the store
    does not have. ConfigError, before anything is read, for words ``resolution_words``
    refuses."""
    by, note = resolution_words(by, note)
    wanted = list(dict.fromkeys(conflict_ids))
    c = store.schema.conflict
    with read_only(store, "look up conflicts") as conn:
        known = {row[0] for row in conn.execute(
            select(c.c.CONFLICT_ID).where(c.c.CONFLICT_ID.in_(wanted)))}
    done = store.resolve_conflicts(sorted(known), at or now_beijing(), by, note) \
        if known else set()
    return Resolution(resolved=[i for i in wanted if i in done],
                      already=[i for i in wanted if i in known and i not in done],
                      unknown=[i for i in wanted if i not in known], by=by, note=note)


def resolution_words(by: str, note: str) -> tuple[str, str]:
    """``by`` and ``note`` as a resolution keeps them; ConfigError for one that is empty,
    too long, or holds a line break or another control character."""
    return _said("by", by, RESOLVER_LENGTH), _said("note", note, RESOLUTION_NOTE_LENGTH)


def _said(option: str, text: str, limit: int) -> str:
    """``text`` without surrounding white space, when it says something and fits."""
    said = text.strip()
    if not said:
        raise ConfigError(f"--{option} is empty: say who resolved the conflicts and why",
                          zh=f"--{option} 为空：请写明由谁处理了冲突、依据是什么")
    if any(unicodedata.category(c) in _BREAKS_LINES for c in said):
        raise ConfigError(f"--{option} holds a line break, a control character or an "
                          "invisible format character: write it on one line, as it reads",
                          zh=f"--{option} 含有换行、控制字符或不可见的格式字符：请按所见写在一行内")
    length = _utf16_units(said)
    if length > limit:
        twice, twice_zh = ((" (a rare character beyond the BMP counts twice)",
                            "（基本多文种平面以外的生僻字计为 2 个）")
                           if length > len(said) else ("", ""))
        raise ConfigError(f"--{option} has {length} characters{twice}; at most {limit} "
                          "are kept",
                          zh=f"--{option} 有 {length} 个字符{twice_zh}，最多保存 {limit} 个")
    return said


def _utf16_units(text: str) -> int:
    # Oracle's NVARCHAR2 counts UTF-16 units: a character outside the BMP (such as a rare
    # name character of CJK Extension B) takes two, so the limit holds on every store.
    return len(text.encode("utf-16-le")) // 2


def _columns(store: SqlStore) -> tuple[Any, ...]:
    c = store.schema.conflict
    return (c.c.CONFLICT_ID, c.c.NODE_ID, c.c.ELEMENT, c.c.KEY_TEXT, c.c.SJBBH, c.c.BATCH_ID,
            c.c.DETECTED_AT, c.c.RESOLVED_AT, c.c.RESOLVED_BY, c.c.RESOLUTION_NOTE)


def _entry(row: Any) -> ConflictEntry:
    return ConflictEntry(row.CONFLICT_ID, row.NODE_ID, row.ELEMENT, row.KEY_TEXT, row.SJBBH,
                         row.BATCH_ID, row.DETECTED_AT, row.RESOLVED_AT, row.RESOLVED_BY,
                         row.RESOLUTION_NOTE)

"""The demo's closing status table: per level (from its store) and per node (its outbox).

Every figure is read back from where the data really is, the level stores and the
agents' outboxes, never from what the demo meant to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.cells import cell_len
from sqlalchemy import func, select

from adapters.stores.sql import SqlStore
from frontend_machine.outbox import Outbox
from frontend_machine.report import level_name
from schemas.divisions import level_of
from schemas.messages import columns

__all__ = ["LevelStats", "NodeStats", "level_stats", "node_stats", "render"]


@dataclass(frozen=True)
class LevelStats:
    division: str
    records: int              # rows in the element tables
    batches: int              # ST_BATCH rows
    failed: int               # ST_FAILED_BATCH rows not replayed
    conflicts: int            # ST_CONFLICT rows
    by_node: dict[str, int] = field(default_factory=dict)  # records stored per node


@dataclass(frozen=True)
class NodeStats:
    node_id: str
    division: str
    taken: int                # valid records journaled in the outbox
    rejected: int             # records (or files) rejected at the source
    batches: dict[str, int]   # outbox batch state → count


def level_stats(store_url: str, division: str) -> LevelStats:
    store = SqlStore(store_url)
    try:
        schema = store.schema
        with store.engine.connect() as conn:
            records = sum(conn.execute(select(func.count()).select_from(et.table)).scalar_one()
                          for et in schema.elements.values())
            b, f = schema.batch, schema.failed
            by_node = {str(node): int(stored or 0) for node, stored in conn.execute(
                select(b.c.NODE_ID, func.sum(b.c.STORED)).group_by(b.c.NODE_ID))}
            batches = conn.execute(select(func.count()).select_from(b)).scalar_one()
            failed = conn.execute(select(func.count()).select_from(f)
                                  .where(f.c.REPLAYED_AT.is_(None))).scalar_one()
            conflicts = conn.execute(select(func.count())
                                     .select_from(schema.conflict)).scalar_one()
    finally:
        store.close()
    return LevelStats(division, records, batches, failed, conflicts, by_node)


def node_stats(outbox_path: Path, node_id: str, division: str) -> NodeStats:
    with Outbox(outbox_path) as outbox:
        states: dict[str, int] = {}
        for batch in outbox.batches():
            states[batch.state.value] = states.get(batch.state.value, 0) + 1
        return NodeStats(node_id, division, outbox.record_count(), len(outbox.rejects()),
                         states)


_HEADERS = {
    "levels": (("级别", "区划", "已入库记录", "批次", "失败批次", "冲突"),
               ("level", "division", "records stored", "batches", "failed batches",
                "conflicts")),
    "nodes": (("节点", "区划", "源端有效", "源端拒收", "已入库（县/市/省）",
               "批次 已确认/在途/失败"),
              ("node", "division", "valid at source", "rejected at source",
               "stored (county/city/province)", "batches stored/in flight/failed")),
}


def render(levels: Sequence[LevelStats], nodes: Sequence[NodeStats], lang: str) -> list[str]:
    """Two aligned tables: the levels, then the nodes."""
    zh = lang != "en"
    pick = 0 if zh else 1
    level_rows = [[level_name(level_of(s.division).value, lang), s.division,
                   str(s.records), str(s.batches), str(s.failed), str(s.conflicts)]
                  for s in levels]
    by_division = {s.division: s for s in levels}
    node_rows = []
    for node in nodes:
        path = [by_division.get(code) for code in _supervising(node.division)]
        stored = "/".join("-" if s is None else str(s.by_node.get(node.node_id, 0))
                          for s in path)
        flight = node.batches.get("pending", 0) + node.batches.get("sent", 0)
        node_rows.append([node.node_id, node.division, str(node.taken), str(node.rejected),
                          stored, f"{node.batches.get('stored', 0)}/{flight}/"
                                  f"{node.batches.get('failed', 0)}"])
    return [*_table(list(_HEADERS["levels"][pick]), level_rows), "",
            *_table(list(_HEADERS["nodes"][pick]), node_rows)]


def _supervising(division: str) -> list[str]:
    """County, city, province codes above (and including) a county division."""
    return [division, division[:4] + "00", division[:2] + "0000"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(cell_len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    return [columns(header, widths), rule, *(columns(r, widths) for r in rows)]

"""A SQLite store filled like a city gateway's after a day: the status tests' data.

City 430100 (长沙市), two counties, four nodes, written through the real store:

- ``furong-01`` (430102): beats 10 s ago, small lag, 12 of the 14 elements → green;
- ``furong-02`` (430102): last beat 200 s ago, 5 elements → yellow (heartbeat late);
- ``tianxin-01`` (430103): beats fine, one refused batch older than its last stored
  batch → yellow (failed batch), 8 elements;
- ``tianxin-02`` (430103): silent for two hours, 3 elements → red.

So county 430102 is yellow, county 430103 red, and the city and province red. Batches
are spread over the last hours (their ``STORED_AT`` moved back after writing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from adapters.stores.base import FailedBatch, Heartbeat, IncomingBatch, NodeInfo
from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from schemas.reader import DocumentReader
from schemas.records import Record
from tests.unit.schemas.documents import document, record

CITY = "430100"
ALL = ("JGXX", "SXXX", "SBXX", "SBCL", "YSL", "SL", "SPGC", "BZGZ", "BZSL", "TBCXSQ",
       "TBCXJG", "BJ", "SF", "LQDJ")


@dataclass(frozen=True)
class NodePlan:
    node_id: str
    division: str
    elements: tuple[str, ...]
    beat_ages_s: tuple[float, ...]      # heartbeats, oldest first, as seconds before now
    lag_s: float
    batch_hours_ago: tuple[int, ...]    # one batch per entry
    expected: str


PLANS = (
    NodePlan("furong-01", "430102", tuple(e for e in ALL if e not in ("TBCXSQ", "TBCXJG")),
             (70, 40, 10), 20.0, (1, 2, 3, 5, 8, 13, 20), "green"),
    NodePlan("furong-02", "430102", ("JGXX", "SXXX", "SBXX", "SL", "BJ"),
             (260, 230, 200), 35.0, (4, 6, 9), "yellow"),
    NodePlan("tianxin-01", "430103", ALL[:8], (75, 45, 15), 12.0, (0, 2, 7, 11), "yellow"),
    NodePlan("tianxin-02", "430103", ("JGXX", "SBXX", "SL"), (7260, 7230, 7200), 900.0,
             (3, 10), "red"),
)
FAILED_NODE = "tianxin-01"
FAILED_BATCH = "tianxin-01-bad"


def _records(plan: NodePlan, batch_no: int) -> list[Record]:
    specs = []
    for element in plan.elements:
        changes = {"XZQHDM": plan.division}
        if element not in ("JGXX", "SXXX"):
            changes["SBLSH"] = f"{plan.node_id}-{batch_no:03d}"
        specs.append(record(element, **changes))
    reader = DocumentReader(document(specs, head={"XZQHDM": plan.division}), "status-test")
    found = [check.record for check in reader]
    assert not reader.issues, reader.issues
    return [r for r in found if r is not None]


def _batch(plan: NodePlan, batch_no: int) -> IncomingBatch:
    recs = _records(plan, batch_no)
    sha = hashlib.sha256(f"{plan.node_id}/{batch_no}".encode()).hexdigest()
    return IncomingBatch(f"{plan.node_id}-b{batch_no:03d}", plan.node_id, plan.division, sha,
                         recs, now_beijing())


def fill_store(store: SqlStore) -> datetime:
    """Fill ``store`` with the four nodes; returns the moment the data is relative to."""
    now = now_beijing()
    for plan in PLANS:
        store.mirror_node(NodeInfo(plan.node_id, plan.division, plan.node_id, "active", (1,)))
        for number, hours in enumerate(plan.batch_hours_ago):
            store.write(_batch(plan, number))
            _move_batch(store, f"{plan.node_id}-b{number:03d}", now - timedelta(hours=hours))
        _move_coverage(store, plan.node_id)
        for age in plan.beat_ages_s:
            received = now - timedelta(seconds=age)
            store.record_heartbeat(Heartbeat(
                plan.node_id, plan.division, received, received, "0.1.0",
                {"pending_batches": 0, "unbatched_records": 3, "oldest_pending_age_s": None},
                plan.lag_s, None))
    store.record_failed(FailedBatch(
        FAILED_BATCH, FAILED_NODE, "bad-signature", "签名校验失败：密钥版本 1 不匹配", b"sealed",
        f"430000.430100.430103.{FAILED_NODE}", {}, FAILED_NODE, now - timedelta(hours=5)))
    return now


def _move_batch(store: SqlStore, batch_id: str, stored_at: datetime) -> None:
    b = store.schema.batch
    with store.engine.begin() as conn:
        conn.execute(sa.update(b).where(b.c["BATCH_ID"] == batch_id)
                     .values(STORED_AT=stored_at, RECEIVED_AT=stored_at))


def _move_coverage(store: SqlStore, node_id: str) -> None:
    b, c = store.schema.batch, store.schema.coverage
    with store.engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(b.c.STORED_AT))
                            .where(b.c["NODE_ID"] == node_id)).scalar_one()
        first = conn.execute(sa.select(sa.func.min(b.c.STORED_AT))
                             .where(b.c["NODE_ID"] == node_id)).scalar_one()
        conn.execute(sa.update(c).where(c.c["NODE_ID"] == node_id)
                     .values(LAST_AT=last, FIRST_AT=first))

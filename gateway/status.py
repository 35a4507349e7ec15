"""The sync-status model: the store's rows in, every node's state and light out.

Pure: ``build_report`` takes ``StatusRows`` (read by ``adapters.stores.sql_status``) and
the registry's nodes, and returns a ``StatusReport`` that ``exgate status``, the web
dashboard and ``/metrics`` all show. Lights follow ``gateway.status_rules``; the tree is
province → city → county → node (``schemas.divisions.division_path``), each group taking
its worst child's light. Registry files that could not be read make the report
``degraded``: the nodes they hold show as the store knows them, or not at all.

A heartbeat's numbers are the sender's word: one that is not finite or beyond
``REPORTED_LIMIT`` (``heartbeat_number``) is no reading, and shows as unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from adapters.stores.status_rows import (
    CoverageRow,
    FailedCount,
    HeartbeatRow,
    NodeRow,
    NodeTotalsRow,
    StatusRows,
)
from gateway.registry import UnreadableEntry
from gateway.status_rules import Light, NodeSignals, StatusThresholds, judge, lag_growing, worst
from schemas.divisions import division_path

__all__ = [
    "REPORTED_LIMIT",
    "ElementCoverage",
    "FailedBatchView",
    "FailedTotals",
    "Group",
    "HourPoint",
    "NodeStatus",
    "StatusReport",
    "build_report",
    "heartbeat_number",
    "merge_nodes",
    "supervises",
]

# Seconds (about 31,700 years) or batches and records beyond any an agent reports.
REPORTED_LIMIT = 1e12


@dataclass(frozen=True, slots=True)
class ElementCoverage:
    element: str
    last_at: datetime | None = None
    records: int = 0

    @property
    def covered(self) -> bool:
        return self.last_at is not None


@dataclass(frozen=True)
class NodeStatus:
    """One node's sync state as the supervision centre sees it."""

    node_id: str
    division: str
    active: bool
    light: Light
    reasons: tuple[str, ...]
    last_heartbeat: datetime | None
    last_contact: datetime | None
    contact_age_s: float | None
    agent_version: str | None
    pending_batches: int | None
    unbatched_records: int | None
    oldest_pending_age_s: float | None
    source_lag_s: float | None
    lag_growing: bool
    records_today: int
    records_week: int
    records_total: int
    batches_total: int
    failed_batches: int
    last_error: str | None
    coverage: tuple[ElementCoverage, ...]     # every catalogue element, in its order
    # Records of the node kept as conflicts (same key and version, other content), for a
    # person to resolve (domain): not a light, since resolving is the person's work.
    conflicts: int = 0

    @property
    def path(self) -> tuple[str, str, str]:
        return division_path(self.division)

    @property
    def covered(self) -> int:
        return sum(1 for c in self.coverage if c.covered)

    @property
    def missing(self) -> tuple[str, ...]:
        """The codes of the elements no record of the node has arrived for, in order."""
        return tuple(c.element for c in self.coverage if not c.covered)


@dataclass(frozen=True)
class Group:
    """A division of the tree; counties hold nodes, the others hold groups."""

    kind: str                                  # province | city | county
    division: str
    light: Light
    children: tuple[Group, ...] = ()
    nodes: tuple[NodeStatus, ...] = ()

    def all_nodes(self) -> Iterable[NodeStatus]:
        yield from self.nodes
        for child in self.children:
            yield from child.all_nodes()


@dataclass(frozen=True, slots=True)
class HourPoint:
    start: datetime
    records: int = 0
    batches: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class FailedBatchView:
    batch_id: str
    node_id: str | None
    reason: str
    detail: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FailedTotals:
    """The level's refused batches not replayed yet, listed or not."""

    refusals: int = 0      # rows: what the list of failed batches holds, uncapped
    of_nodes: int = 0      # batches filed under the level's nodes, each counted once
    of_no_node: int = 0    # batches no node vouched for: a sender to look into


@dataclass(frozen=True)
class StatusReport:
    generated_at: datetime                     # naive Beijing time
    level: str
    elements: tuple[tuple[str, str], ...]      # (code, Chinese label), catalogue order
    thresholds: StatusThresholds
    nodes: tuple[NodeStatus, ...]
    tree: tuple[Group, ...]
    failed: tuple[FailedBatchView, ...]
    throughput: tuple[HourPoint, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    registry_errors: tuple[UnreadableEntry, ...] = ()
    failed_totals: FailedTotals = FailedTotals()

    @property
    def light(self) -> Light:
        return worst(group.light for group in self.tree)

    @property
    def degraded(self) -> bool:
        return bool(self.registry_errors)

    def node(self, node_id: str) -> NodeStatus | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)


def supervises(level: str, division: str) -> bool:
    """True when a gateway of ``level`` supervises a node of ``division``."""
    mine, theirs = division_path(level), division_path(division)
    depth = 1 if level == mine[0] else 2 if level == mine[1] else 3
    return mine[:depth] == theirs[:depth]


def merge_nodes(store_nodes: Sequence[NodeRow], registry_nodes: Sequence[NodeRow]
                ) -> list[NodeRow]:
    """Every node either source knows; the registry's division and status win."""
    merged = {n.node_id: n for n in store_nodes}
    for entry in registry_nodes:
        seen = merged.get(entry.node_id)
        merged[entry.node_id] = replace(entry, last_seen_at=seen.last_seen_at if seen else None)
    return sorted(merged.values(), key=lambda n: n.node_id)


def build_report(rows: StatusRows, *, level: str, elements: Sequence[tuple[str, str]],
                 thresholds: StatusThresholds | None = None,
                 registry_nodes: Sequence[NodeRow] = (),
                 registry_errors: Sequence[UnreadableEntry] = ()) -> StatusReport:
    """The whole status view at ``rows.now`` for a gateway of division ``level``."""
    limits = thresholds or StatusThresholds()
    index = _Index.of(rows)
    codes = [code for code, _ in elements]
    nodes = tuple(_node_status(node, index, rows.now, limits, codes)
                  for node in merge_nodes(rows.nodes, registry_nodes)
                  if supervises(level, node.division))
    mine = {n.node_id for n in nodes}
    failed = tuple(FailedBatchView(f.batch_id, f.node_id, f.reason, f.detail, f.received_at)
                   for f in rows.failed if f.node_id is None or f.node_id in mine)
    counts = {light.value: sum(1 for n in nodes if n.light is light) for light in Light}
    return StatusReport(rows.now, level, tuple(elements), limits, nodes, _tree(nodes),
                        failed, _throughput(rows, limits.throughput_hours), counts,
                        tuple(registry_errors), _failed_totals(rows.failed_counts, mine))


def _failed_totals(counts: Sequence[FailedCount], mine: set[str]) -> FailedTotals:
    kept = [c for c in counts if c.node_id is None or c.node_id in mine]
    return FailedTotals(sum(c.refusals for c in kept),
                        sum(c.batches for c in kept if c.node_id is not None),
                        sum(c.batches for c in kept if c.node_id is None))


@dataclass(frozen=True)
class _Index:
    """The rows grouped by node."""

    beats: Mapping[str, list[HeartbeatRow]]
    coverage: Mapping[str, dict[str, CoverageRow]]
    totals: Mapping[str, NodeTotalsRow]

    @classmethod
    def of(cls, rows: StatusRows) -> _Index:
        beats: defaultdict[str, list[HeartbeatRow]] = defaultdict(list)
        # By when the agent sent them: beats held through a store outage are stored
        # together, in any order, and the latest stored may be an old one.
        for beat in sorted(rows.heartbeats, key=lambda b: (b.contact_at, b.received_at)):
            beats[beat.node_id].append(beat)
        coverage: defaultdict[str, dict[str, CoverageRow]] = defaultdict(dict)
        for row in rows.coverage:
            coverage[row.node_id][row.element] = row
        return cls(beats, coverage, {t.node_id: t for t in rows.totals})


def _node_status(node: NodeRow, index: _Index, now: datetime, limits: StatusThresholds,
                 codes: Sequence[str]) -> NodeStatus:
    beats = index.beats.get(node.node_id, [])
    last = beats[-1] if beats else None
    totals = index.totals.get(node.node_id) or NodeTotalsRow(node.node_id)
    contact = _latest(last.contact_at if last else None, _seen_apart(node, beats))
    outbox: Mapping[str, Any] = last.outbox if last else {}
    lags = [(b.contact_at, lag) for b in beats
            if (lag := heartbeat_number(b.source_lag_s)) is not None]
    signals = NodeSignals(
        active=node.status != "disabled",
        contact_age_s=None if contact is None else max(0.0, (now - contact).total_seconds()),
        source_lag_s=heartbeat_number(last.source_lag_s) if last else None,
        lag_growing=lag_growing(lags, now, limits),
        oldest_pending_age_s=heartbeat_number(outbox.get("oldest_pending_age_s")),
        failed_batches=totals.failed,
        newest_batch_failed=_newest_failed(totals),
        last_error=last.last_error if last else None,
    )
    light, reasons = judge(signals, limits)
    mine = index.coverage.get(node.node_id, {})
    coverage = tuple(ElementCoverage(code, mine[code].last_at, mine[code].records)
                     if code in mine else ElementCoverage(code) for code in codes)
    return NodeStatus(
        node.node_id, node.division, signals.active, light, reasons,
        last.contact_at if last else None, contact, signals.contact_age_s,
        last.version if last else None, _integer(outbox.get("pending_batches")),
        _integer(outbox.get("unbatched_records")), signals.oldest_pending_age_s,
        signals.source_lag_s, signals.lag_growing, totals.records_today, totals.records_week,
        sum(c.records for c in coverage), totals.batches, totals.failed, signals.last_error,
        coverage, totals.conflicts)


def _seen_apart(node: NodeRow, beats: Sequence[HeartbeatRow]) -> datetime | None:
    """The node's last-seen time when something besides its heartbeats moved it.

    Not the batches' STORED_AT: it may be an operator's replay of an old batch. The live
    pipeline moves LAST_SEEN_AT for every batch it receives, and every heartbeat sets it
    to the beat's RECEIVED_AT: no later than the last beat stored, it says no more than
    that beat, whose storing time may be long after the agent sent it.
    """
    seen = node.last_seen_at
    if seen is None or (beats and seen <= max(b.received_at for b in beats)):
        return None
    return seen


def _latest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def _newest_failed(totals: NodeTotalsRow) -> bool:
    """The node's newest batch was refused: nothing of it got through since."""
    if not totals.failed or totals.last_failed_at is None:
        return False
    return totals.last_stored_at is None or totals.last_failed_at > totals.last_stored_at


def heartbeat_number(value: Any) -> float | None:
    """A number as a heartbeat reports it, or None when it is none an agent can mean.

    JSON parses ``1e999`` as infinity and an integer of any length exactly: kept, either
    would break every view of the level (no JSON, no integer, no duration to show).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not abs(value) <= REPORTED_LIMIT:  # NaN compares false too
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    number = heartbeat_number(value)
    return None if number is None else int(number)


def _tree(nodes: Sequence[NodeStatus]) -> tuple[Group, ...]:
    paths: dict[str, dict[str, dict[str, list[NodeStatus]]]] = {}
    for node in nodes:
        province, city, county = node.path
        paths.setdefault(province, {}).setdefault(city, {}).setdefault(county, []).append(node)
    provinces = []
    for province, cities in sorted(paths.items()):
        city_groups = []
        for city, counties in sorted(cities.items()):
            county_groups = tuple(
                Group("county", county, worst(n.light for n in members), nodes=tuple(members))
                for county, members in sorted(counties.items()))
            city_groups.append(Group("city", city, worst(g.light for g in county_groups),
                                     children=county_groups))
        provinces.append(Group("province", province, worst(g.light for g in city_groups),
                               children=tuple(city_groups)))
    return tuple(provinces)


def _throughput(rows: StatusRows, hours: int) -> tuple[HourPoint, ...]:
    """Records and batches stored, and batches refused, per hour of the last ``hours``."""
    top = rows.now.replace(minute=0, second=0, microsecond=0)
    first = top - timedelta(hours=hours - 1)
    records, batches, failed = [0] * hours, [0] * hours, [0] * hours
    for batch in rows.recent_batches:
        slot = _slot(batch.stored_at, first, hours)
        if slot is not None:
            records[slot] += batch.records
            batches[slot] += 1
    for moment in rows.recent_failures:
        slot = _slot(moment, first, hours)
        if slot is not None:
            failed[slot] += 1
    return tuple(HourPoint(first + timedelta(hours=i), records[i], batches[i], failed[i])
                 for i in range(hours))


def _slot(moment: datetime, first: datetime, hours: int) -> int | None:
    slot = int((moment - first).total_seconds() // 3600)
    return slot if 0 <= slot < hours else None

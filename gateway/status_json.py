"""The stable JSON of the sync status (``exgate status --json``, ``/status.json``).

Shape (schema 1; new keys may be added, existing ones keep their meaning)::

    {
      "schema": 1,
      "generated_at": "2026-11-20T10:00:00+08:00",     # times: ISO 8601, Beijing
      "level": "430100",
      "light": "green|yellow|red|off",                 # worst node of the level
      "degraded": false,                               # true: some registry file unread
      "registry_errors": [{"file": "…/x.json", "reason": "…"}, …],
      "counts": {"green": N, "yellow": N, "red": N, "off": N},
      "thresholds": {"heartbeat_late_s": 120.0, "silent_s": 600.0, …},
      "elements": [{"code": "JGXX", "label": "机构信息"}, …],   # the 14, catalogue order
      "tree": [                                        # province → city → county
        {"kind": "province", "division": "430000", "light": "…", "children": [
          {"kind": "city", "division": "430100", "light": "…", "children": [
            {"kind": "county", "division": "430102", "light": "…",
             "nodes": ["furong-01", …]}]}]}],
      "nodes": [{
        "node_id": "furong-01", "division": "430102",
        "path": ["430000", "430100", "430102"],
        "active": true, "light": "yellow", "reasons": ["heartbeat-late"],
        "last_heartbeat": "…" | null, "last_contact": "…" | null,
        "contact_age_s": 95.0 | null, "agent_version": "0.1.0" | null,
        "outbox": {"pending_batches": 0 | null, "unbatched_records": 0 | null,
                   "oldest_pending_age_s": 12.5 | null},
        "source_lag_s": 30.0 | null, "lag_growing": false,
        "records": {"today": N, "week": N, "total": N},
        "batches_total": N, "failed_batches": N, "conflicts": N, "last_error": "…" | null,
        "covered": 9,
        "coverage": {"JGXX": {"last_at": "…" | null, "records": N}, …},  # all 14 codes
        "missing_elements": ["SF", "LQDJ", …]     # codes not covered, catalogue order
      }, …],
      "failed_batches": [{"batch_id", "node_id", "reason", "detail", "received_at"}, …],
      "failed_batches_total": N,                       # the list above is capped at 500
      "throughput": {"bucket_s": 3600,
                     "points": [{"start": "…", "records": N, "batches": N, "failed": N}, …]},
      "store_writes": {"held": N, "since": "…" | null, "age_s": 0.0,   # gateway run's
                       "alarming": false}     # /status.json; exgate status when it answers
    }

Numbers are finite: the text is strict JSON (``report_text``), never ``Infinity``.

A degraded report leaves out what the unread registry files say: their nodes show as
the store knows them (division and status of its last mirror), or not at all.

Reason codes: never-seen, silent, heartbeat-late, lag-critical, lag-high, lag-growing,
pending-stale, pending-old, failing, failed-batches, agent-error, disabled.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gateway.holds import HoldState
from gateway.status import Group, NodeStatus, StatusReport
from schemas.times import BEIJING

__all__ = ["JSON_SCHEMA", "iso", "report_json", "report_text"]

JSON_SCHEMA = 1


def iso(moment: datetime | None) -> str | None:
    """A naive Beijing time of the store as ISO 8601 with its +08:00 offset."""
    if moment is None:
        return None
    return moment.replace(tzinfo=BEIJING, microsecond=0).isoformat()


def report_json(report: StatusReport) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA,
        "generated_at": iso(report.generated_at),
        "level": report.level,
        "light": report.light.value,
        "degraded": report.degraded,
        "registry_errors": [{"file": str(bad.file), "reason": bad.reason}
                            for bad in report.registry_errors],
        "counts": dict(report.counts),
        "thresholds": report.thresholds.as_dict(),
        "elements": [{"code": code, "label": label} for code, label in report.elements],
        "tree": [_group(group) for group in report.tree],
        "nodes": [_node(node) for node in report.nodes],
        "failed_batches": [
            {"batch_id": f.batch_id, "node_id": f.node_id, "reason": f.reason,
             "detail": f.detail, "received_at": iso(f.received_at)} for f in report.failed],
        "failed_batches_total": report.failed_totals.refusals,
        "throughput": {"bucket_s": 3600, "points": [
            {"start": iso(p.start), "records": p.records, "batches": p.batches,
             "failed": p.failed} for p in report.throughput]},
    }


def report_text(report: StatusReport, *, indent: int | None = None,
                holds: HoldState | None = None) -> str:
    """The JSON as text; ValueError rather than a non-finite number no parser reads.

    ``holds``: what the consumer holds through failures (inside ``gateway run``; for
    ``exgate status``, as the gateway's dashboard reported it, ``gateway.status_live``).
    """
    data = report_json(report)
    if holds is not None:
        data["store_writes"] = {"held": holds.held, "since": iso(holds.since),
                                "age_s": round(holds.age_s, 1), "alarming": holds.alarming}
    return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=indent)


def _group(group: Group) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": group.kind, "division": group.division,
                           "light": group.light.value}
    if group.kind == "county":
        out["nodes"] = [node.node_id for node in group.nodes]
    else:
        out["children"] = [_group(child) for child in group.children]
    return out


def _node(node: NodeStatus) -> dict[str, Any]:
    return {
        "node_id": node.node_id, "division": node.division, "path": list(node.path),
        "active": node.active, "light": node.light.value, "reasons": list(node.reasons),
        "last_heartbeat": iso(node.last_heartbeat), "last_contact": iso(node.last_contact),
        "contact_age_s": node.contact_age_s, "agent_version": node.agent_version,
        "outbox": {"pending_batches": node.pending_batches,
                   "unbatched_records": node.unbatched_records,
                   "oldest_pending_age_s": node.oldest_pending_age_s},
        "source_lag_s": node.source_lag_s, "lag_growing": node.lag_growing,
        "records": {"today": node.records_today, "week": node.records_week,
                    "total": node.records_total},
        "batches_total": node.batches_total, "failed_batches": node.failed_batches,
        "conflicts": node.conflicts,
        "last_error": node.last_error, "covered": node.covered,
        "coverage": {c.element: {"last_at": iso(c.last_at), "records": c.records}
                     for c in node.coverage},
        "missing_elements": list(node.missing),
    }

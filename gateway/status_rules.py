"""The traffic lights of the sync-status view: thresholds and the rules that use them.

A node's light is the worst of its signals:

==========================  ===========================================  ==========
signal                      yellow                                       red
==========================  ===========================================  ==========
last contact (heartbeat or  older than ``heartbeat_late_s``              older than
batch)                                                                   ``silent_s``;
                                                                         never seen
source lag                  ``>= lag_yellow_s``, or grown by             ``>= lag_red_s``
                            ``lag_growth_s`` within ``lag_window_s``
oldest pending outbox batch ``>= pending_yellow_s``                      ``>= pending_red_s``
failed batches (not         at least one                                 ``>= failed_red_count``,
replayed)                                                                or the node's newest
                                                                         batch was refused
agent's last error          reported                                     —
==========================  ===========================================  ==========

A disabled node is ``off`` and does not count. Groups (county, city, province) take
their worst child's light. Reasons are stable codes, translated by ``status_text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Light", "NodeSignals", "StatusThresholds", "judge", "lag_growing", "worst"]


class Light(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    OFF = "off"          # disabled node, or a group with no active node

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Light.OFF: -1, Light.GREEN: 0, Light.YELLOW: 1, Light.RED: 2}


@dataclass(frozen=True, slots=True)
class StatusThresholds:
    """``[status]`` in the gateway TOML; seconds unless the name says otherwise."""

    heartbeat_late_s: float = 120.0    # agents beat every 30 s: four missed
    silent_s: float = 600.0
    lag_yellow_s: float = 900.0
    lag_red_s: float = 3600.0
    lag_growth_s: float = 600.0
    lag_window_s: float = 1800.0
    pending_yellow_s: float = 900.0
    pending_red_s: float = 3600.0
    failed_red_count: int = 3
    throughput_hours: int = 24

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class NodeSignals:
    """What the rules look at for one node, already derived from the store's rows."""

    active: bool = True
    contact_age_s: float | None = None     # None: never seen
    source_lag_s: float | None = None
    lag_growing: bool = False
    oldest_pending_age_s: float | None = None
    failed_batches: int = 0
    newest_batch_failed: bool = False
    last_error: str | None = None


def judge(signals: NodeSignals, limits: StatusThresholds) -> tuple[Light, tuple[str, ...]]:
    """The node's light and the reasons for it (most severe first)."""
    if not signals.active:
        return Light.OFF, ("disabled",)
    found = [*_contact(signals, limits), *_lag(signals, limits), *_pending(signals, limits),
             *_failures(signals, limits)]
    if signals.last_error:
        found.append((Light.YELLOW, "agent-error"))
    if not found:
        return Light.GREEN, ()
    found.sort(key=lambda item: -item[0].severity)
    return found[0][0], tuple(reason for _, reason in found)


def _contact(s: NodeSignals, limits: StatusThresholds) -> list[tuple[Light, str]]:
    if s.contact_age_s is None:
        return [(Light.RED, "never-seen")]
    if s.contact_age_s > limits.silent_s:
        return [(Light.RED, "silent")]
    if s.contact_age_s > limits.heartbeat_late_s:
        return [(Light.YELLOW, "heartbeat-late")]
    return []


def _lag(s: NodeSignals, limits: StatusThresholds) -> list[tuple[Light, str]]:
    found = []
    if s.source_lag_s is not None and s.source_lag_s >= limits.lag_red_s:
        found.append((Light.RED, "lag-critical"))
    elif s.source_lag_s is not None and s.source_lag_s >= limits.lag_yellow_s:
        found.append((Light.YELLOW, "lag-high"))
    if s.lag_growing:
        found.append((Light.YELLOW, "lag-growing"))
    return found


def _pending(s: NodeSignals, limits: StatusThresholds) -> list[tuple[Light, str]]:
    age = s.oldest_pending_age_s
    if age is not None and age >= limits.pending_red_s:
        return [(Light.RED, "pending-stale")]
    if age is not None and age >= limits.pending_yellow_s:
        return [(Light.YELLOW, "pending-old")]
    return []


def _failures(s: NodeSignals, limits: StatusThresholds) -> list[tuple[Light, str]]:
    if s.failed_batches <= 0:
        return []
    if s.failed_batches >= limits.failed_red_count or s.newest_batch_failed:
        return [(Light.RED, "failing")]
    return [(Light.YELLOW, "failed-batches")]


def lag_growing(samples: Sequence[tuple[datetime, float]], now: datetime,
                limits: StatusThresholds) -> bool:
    """True when the source lag rose by ``lag_growth_s`` within the window and is at its top.

    ``samples`` are (received_at, source_lag_s), oldest first; three are needed so one
    late heartbeat alone never looks like a trend.
    """
    window = [lag for at, lag in samples
              if (now - at).total_seconds() <= limits.lag_window_s]
    if len(window) < 3:
        return False
    return window[-1] >= max(window) and window[-1] - min(window) >= limits.lag_growth_s


def worst(lights: Iterable[Light]) -> Light:
    """The roll-up of a group: its worst active child; ``off`` when none is active."""
    return max(lights, key=lambda light: light.severity, default=Light.OFF)

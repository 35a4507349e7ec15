"""Prometheus metrics of the sync status, named once, here.

The values are read from the store at scrape time (through the same cached
``StatusSource`` as the dashboard), so every gateway process of a level reports the
same numbers and nothing is lost across restarts. Light values: ``0`` green,
``1`` yellow, ``2`` red, ``-1`` off (disabled node).

Level-wide series carry the ``level`` label only (``sender`` of the failed batches is
``node`` or ``unknown``), so their number stays fixed however many senders there are.
``exgate_broker_connected`` and the held deliveries (``exgate_level_held_deliveries``,
``exgate_level_hold_age_seconds``: a store refusing writes) are this process's own: only
``gateway run`` has a consumer.

While the store does not answer, a scrape still succeeds, with ``exgate_store_up`` 0 and
the broker gauge only (the convention of Prometheus exporters, such as ``mysql_up``): a
503 would hide whether the consumer is still connected, and alerts on ``up`` would
blame the gateway process rather than its store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.holds import HoldState
from gateway.log_text import say
from gateway.status import NodeStatus, StatusReport
from schemas.errors import ExgateError

__all__ = ["BROKER_CONNECTED", "CONTENT_TYPE", "DEAD_LETTERS", "HELD_DELIVERIES", "HOLD_AGE",
           "LEVEL_FAILED", "LEVEL_LIGHT", "LIGHT_VALUES", "METRICS", "REGISTRY_UNREADABLE",
           "STORE_UP", "StatusCollector", "metrics_registry", "render_metrics"]

log = logging.getLogger("exgate.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LIGHT_VALUES = {"green": 0, "yellow": 1, "red": 2, "off": -1}
_NODE = ("node_id", "division")

# name → (kind, help, value of a node or None when unknown)
METRICS: dict[str, tuple[str, str, Callable[[NodeStatus], float | None]]] = {
    "exgate_node_light": (
        "gauge", "Sync light of the node: 0 green, 1 yellow, 2 red, -1 off",
        lambda n: LIGHT_VALUES[n.light.value]),
    "exgate_node_records_stored": (
        "counter", "Records of the node stored in this level's store",
        lambda n: n.records_total),
    "exgate_node_batches_stored": (
        "counter", "Batches of the node stored in this level's store",
        lambda n: n.batches_total),
    "exgate_node_failed_batches": (
        "gauge", "Refused batches of the node not replayed yet",
        lambda n: n.failed_batches),
    "exgate_node_conflicts": (
        "gauge", "Records of the node kept as conflicts (same key and version, other "
        "content), not resolved yet", lambda n: n.conflicts),
    "exgate_node_source_lag_seconds": (
        "gauge", "Source lag the node's agent last reported",
        lambda n: n.source_lag_s),
    "exgate_node_outbox_pending_batches": (
        "gauge", "Batches of the node's outbox not yet stored at every level at its last "
        "heartbeat (unsent, or sent and missing a receipt)",
        lambda n: n.pending_batches),
    "exgate_node_oldest_pending_age_seconds": (
        "gauge", "Age of the oldest batch in the node's outbox at its last heartbeat",
        lambda n: n.oldest_pending_age_s),
    "exgate_node_last_contact_age_seconds": (
        "gauge", "Seconds since the node's last heartbeat or batch",
        lambda n: n.contact_age_s),
    "exgate_node_elements_covered": (
        "gauge", "Exchange elements the node has ever sent (of 14)",
        lambda n: n.covered),
}
LEVEL_LIGHT = "exgate_level_light"
LEVEL_FAILED = "exgate_level_failed_batches"
REGISTRY_UNREADABLE = "exgate_registry_unreadable_files"
BROKER_CONNECTED = "exgate_broker_connected"
DEAD_LETTERS = "exgate_level_dead_letters"
STORE_UP = "exgate_store_up"
HELD_DELIVERIES = "exgate_level_held_deliveries"
HOLD_AGE = "exgate_level_hold_age_seconds"


class StatusCollector(Collector):
    """Turns the current ``StatusReport`` into metric families at each scrape."""

    def __init__(self, report: Callable[[], StatusReport], level: str,
                 connected: Callable[[], bool] | None = None,
                 dead_letters: Callable[[], int | None] | None = None,
                 holds: Callable[[], HoldState] | None = None, lang: str = "zh") -> None:
        self._report = report
        self._level = level
        self._connected = connected
        self._dead_letters = dead_letters
        self._holds = holds
        self._lang = lang  # of the log

    def collect(self) -> Iterator[Metric]:
        try:
            report = self._report()
        except ExgateError as exc:  # the store is away or is not one
            log.warning(say("metrics-failed", self._lang, error=exc))
            yield self._store_up(False)
            yield from self._broker()
            return
        yield self._store_up(True)
        yield from self._nodes(report)
        yield from self._level_wide(report)
        yield from self._broker()

    def _store_up(self, up: bool) -> Metric:
        family = GaugeMetricFamily(STORE_UP, "1 while the level's store answers the status "
                                   "queries, else 0 (and no other status series)",
                                   labels=("level",))
        family.add_metric([self._level], 1 if up else 0)
        return family

    def _nodes(self, report: StatusReport) -> Iterator[Metric]:
        for name, (kind, help_text, value) in METRICS.items():
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=_NODE)
            else:
                family = GaugeMetricFamily(name, help_text, labels=_NODE)
            for node in report.nodes:
                number = value(node)
                if number is not None:
                    family.add_metric([node.node_id, node.division], float(number))
            yield family

    def _level_wide(self, report: StatusReport) -> Iterator[Metric]:
        level = GaugeMetricFamily(LEVEL_LIGHT, "Worst light of the level's nodes",
                                  labels=("level",))
        level.add_metric([report.level], LIGHT_VALUES[report.light.value])
        yield level
        failed = GaugeMetricFamily(
            LEVEL_FAILED, "Refused batches of the level not replayed yet, by sender: node "
            "(filed under one of the level's nodes) or unknown (no node vouched for it)",
            labels=("level", "sender"))
        failed.add_metric([report.level, "node"], report.failed_totals.of_nodes)
        failed.add_metric([report.level, "unknown"], report.failed_totals.of_no_node)
        yield failed
        unreadable = GaugeMetricFamily(
            REGISTRY_UNREADABLE, "Node registry files that cannot be read: above 0, the "
            "status leaves out what they say", labels=("level",))
        unreadable.add_metric([report.level], len(report.registry_errors))
        yield unreadable

    def _broker(self) -> Iterator[Metric]:
        if self._connected is not None:
            connected = GaugeMetricFamily(
                BROKER_CONNECTED, "1 while this gateway process is connected to the broker "
                "and consuming the level's queues, else 0", labels=("level",))
            connected.add_metric([self._level], 1 if self._connected() else 0)
            yield connected
        dead = self._dead_letters() if self._dead_letters is not None else None
        if dead is not None:
            letters = GaugeMetricFamily(
                DEAD_LETTERS, "Messages the gateway's last pass left in the level's dead "
                "queue: letters the store could not take yet, or not this level's batches "
                "(the others are failed batches by then)", labels=("level",))
            letters.add_metric([self._level], dead)
            yield letters
        if self._holds is not None:
            yield from self._held(self._holds())

    def _held(self, state: HoldState) -> Iterator[Metric]:
        held = GaugeMetricFamily(
            HELD_DELIVERIES, "Batches and heartbeats this gateway process holds unacked "
            "through failures (the store refusing writes), retrying them",
            labels=("level",))
        held.add_metric([self._level], state.held)
        yield held
        age = GaugeMetricFamily(
            HOLD_AGE, "Seconds since this gateway process began failing to store what it "
            "holds (0 while nothing fails)", labels=("level",))
        age.add_metric([self._level], state.age_s)
        yield age


def metrics_registry(report: Callable[[], StatusReport], level: str,
                     connected: Callable[[], bool] | None = None,
                     dead_letters: Callable[[], int | None] | None = None,
                     holds: Callable[[], HoldState] | None = None, lang: str = "zh"
                     ) -> CollectorRegistry:
    """A private registry (not the process-global one): one per dashboard server.

    ``level``: the level's division code, the label of every level-wide series.
    ``connected``: whether this process's consumer is consuming, when it has one;
    ``dead_letters``: what its last pass left in the level's dead queue; ``holds``: what
    it holds through failures; ``lang``: the language of the log.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(report, level, connected, dead_letters, holds, lang))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

"""Prometheus metrics of the sync status, named once, here.

The values are read from the store at scrape time (through the same cached
``StatusSource`` as the dashboard), so every gateway process of a level reports the
same numbers and nothing is lost across restarts. Light values: ``0`` green,
``1`` yellow, ``2`` red, ``-1`` off (disabled node).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.status import NodeStatus, StatusReport

__all__ = ["CONTENT_TYPE", "LIGHT_VALUES", "METRICS", "StatusCollector", "metrics_registry",
           "render_metrics"]

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
    "exgate_node_source_lag_seconds": (
        "gauge", "Source lag the node's agent last reported",
        lambda n: n.source_lag_s),
    "exgate_node_outbox_pending_batches": (
        "gauge", "Batches waiting in the node's outbox at its last heartbeat",
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


class StatusCollector(Collector):
    """Turns the current ``StatusReport`` into metric families at each scrape."""

    def __init__(self, report: Callable[[], StatusReport]) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        report = self._report()
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
        level = GaugeMetricFamily(LEVEL_LIGHT, "Worst light of the level's nodes",
                                  labels=("level",))
        level.add_metric([report.level], LIGHT_VALUES[report.light.value])
        yield level


def metrics_registry(report: Callable[[], StatusReport]) -> CollectorRegistry:
    """A private registry (not the process-global one): one per dashboard server."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(report))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

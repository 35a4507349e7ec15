"""Where a status report comes from: the level's store, its node registry and the catalogue.

``StatusSource.report()`` is what ``exgate status``, the dashboard and ``/metrics`` call.
The dashboard may be polled by several browsers and a Prometheus at once, so a report
can be reused for ``cache_s`` seconds (a handful of indexed queries each time it is not).
A registry file that cannot be read is left out and named in the report (``degraded``);
the other entries still count.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from adapters.stores.sql import SqlStore
from adapters.stores.sql_status import check_store, read_status_rows
from adapters.stores.status_rows import NodeRow
from gateway.registry import Registry, RegistryScan
from gateway.status import StatusReport, build_report
from gateway.status_rules import StatusThresholds
from schemas.catalog import load_catalog

__all__ = ["StatusSource", "element_labels"]


def element_labels() -> list[tuple[str, str]]:
    """(code, Chinese label) of every element of the current schema, in its order.

    The English names are ``gateway.status_text.element_label``'s.
    """
    return [(code, spec.label) for code, spec in load_catalog().elements.items()]


class StatusSource:
    """Builds status reports for one level; thread-safe."""

    def __init__(self, store: SqlStore, level: str, thresholds: StatusThresholds, *,
                 registry_path: Path | None = None, cache_s: float = 0.0) -> None:
        self.store = store
        self.level = level
        self.thresholds = thresholds
        self.registry = None if registry_path is None else Registry(registry_path)
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, StatusReport] | None = None

    def report(self) -> StatusReport:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            report = self._build()
            self._cached = (time.monotonic(), report)
            return report

    def check_store(self) -> None:
        """A probe of the store, never cached; ``ExgateError`` when it does not answer."""
        check_store(self.store)

    def _build(self) -> StatusReport:
        limits = self.thresholds
        rows = read_status_rows(self.store, heartbeat_window_s=limits.lag_window_s,
                                throughput_hours=limits.throughput_hours)
        scan = self.registry.scan() if self.registry is not None else RegistryScan((), ())
        nodes = [NodeRow(e.node_id, e.division, e.status) for e in scan.entries]
        return build_report(rows, level=self.level, elements=element_labels(),
                            thresholds=limits, registry_nodes=nodes,
                            registry_errors=scan.unreadable)

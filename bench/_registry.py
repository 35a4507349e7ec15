"""The figure registry and the shape of a figure's result."""

from __future__ import annotations

import gc
import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BenchConfig", "Reference", "Result", "discover", "figure", "measured_rate", "registered",
]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What every figure gets: a scratch folder shared by the run, and the sizes."""

    workdir: Path
    records: int = 100_000
    naive_records: int = 3_000


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference measured beside a figure: the raw limit or the naive pipeline.

    ``ratio`` is figure ÷ reference; ``as_percent`` prints it as "63% of raw" rather
    than "12.5× naive"; ``target`` is the goal from the issue, printed as is.
    """

    name: str
    value: float
    unit: str
    ratio: float
    target: str
    as_percent: bool = False

    def describe(self) -> str:
        ratio = f"{self.ratio:.0%}" if self.as_percent else f"{self.ratio:.1f}×"
        return f"{self.name} {self.value:,.0f} {self.unit} ({ratio}, target {self.target})"


@dataclass(frozen=True, slots=True)
class Result:
    """One figure: its value, its references, and what it was measured on."""

    figure: str
    label: str
    value: float
    unit: str
    references: tuple[Reference, ...] = ()
    context: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{self.figure}: {self.label} {self.value:,.0f} {self.unit}"]
        parts += [ref.describe() for ref in self.references]
        text = " | ".join(parts)
        return f"{text} [{self.context}]" if self.context else text


FigureFunction = Callable[[BenchConfig], Result]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    order: int
    run: FigureFunction


_FIGURES: dict[str, _Entry] = {}


def figure(name: str, *, order: int = 100) -> Callable[[FigureFunction], FigureFunction]:
    """Register a figure under ``name``; lower ``order`` runs first."""

    def register(function: FigureFunction) -> FigureFunction:
        if name in _FIGURES and _FIGURES[name].run is not function:
            raise ValueError(f"bench figure {name!r} is registered twice")
        _FIGURES[name] = _Entry(name, order, function)
        return function

    return register


def discover() -> None:
    """Import every public module of the package so its figures register."""
    import bench

    for module in pkgutil.iter_modules(bench.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"bench.{module.name}")


def registered() -> list[tuple[str, FigureFunction]]:
    """The registered figures, in run order."""
    discover()
    entries = sorted(_FIGURES.values(), key=lambda e: (e.order, e.name))
    return [(e.name, e.run) for e in entries]


def measured_rate(count: int, run: Callable[[], int],
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """``count / seconds`` of ``run()``, which must report having handled ``count`` items.

    ``clock``: wall time by default; ``time.process_time`` for a single-threaded figure
    whose references run in the same process (CPU time is steadier on a shared machine).
    """
    gc.collect()
    started = clock()
    seen = run()
    elapsed = clock() - started
    if seen != count:
        raise RuntimeError(f"measured {seen} items, expected {count}")
    return count / elapsed

"""Every bench module imports: nothing else in the suite runs them, and a module moved
under them (``create_all`` left ``frontdb.py``) broke ``python -m bench`` unseen."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(info.name for info in pkgutil.iter_modules(bench.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_the_bench_module_imports(name: str) -> None:
    assert importlib.import_module(f"bench.{name}").__name__ == f"bench.{name}"


def test_every_public_bench_module_registers_its_figure() -> None:
    from bench._registry import registered

    names = {name for name, _ in registered()}
    assert {"agent-db", "agent-folder", "end-to-end", "validation"} <= names

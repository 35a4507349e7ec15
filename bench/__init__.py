"""Benchmarks (design §11): ``python -m bench`` prints one line per figure.

Each figure lives in its own module of this package and registers itself with
``@figure``; the runner imports every public module here, so adding a figure means
adding a module, nothing else. A figure returns a ``Result`` with its references (the
raw limit and the naive pipeline) measured in the same run. Nothing here asserts a
timing: figures are read by people.
"""

from bench._registry import BenchConfig, Reference, Result, figure, registered

__all__ = ["BenchConfig", "Reference", "Result", "figure", "registered"]

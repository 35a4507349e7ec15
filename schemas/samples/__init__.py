"""Realistic generated exchange cases for the demo, the tests and the benchmarks.

``generate(out_dir, cases=…)`` writes whole case lifecycles with valid check digits,
plausible names and ordered times; with ``invalid_rate`` it injects listed defects and
writes them to ``DEFECTS.json``. ``describe`` renders a short summary for the CLI.
"""

from schemas.samples.generator import (
    DEFAULT_SEED,
    DEFAULT_UNTIL,
    DEFECTS_FILE,
    Defect,
    SampleFile,
    SampleSet,
    generate,
)
from schemas.samples.summary import describe

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_UNTIL",
    "DEFECTS_FILE",
    "Defect",
    "SampleFile",
    "SampleSet",
    "describe",
    "generate",
]

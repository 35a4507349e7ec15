"""Generated inputs shared by the figures of one run, made once per size."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from schemas.samples import generate

__all__ = ["sample_file"]

_RECORDS_PER_CASE = 10.3  # measured average of the default generator


@cache  # figures of one run share inputs: generating 100k records takes seconds
def sample_file(workdir: Path, records: int, encoding: str = "UTF-8") -> tuple[Path, int]:
    """One valid sample file of about ``records`` records; returns it and its count."""
    folder = workdir / f"samples-{records}-{encoding.lower()}"
    cases = max(1, round(records / _RECORDS_PER_CASE))
    samples = generate(folder, cases=cases, encoding=encoding, files=1)
    only = samples.files[0]
    return only.path, only.records

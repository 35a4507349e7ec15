"""What ``exgate samples`` does once click has parsed its arguments."""

from __future__ import annotations

import sys
from pathlib import Path

from schemas.samples.generator import DEFAULT_SEED, generate
from schemas.samples.summary import describe

__all__ = ["run_samples"]


def run_samples(out_dir: Path, *, cases: int, encoding: str, invalid_rate: float,
                seed: int | None, files: int, lang: str) -> int:
    """Generate, print the summary; exit code 0, or 2 for an encoding lxml cannot write."""
    try:
        samples = generate(out_dir, cases=cases, encoding=encoding, invalid_rate=invalid_rate,
                           seed=DEFAULT_SEED if seed is None else seed, files=files)
    except LookupError:
        message = (f"unknown encoding {encoding!r}; try UTF-8, GB18030, GBK or UTF-16"
                   if lang == "en" else
                   f"不支持的编码 {encoding!r}；可用 UTF-8、GB18030、GBK 或 UTF-16")
        print(message, file=sys.stderr)
        return 2
    print(describe(samples, lang))
    return 0

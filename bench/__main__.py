"""``python -m bench [FIGURE ...] [--records N]``: run the figures, one line each."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench._registry import BenchConfig, registered


def main(argv: list[str] | None = None) -> int:
    figures = registered()
    names = [name for name, _ in figures]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("figures", nargs="*", metavar="FIGURE",
                        help=f"figures to run (default all): {', '.join(names)}")
    parser.add_argument("--records", type=int, default=100_000,
                        help="records per measured input (default 100000)")
    parser.add_argument("--naive-records", type=int, default=3_000,
                        help="records for the naive per-record reference (default 3000)")
    args = parser.parse_args(argv)
    unknown = set(args.figures) - set(names)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="exgate-bench-") as scratch:
        config = BenchConfig(Path(scratch), args.records, args.naive_records)
        for name, run in figures:
            if not args.figures or name in args.figures:
                print(run(config).line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

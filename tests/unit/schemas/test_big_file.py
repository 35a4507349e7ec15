"""A 200 MB document validates in flat memory: the reader streams, it never loads the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.samples import generate

TARGET_BYTES = 200 * 1024 * 1024
RSS_LIMIT_BYTES = 200 * 1024 * 1024

# Runs in the child: validate one file and print what the reader saw, and the peak
# resident size of its own address space (VmHWM, in kB).
VALIDATE = """
import json, re, sys
from pathlib import Path
from schemas.reader import DocumentReader

path = Path(sys.argv[1])
reader = DocumentReader(path, path.name)
issues = sum(len(check.issues) for check in reader) + len(reader.issues)
status = Path("/proc/self/status").read_text()
peak_kb = int(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1))
print(json.dumps({"records": reader.records, "valid": reader.valid, "issues": issues,
                  "peak_kb": peak_kb}))
"""


def big_sample(folder: Path) -> tuple[Path, int]:
    """Generate just over TARGET_BYTES, sizing the run from a small calibration sample."""
    probe = generate(folder / "probe", cases=500, seed=99)
    cases = int(TARGET_BYTES / (probe.bytes / probe.cases) * 1.03) + 1
    samples = generate(folder / "big", cases=cases, seed=99)
    only = samples.files[0]
    assert only.bytes >= TARGET_BYTES
    return only.path, only.records


def validate_in_child(path: Path) -> tuple[dict[str, int], int]:
    """The child's report and its own peak RSS in bytes.

    The child reads its peak itself (VmHWM): the rusage of a child (``ru_maxrss``) keeps
    the peak of the process it was forked from, and this test process grows past the
    limit in a full run, which would fail the test for someone else's memory.
    """
    result = subprocess.run([sys.executable, "-c", VALIDATE, str(path)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return report, report.pop("peak_kb") * 1024


@pytest.mark.slow
def test_a_200_mb_file_validates_in_under_200_mb_of_memory(tmp_path: Path) -> None:
    path, records = big_sample(tmp_path)
    report, peak = validate_in_child(path)
    assert report == {"records": records, "valid": records, "issues": 0}
    assert peak < RSS_LIMIT_BYTES, f"child peak RSS {peak / 2**20:.0f} MB"

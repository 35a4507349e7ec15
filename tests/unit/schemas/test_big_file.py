"""A 200 MB document validates in flat memory: the reader streams, it never loads the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.samples import generate

TARGET_BYTES = 200 * 1024 * 1024
RSS_LIMIT_BYTES = 200 * 1024 * 1024

# Runs in the child: validate one file and print what the reader saw.
VALIDATE = """
import json, sys
from pathlib import Path
from schemas.reader import DocumentReader

path = Path(sys.argv[1])
reader = DocumentReader(path, path.name)
issues = sum(len(check.issues) for check in reader) + len(reader.issues)
print(json.dumps({"records": reader.records, "valid": reader.valid, "issues": issues}))
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

    ``os.wait4`` gives the rusage of exactly this child: RUSAGE_CHILDREN would be the
    maximum over every child this test process ever reaped (servers started by other
    fixtures included), which could fail the test for someone else's memory.
    """
    child = subprocess.Popen([sys.executable, "-c", VALIDATE, str(path)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    with child.stdout:
        output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, output
    return json.loads(output), usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.slow
def test_a_200_mb_file_validates_in_under_200_mb_of_memory(tmp_path: Path) -> None:
    path, records = big_sample(tmp_path)
    report, peak = validate_in_child(path)
    assert report == {"records": records, "valid": records, "issues": 0}
    assert peak < RSS_LIMIT_BYTES, f"child peak RSS {peak / 2**20:.0f} MB"

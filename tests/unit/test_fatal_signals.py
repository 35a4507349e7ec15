"""A fatal signal leaves a Python traceback on stderr, the journal of a systemd unit:
a gateway killed by SIGBUS (its SQLite store's memory map taken away) said nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Runs the real CLI group (its callback is what sets the handler), then dies as a
# gateway does when a page of its store's memory map vanishes.
_DIE_AFTER_THE_CLI = """
import os, signal, cli
try:
    cli.main(["validate", "--help"], standalone_mode=False)
finally:
    os.kill(os.getpid(), signal.SIGBUS)
"""


def test_a_bus_error_leaves_a_traceback() -> None:
    died = subprocess.run([sys.executable, "-c", _DIE_AFTER_THE_CLI], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert died.returncode == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in died.stderr

"""The drop-folder path: many small files through the agent into the outbox.

- exgate: ``run_once`` on a config with one folder source (``stable_seconds`` small):
  claim each file into ``processing/``, hash it, read and validate its records, journal
  them (small files share a chunk), move the file to ``done/``;
- raw reference: the same files read and parsed with a bare ``etree.parse`` in a
  loop, no validation and no journal.

Files are generated sample cases (one case per file, about 20 records and 7 KB each);
10,000 of them with the default ``--records`` (a tenth as many files as records).
Rates are per second of wall-clock time, since the agent also waits on fsync and
renames; the load average is printed because other processes share the machine.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from bench._registry import BenchConfig, Reference, Result, figure
from frontend_machine.agent_command import run_once
from schemas.samples import generate

__all__ = ["agent_folder"]

PROVINCE = "430000"
_HARDENED = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@figure("agent-folder", order=25)
def agent_folder(config: BenchConfig) -> Result:
    files = max(100, min(10_000, config.records // 10))
    root = config.workdir / "agent-folder"
    samples = generate(root / "generated", cases=files, files=files, province=PROVINCE)
    inbox = _drop_folder(root)
    for sample in samples.files:
        shutil.copyfile(sample.path, inbox / sample.name)
    paths = sorted(inbox.glob("*.xml"))
    raw, raw_records = _timed(lambda: _raw(paths))
    if raw_records != samples.records:
        raise RuntimeError(f"raw parse saw {raw_records} records, expected {samples.records}")
    exgate, _ = _timed(lambda: _exgate(root, files))
    exgate_fps, raw_fps = files / exgate, files / raw
    return Result(
        "agent-folder", "exgate run_once", exgate_fps, "files/s",
        (Reference("raw read + etree.parse", raw_fps, "files/s", exgate_fps / raw_fps,
                   "none set", as_percent=True),),
        f"{files:,} files, {samples.records:,} records ({samples.bytes / 1e6:.0f} MB): "
        f"exgate {samples.records / exgate:,.0f} rec/s, raw {samples.records / raw:,.0f} rec/s;"
        f" wall clock, load {os.getloadavg()[0]:.1f}",
    )


def _drop_folder(root: Path) -> Path:
    drop = root / "drop"
    for sub in ("inbox", "processing", "done", "error"):
        (drop / sub).mkdir(parents=True, exist_ok=True)
    (root / "agent.toml").write_text(f"""
[node]
id = "bench-node"
division = "{PROVINCE}"
[outbox]
path = "outbox.db"
[[sources]]
kind = "folder"
name = "drop"
path = "drop"
stable_seconds = 0.1
observer = "none"
""", encoding="utf-8")
    return drop / "inbox"


def _timed(run: Callable[[], int]) -> tuple[float, int]:
    gc.collect()
    started = time.perf_counter()
    count = run()
    return time.perf_counter() - started, count


def _raw(paths: list[Path]) -> int:
    records = 0
    for path in paths:
        document = etree.parse(io.BytesIO(path.read_bytes()), _HARDENED)
        records += len(document.getroot()[1])  # HEAD, then BODY with the records
    return records


def _exgate(root: Path, files: int) -> int:
    out = io.StringIO()
    # The agent logs a line per file on stderr (journald in production): keep it, unseen.
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        code = run_once(root / "agent.toml", "en", out=out)  # paths relative to the config
    done = sum(1 for _ in (root / "drop" / "done").glob("*/*.xml"))
    if code != 0 or done != files:
        raise RuntimeError(f"run_once exited {code} with {done} of {files} files done:\n"
                           f"{out.getvalue()[-2000:]}")
    return done

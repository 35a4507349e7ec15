"""``exgate demo`` as a user runs it: exit 0, a status table that matches the stores it
leaves behind, and no broker left running."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from gateway.broker_node import LocalBroker
from gateway.demo import LEVELS, NODES, run_demo

EXGATE = str(Path(sys.executable).parent / "exgate")


def _row(lines: list[str], first: str) -> list[str]:
    """The status table's row starting with ``first`` (six cells, two spaces apart)."""
    [row] = [cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)
             if len(cells) == 6 and cells[0] == first]
    return row


def _store(workdir: Path, division: str) -> dict[str, int]:
    path = workdir / "central" / division / "store.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ST_%'")]
        elements = [t for t in tables if t.removeprefix("ST_").isupper()
                    and t not in ("ST_BATCH", "ST_FAILED_BATCH", "ST_CONFLICT", "ST_NODE",
                                  "ST_RECEIPT", "ST_HEARTBEAT", "ST_COVERAGE",
                                  "ST_SCHEMA_VERSION")]

        def count(table: str) -> int:
            return int(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

        return {"records": sum(count(t) for t in elements), "batches": count("ST_BATCH"),
                "failed": count("ST_FAILED_BATCH"), "conflicts": count("ST_CONFLICT")}


def test_the_demo_runs_the_whole_path_and_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    done = subprocess.run([EXGATE, "demo", "--workdir", str(workdir), "--lang", "en"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("[7/7]") for line in lines)

    stores = {division: _store(workdir, division) for division in LEVELS}
    for division in LEVELS:
        _, code, records, batches, failed, conflicts = _level_row(lines, division)
        assert code == division
        assert [int(records), int(batches), int(failed), int(conflicts)] == [
            stores[division][k] for k in ("records", "batches", "failed", "conflicts")]
        assert int(failed) == int(conflicts) == 0
    for division in LEVELS:  # each level's gateway logs in as its own least-privilege user
        config = (workdir / "central" / division / "gateway.toml").read_text(encoding="utf-8")
        assert f'url = "amqp://exgate-gw-{division}@127.0.0.1:' in config
        password = workdir / "central" / "secrets" / f"exgate-gw-{division}.password"
        assert f'password_file = "{password}"' in config
        assert stat.S_IMODE(password.stat().st_mode) == 0o600
        assert 'lang = "en"' in config  # the gateways log in the demo's language
    log = (workdir / "logs" / "demo.log").read_text(encoding="utf-8")
    assert "exgate.gateway stored batch " in log and "已入库：" not in log
    county_total = sum(stores[d]["records"] for d in LEVELS[2:])
    assert stores["430000"]["records"] == stores["430100"]["records"] == county_total > 0

    for node in NODES:
        _, division, valid, rejected, stored, batches = _row(lines, node.node_id)
        assert division == node.division
        assert int(rejected) == 3  # the demo's deliberately bad records
        assert stored == "/".join([valid] * 3)
        assert int(valid) == stores[node.division]["records"]
        assert batches.endswith("/0/0")
        # What `exgate status` shows at every level agrees: the agents' last heartbeats,
        # sent after their receipts, were taken in by the gateways.
        for division in ("430000", "430100", node.division):
            assert _last_beat(workdir, division, node.node_id)["pending_batches"] == 0

    # The broker's folder is named on the first step's line (the work folder, or a
    # temp folder when the rabbitmq user cannot reach the work folder).
    [started] = [line for line in lines if line.startswith("[1/7]")]
    broker_base = Path(started.rsplit(": ", 1)[1])
    if (broker_base / "exgate-broker.json").exists():
        assert not LocalBroker(broker_base).status().running
    assert _processes_using(broker_base) == []
    assert (workdir / "central" / "430000" / "gateway.toml").exists()
    assert (workdir / "nodes" / NODES[0].node_id / "agent.toml").exists()


def _last_beat(workdir: Path, division: str, node_id: str) -> dict[str, int]:
    """The outbox figures of the node's latest heartbeat in the level's store."""
    path = workdir / "central" / division / "store.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute('SELECT "OUTBOX" FROM "ST_HEARTBEAT" WHERE "NODE_ID" = ?'
                         ' ORDER BY "RECEIVED_AT" DESC, "HEARTBEAT_ID" DESC LIMIT 1',
                         (node_id,)).fetchone()
    assert row is not None, (division, node_id)
    outbox: dict[str, int] = json.loads(row[0])
    return outbox


def _processes_using(folder: Path) -> list[int]:
    """PIDs whose command line or environment names ``folder``: the node's beam, its
    launcher and its epmd all run with the folder in their environment."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(folder).encode() in seen:
            found.append(int(proc.name))
    return found


def _level_row(lines: list[str], division: str) -> list[str]:
    [row] = [cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)
             if len(cells) == 6 and cells[0] in ("province", "city", "county")
             and cells[1] == division]
    return row


def test_the_demo_never_empties_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    # `exgate demo --workdir ~` (or `.`, in a checkout) must not wipe it.
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.txt").write_text("years of work", encoding="utf-8")
    assert run_demo(home, "en") == 2
    assert [p.name for p in home.iterdir()] == ["thesis.txt"]
    assert run_demo(home / "thesis.txt", "en") == 2
    assert (home / "thesis.txt").read_text(encoding="utf-8") == "years of work"

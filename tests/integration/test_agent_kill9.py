"""kill -9 the real agent process at random points; nothing is lost or duplicated.

Sources: a drop folder (files keep arriving between kills, written temp-then-rename)
and a front-end database read by two sources: EX_JGXX with the ``flag`` strategy and
EX_SBXX with ``changelog`` (rows keep arriving too). The database is SQLite, then a real
PostgreSQL, where ``flag`` fetches a page ahead and writes a page back while the next
is validated, so a kill also lands between those. After 22 kills and a final clean run:
- every valid source record is in the outbox exactly once;
- every rejected record is journaled exactly once as a reject;
- every file is in done/ or error/ (never both, never renamed by a collision);
- every front-end row has SYNC_FLAG 1 or 2.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.db_connect import engine_url
from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from schemas.checkdigits import credit_code_check_char
from tests.unit.adapters.front_rows import row

KILLS = 22
FILES_PER_ROUND = 30
RECORDS_PER_FILE = 8
ROWS_PER_ROUND = 120
STARTED = "前置机代理已启动".encode()  # the agent's start-up log line (lang zh)

ROW_TIME = datetime(2024, 5, 1, 10, 0, 0)

HEAD_CODE = "11430102MB" + "9876543"
HEAD_CODE += credit_code_check_char(HEAD_CODE)


def credit_code(number: int, *, bad: bool = False) -> str:
    first17 = f"11430102MB{number:07d}"
    check = credit_code_check_char(first17)
    if bad:
        check = "0" if check != "0" else "1"
    return first17 + check


def jgxx(number: int, *, bad: bool = False) -> str:
    return (f"<JGXX><XZQHDM>430102</XZQHDM><TYSHXYDM>{credit_code(number, bad=bad)}"
            f"</TYSHXYDM><SJBBH>1</SJBBH><GXSJ>2024-05-01 10:00:00</GXSJ>"
            f"<JGMC>芙蓉区机构{number}</JGMC></JGXX>\n")


def document(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">\n'
            f"<HEAD><XZQHDM>430102</XZQHDM><TYSHXYDM>{HEAD_CODE}</TYSHXYDM>"
            f"<CREATED>2024-05-01 10:00:00</CREATED></HEAD><BODY>\n{body}</BODY></EXCHANGE>\n"
            ).encode()


@dataclass
class World:
    """The sources' content, and what the outbox must end up holding."""

    root: Path
    engine: sa.Engine
    expected_keys: set[str] = field(default_factory=set)
    expected_rejects: int = 0
    good_files: set[str] = field(default_factory=set)
    bad_files: set[str] = field(default_factory=set)
    next_number: int = 0

    def number(self) -> int:
        self.next_number += 1
        return self.next_number

    def drop_files(self, round_no: int, rng: random.Random) -> None:
        inbox = self.root / "drop" / "inbox"
        for index in range(FILES_PER_ROUND):
            name = f"r{round_no:02}-{index:03}.xml"
            bad_at = rng.randrange(RECORDS_PER_FILE) if index % 7 == 3 else None
            body = ""
            for position in range(RECORDS_PER_FILE):
                number, bad = self.number(), position == bad_at
                body += jgxx(number, bad=bad)
                if not bad:
                    self.expected_keys.add(credit_code(number))
            self._publish(inbox, name, document(body))
            (self.bad_files if bad_at is not None else self.good_files).add(name)
            self.expected_rejects += bad_at is not None
        if round_no % 5 == 0:
            self._publish(inbox, f"r{round_no:02}-garbage.xml", b"\x00\x01 not xml at all")
            self.bad_files.add(f"r{round_no:02}-garbage.xml")
            self.expected_rejects += 1

    def _publish(self, inbox: Path, name: str, data: bytes) -> None:
        temp = inbox / f".{name}.part"
        temp.write_bytes(data)
        os.rename(temp, inbox / name)

    def insert_rows(self) -> None:
        rows = []
        for index in range(ROWS_PER_ROUND):
            number, bad = self.number(), index % 40 == 17
            rows.append({"XZQHDM": "430102", "TYSHXYDM": credit_code(number, bad=bad),
                         "SJBBH": 1, "GXSJ": ROW_TIME, "JGMC": f"数据库机构{number}"})
            if bad:
                self.expected_rejects += 1
            else:
                self.expected_keys.add(credit_code(number))
        self._insert("JGXX", rows)
        self._insert_logged_rows()

    def _insert_logged_rows(self) -> None:
        """EX_SBXX rows for the changelog source: its position passes a page before
        the write-back, so a kill in between must not leave a row unflagged."""
        rows = []
        for index in range(ROWS_PER_ROUND):
            number, bad = self.number(), index % 40 == 23
            values = row("SBXX", number, ROW_TIME)
            rows.append(values | {"TJFS": "7"} if bad else values)
            if bad:
                self.expected_rejects += 1
            else:
                self.expected_keys.add(str(values["SBLSH"]))
        self._insert("SBXX", rows)

    def _insert(self, element: str, rows: list[dict[str, object]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(front_tables(self.engine.dialect.name).elements[element].insert(),
                         rows)

    def flags(self, element: str) -> dict[int, int]:
        """SYNC_FLAG → rows, in the front-end table of ``element``."""
        table = front_tables(self.engine.dialect.name).elements[element]
        with self.engine.connect() as conn:
            return {int(flag): int(count) for flag, count in conn.execute(
                sa.select(table.c.SYNC_FLAG, sa.func.count()).group_by(table.c.SYNC_FLAG))}


def write_config(root: Path, db_url: str) -> Path:
    db = f"""
[[sources]]
kind = "db"
name = "front"
url = "{db_url}"
strategy = "flag"
tables = ["JGXX"]
page_size = 50
[[sources]]
kind = "db"
name = "front-log"
url = "{db_url}"
strategy = "changelog"
tables = ["SBXX"]
page_size = 50
"""
    config = root / "agent.toml"
    config.write_text(f"""
[node]
id = "kill9-node"
division = "430102"
[outbox]
path = "outbox.db"
batch_max_records = 100
batch_linger_seconds = 0.5
[agent]
poll_seconds = 0.2
[[sources]]
kind = "folder"
name = "drop"
path = "drop"
stable_seconds = 0
rescan_seconds = 0.2
observer = "none"
chunk_records = 20
files_per_chunk = 3
{db}""", encoding="utf-8")
    return config


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "cli", "agent", "run", "-c", str(config)],
                                stdout=sink, stderr=sink, cwd=config.parent)


def wait_started(log: Path, starts: int, agent: subprocess.Popen[bytes]) -> None:
    """Until the log shows the agent's ``starts``-th start-up line (a hang guard only)."""
    deadline = time.monotonic() + 60
    while log.read_bytes().count(STARTED) < starts and agent.poll() is None:
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.02)


def settled(world: World) -> bool:
    drop = world.root / "drop"
    if any((drop / "inbox").iterdir()) or any((drop / "processing").iterdir()):
        return False
    return all(0 not in world.flags(element) for element in ("JGXX", "SBXX"))


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


@pytest.fixture(params=["sqlite", "pg_url"])
def front_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """The front-end database's URL (for the agent) and an engine of the test's own."""
    url = f"sqlite:///{tmp_path / 'front.db'}" if request.param == "sqlite" \
        else str(request.getfixturevalue(request.param))
    create_all(url, triggers=True)
    engine = sa.create_engine(engine_url(url))
    yield url, engine
    engine.dispose()


@pytest.mark.timeout(300)
def test_kill_9_at_random_points_loses_and_duplicates_nothing(
        tmp_path: Path, front_db: tuple[str, sa.Engine]) -> None:
    rng = random.Random(20261120)
    db_url, engine = front_db
    world = World(tmp_path, engine)
    for sub in ("inbox", "processing", "done", "error"):
        (tmp_path / "drop" / sub).mkdir(parents=True)
    config = write_config(tmp_path, db_url)
    log = tmp_path / "agent.log"

    for round_no in range(KILLS):
        world.drop_files(round_no, rng)
        world.insert_rows()
        starts = log.read_bytes().count(STARTED) if log.exists() else 0
        agent = start_agent(config, log)
        if round_no % 6 == 5:
            time.sleep(rng.uniform(0.0, 1.0))  # now and then, kill it while it starts up
        else:
            wait_started(log, starts + 1, agent)
            time.sleep(rng.uniform(0.0, 0.5))  # mid-work: a round's data takes longer
        agent.send_signal(signal.SIGKILL)
        assert agent.wait(timeout=30) == -signal.SIGKILL

    agent = start_agent(config, log)
    try:
        deadline = time.monotonic() + 180  # a hang guard, not a timing assertion
        while not settled(world) and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # let the last chunk's commit land before stopping
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
    assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]
    assert settled(world)

    outbox = tmp_path / "outbox.db"
    keys = [row[0] for row in query(outbox, "SELECT record_key FROM records")]
    assert len(keys) == len(set(keys)), "a record was journaled twice"
    assert set(keys) == world.expected_keys, "records were lost or invented"
    assert query(outbox, "SELECT count(*) FROM rejects") == [(world.expected_rejects,)]

    drop = tmp_path / "drop"
    done = [p.name for p in (drop / "done").glob("*/*.xml")]
    errors = [p.name for p in (drop / "error").glob("*.xml")]
    assert sorted(done) == sorted(world.good_files)
    assert sorted(errors) == sorted(world.bad_files)
    assert all((drop / "error" / f"{name}.error.json").exists() for name in errors)

    for element in ("JGXX", "SBXX"):
        flags = world.flags(element)
        assert set(flags) <= {1, 2}, element
        assert flags.get(1, 0) + flags.get(2, 0) == KILLS * ROWS_PER_ROUND

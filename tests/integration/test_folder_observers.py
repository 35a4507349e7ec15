"""watchdog hints wake the running agent (design §5: events are hints, a rescan is the truth).

``exgate agent run`` runs as a subprocess with a rescan and poll period of an hour, so
after its start-up passes only a watchdog event can make it look at ``inbox/`` again.
A file dropped then must still arrive: with the native observer (inotify) and with
``PollingObserver`` (what network shares use). SIGTERM then stops the agent cleanly
and the outbox holds exactly the dropped records.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from schemas.checkdigits import credit_code_check_char

STARTED = "前置机代理已启动".encode()  # the agent's start-up log line (lang zh)
HOUR = 3600
HANG_GUARD = 60.0  # seconds; only stops a broken run from hanging the suite

HEAD_CODE = "11430102MB" + "9876543"
HEAD_CODE += credit_code_check_char(HEAD_CODE)


def credit_code(number: int) -> str:
    first17 = f"11430102MB{number:07d}"
    return first17 + credit_code_check_char(first17)


def document(numbers: range) -> bytes:
    records = "".join(
        f"<JGXX><XZQHDM>430102</XZQHDM><TYSHXYDM>{credit_code(n)}</TYSHXYDM><SJBBH>1</SJBBH>"
        f"<GXSJ>2024-05-01 10:00:00</GXSJ><JGMC>芙蓉区机构{n}</JGMC></JGXX>\n" for n in numbers)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">\n'
            f"<HEAD><XZQHDM>430102</XZQHDM><TYSHXYDM>{HEAD_CODE}</TYSHXYDM>"
            f"<CREATED>2024-05-01 10:00:00</CREATED></HEAD><BODY>\n{records}</BODY></EXCHANGE>\n"
            ).encode()


def write_config(root: Path, observer: str) -> Path:
    for sub in ("inbox", "processing", "done", "error"):
        (root / "drop" / sub).mkdir(parents=True, exist_ok=True)
    config = root / "agent.toml"
    config.write_text(f"""
[node]
id = "observer-node"
division = "430102"
[outbox]
path = "outbox.db"
batch_linger_seconds = 0
[agent]
poll_seconds = {HOUR}
[[sources]]
kind = "folder"
name = "drop"
path = "drop"
stable_seconds = 0
rescan_seconds = {HOUR}
observer = "{observer}"
""", encoding="utf-8")
    return config


def publish(inbox: Path, name: str, data: bytes) -> None:
    """As a well-behaved writer does: a temp name in inbox/, then a rename into place."""
    temp = inbox / f".{name}.part"
    temp.write_bytes(data)
    os.rename(temp, inbox / name)


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def wait_for(condition: Callable[[], bool], agent: subprocess.Popen[bytes], what: str) -> None:
    """Until ``condition`` holds; fails if the agent dies or the hang guard runs out."""
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert agent.poll() is None, f"the agent exited with {agent.returncode} before {what}"
        assert time.monotonic() < deadline, f"hang guard: never saw {what}"
        time.sleep(0.05)


def done(root: Path, name: str) -> bool:
    return any((root / "drop" / "done").glob(f"*/{name}"))


@pytest.fixture
def agent_run(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts ``exgate agent run``; any agent still running afterwards is killed by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(observer: str) -> subprocess.Popen[bytes]:
        config = write_config(tmp_path, observer)
        with (tmp_path / "agent.log").open("ab") as sink:
            agent = subprocess.Popen(
                [sys.executable, "-m", "cli", "agent", "run", "-c", str(config)],
                stdout=sink, stderr=sink, cwd=Path(__file__).parents[2])
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


@pytest.mark.parametrize("observer", ["native", "polling"])
@pytest.mark.timeout(180)
def test_an_event_hint_wakes_the_agent_long_before_its_next_rescan(
        tmp_path: Path, agent_run: Callable[[str], subprocess.Popen[bytes]],
        observer: str) -> None:
    inbox, outbox, log = tmp_path / "drop" / "inbox", tmp_path / "outbox.db", tmp_path / "agent.log"
    inbox.mkdir(parents=True)
    publish(inbox, "before.xml", document(range(0, 5)))  # taken by the start-up pass
    agent = agent_run(observer)
    wait_for(lambda: log.exists() and STARTED in log.read_bytes(), agent, "the start-up line")
    wait_for(lambda: done(tmp_path, "before.xml"), agent, "before.xml in done/")
    # The pass that took before.xml seals its batch; the loop then makes one more pass
    # (it took something) and sleeps for an hour. Give that pass time to end, so
    # that only a hint can make the agent look at inbox/ again.
    wait_for(lambda: query(outbox, "SELECT count(*) FROM batches") != [(0,)], agent,
             "the start-up batch")
    time.sleep(1.0)

    publish(inbox, "after.xml", document(range(5, 12)))
    wait_for(lambda: done(tmp_path, "after.xml"), agent,
             f"after.xml in done/ (the {observer} observer's hint did not wake the agent)")

    agent.send_signal(signal.SIGTERM)
    code = agent.wait(timeout=60)
    assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]
    assert not list(inbox.iterdir()) and not list((tmp_path / "drop" / "processing").iterdir())
    assert not list((tmp_path / "drop" / "error").iterdir())
    assert query(outbox, "PRAGMA integrity_check") == [("ok",)]
    keys = [key for (key,) in query(outbox, "SELECT record_key FROM records ORDER BY seq")]
    assert keys == [credit_code(n) for n in range(12)], "records lost, duplicated or reordered"
    assert query(outbox, "SELECT count(*) FROM rejects") == [(0,)]
    [(progress,)] = query(outbox, "SELECT progress FROM source_state WHERE source = 'drop'")
    assert '"file": "after.xml"' in str(progress) and '"done": true' in str(progress)

"""One agent per outbox: a second agent stops before it reads a source, and a killed
agent leaves no lock behind."""

from __future__ import annotations

import os
import pwd
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from frontend_machine.agent_lock import AgentAlreadyRunning, lock_path, sole_agent
from frontend_machine.outbox_connection import OutboxPathUnusable
from tests.unit.frontend_machine.test_run_once import once, write_config
from tests.unit.schemas.documents import document, record

_HOLD = """
import sys
from pathlib import Path
from frontend_machine.agent_lock import sole_agent
with sole_agent(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(outbox: Path) -> subprocess.Popen[str]:
    """Another process holding ``outbox``'s agent lock until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", _HOLD, str(outbox)], text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               cwd=Path(__file__).parents[3])
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:  # a hang guard, not a timing
        selector.register(process.stdout, selectors.EVENT_READ)
        said = process.stdout.readline() if selector.select(timeout=60) else ""
    if said != "held\n":
        process.kill()
        process.communicate()
        pytest.fail(f"the holder did not take the lock: {said!r}")
    return process


def test_a_second_agent_stops_before_reading_and_a_killed_one_leaves_no_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    dropped = tmp_path / "drop" / "inbox" / "a.xml"
    dropped.write_bytes(document([record("SBXX", SBLSH="SB0001")]))
    holder = _holder(tmp_path / "outbox.db")
    try:
        code, report = once(config)
        error = capsys.readouterr().err
        assert code == 1, report
        assert f"another exgate agent (PID {holder.pid}) is using outbox" in error
        assert "systemctl stop exgate-agent" in error
        assert dropped.exists(), "the second agent took a file it must not read"
        assert not (tmp_path / "outbox.db").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate()  # reaps it and closes its pipes
    code, report = once(config)  # the kernel let go of the killed holder's lock
    assert code == 0, report
    assert not dropped.exists()
    assert [p.name for p in (tmp_path / "drop" / "done").glob("*/*.xml")] == ["a.xml"]


def test_the_lock_names_its_holder_in_both_languages_and_is_free_after(
        tmp_path: Path) -> None:
    outbox = tmp_path / "new" / "outbox.db"
    with sole_agent(outbox):
        assert lock_path(outbox).read_text() == f"{os.getpid()}\n"
        with pytest.raises(AgentAlreadyRunning) as refused, sole_agent(outbox):
            pytest.fail("a second holder got the lock")
        assert f"PID {os.getpid()}" in str(refused.value)
        assert f"另一个 exgate 代理（进程号 {os.getpid()}）" in refused.value.message("zh")
    with sole_agent(outbox):
        assert lock_path(outbox).exists()


def test_a_lock_that_cannot_be_created_says_which_outbox_and_what_to_check(
        tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(OutboxPathUnusable) as broken, \
            sole_agent(tmp_path / "a-file" / "outbox.db"):
        pytest.fail("locked inside a file")
    assert "cannot open outbox" in str(broken.value)
    assert "[outbox] path" in str(broken.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a folder to another user")
def test_root_is_refused_the_outbox_of_the_services_user(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    nobody = pwd.getpwnam("nobody")
    os.chown(tmp_path, nobody.pw_uid, nobody.pw_gid)
    code, _ = once(config)
    error = capsys.readouterr().err
    assert code == 2
    assert f"outbox {tmp_path / 'outbox.db'} belongs to user 'nobody'" in error
    assert "sudo -u nobody exgate agent" in error
    assert not (tmp_path / "outbox.db").exists() and not lock_path(tmp_path / "outbox.db").exists()
    os.chown(tmp_path, 0, 0)  # root's own folder: root's agent runs
    assert once(config)[0] == 0

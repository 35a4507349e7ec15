"""What a clerk drops into the inbox: any case of ``.xml`` is read; anything else (a folder,
another name, a link, a pipe) is named in one warning, in the agent's language, while
it stays."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapters.sources import folder as folder_module
from adapters.sources.base import SourceContext
from adapters.sources.folder import FolderSource, folder_source
from adapters.sources.folder_files import REPORT_SUFFIX
from adapters.sources.folder_ignored import WARNINGS_PER_SCAN, PassedOver
from frontend_machine.outbox import Outbox
from frontend_machine.replay import replay_folder
from tests.unit.adapters.front_rows import poll
from tests.unit.adapters.test_folder_source import (
    CATALOG,
    drop,
    drop_path,
    names,
    open_source,
    valid,
)
from tests.unit.schemas.documents import document, record

LOGGER = "exgate.source.folder"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """Each warning's text and the entry its ``file`` field names."""
    return [(r.getMessage(), r.file) for r in caplog.records  # type: ignore[attr-defined]
            if r.levelno == logging.WARNING]


def fill_inbox(source: FolderSource, tmp_path: Path) -> None:
    """What clerks drop that is no file the source takes, beside what it ignores quietly."""
    drop(source, "cases.xml.txt", valid(1))
    (source.inbox / "march").mkdir()
    (source.inbox / "march" / "inside.xml").write_bytes(valid(2))
    target = tmp_path / "elsewhere.xml"
    target.write_bytes(valid(3))
    (source.inbox / "shortcut.xml").symlink_to(target)
    os.mkfifo(source.inbox / "pipe.xml")
    drop(source, ".cases.xml.part", b"<EXCHANGE")  # a writer's temp name: not a word
    drop(source, "~$cases.xml", b"\x05clerk")  # Office's owner file of an open cases.xml


@pytest.mark.parametrize(("lang", "said"), [
    ("zh", {"cases.xml.txt": "inbox/ 中的 cases.xml.txt 不会被读取：文件名不以 .xml 结尾；"
                             "如果这是交换文件，请改名为 *.xml。只读取直接放在 inbox/ 中、"
                             "文件名以 .xml 结尾的文件",
            "march": "inbox/ 中的 march/ 不会被读取：这是一个目录，目录中的文件不会被读取；"
                     "请把文件直接放入 inbox/",
            "shortcut.xml": "这是符号链接（快捷方式），不会被跟随",
            "pipe.xml": "这不是普通文件"}),
    ("en", {"cases.xml.txt": "cases.xml.txt in inbox/ is not taken: its name does not end in "
                             ".xml; if it is an exchange file, rename it to *.xml. Only files "
                             "directly in inbox/ whose names end in .xml are read",
            "march": "march/ in inbox/ is not taken: it is a folder, and the files in a "
                     "folder are not read; put the files directly in inbox/",
            "shortcut.xml": "it is a symbolic link, which is never followed",
            "pipe.xml": "it is no regular file"})])
def test_each_entry_not_taken_is_named_once_with_why(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture, lang: str,
        said: dict[str, str]) -> None:
    # A clerk who dropped cases.xml.txt or a folder of files waited forever, unwarned.
    source = open_source(tmp_path, lang=lang)
    fill_inbox(source, tmp_path)
    drop(source, "good.xml", valid(4))
    with caplog.at_level(logging.INFO, LOGGER):
        poll(outbox, source)
        poll(outbox, source)  # a rescan: nothing said again
        source.close()
    found = warnings(caplog)
    assert sorted(file for _, file in found) == sorted(said)
    for text, file in found:
        assert said[file] in text
    assert outbox.record_count() == 1 and names(source.done, "*/*") == ["good.xml"]
    assert names(source.inbox) == sorted([".cases.xml.part", "cases.xml.txt", "march",
                                          "pipe.xml", "shortcut.xml", "~$cases.xml"])
    assert names(source.error) == []  # all left as they are


def test_an_entry_that_goes_and_comes_back_is_named_again(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    source = open_source(tmp_path)
    drop(source, "cases.xml.txt", valid(1))
    (source.inbox / "march").mkdir()
    with caplog.at_level(logging.WARNING, LOGGER):
        poll(outbox, source)
        (source.inbox / "cases.xml.txt").unlink()  # the clerk takes it away ...
        drop(source, "cases.xml.txt", valid(1) + b"\n")  # ... changed but still misnamed
        poll(outbox, source)
        assert sorted(file for _, file in warnings(caplog)) == ["cases.xml.txt", "march"]
        (source.inbox / "cases.xml.txt").unlink()
        poll(outbox, source)  # gone: forgotten
        drop(source, "cases.xml.txt", valid(1))
        (source.inbox / "march").rmdir()
        drop(source, "march", valid(2))  # the folder's name, now a file without .xml
        poll(outbox, source)
        poll(outbox, source)
    assert sorted(file for _, file in warnings(caplog)) == [
        "cases.xml.txt", "cases.xml.txt", "march", "march"]
    assert "does not end in .xml" in warnings(caplog)[-1][0]


def test_a_flood_of_stray_files_is_named_up_to_a_cap_and_counted_in_one_line(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    source = open_source(tmp_path, lang="zh")
    for n in range(WARNINGS_PER_SCAN + 5):
        drop(source, f"case-{n:03d}.txt", b"x")
    with caplog.at_level(logging.WARNING, LOGGER):
        poll(outbox, source)
        poll(outbox, source)  # a rescan: nothing said again, counted or named
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == WARNINGS_PER_SCAN + 1
    assert said[-1].startswith("inbox/ 中另有 5 个条目不会被读取")


def test_a_name_being_written_is_not_named_until_it_settles(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    # A writer writes a temp name and renames it into place: no warning for that.
    options = {"path": drop_path(tmp_path), "stable_seconds": 60, "observer": "none"}
    source = folder_source("drop", options, SourceContext("node-1", "430102", CATALOG, "en"))
    drop(source, "cases.xml.tmp", b"<EXCHANGE")
    drop(source, "left.txt", b"")
    an_hour_ago = time.time() - 3600
    os.utime(source.inbox / "left.txt", (an_hour_ago, an_hour_ago))  # there long before
    with caplog.at_level(logging.WARNING, LOGGER):
        poll(outbox, source)
        poll(outbox, source)
        assert [file for _, file in warnings(caplog)] == ["left.txt"]  # not the fresh one
        # The writer never renamed it: once it last changed long enough ago, it is named
        # (once; a further scan says nothing again).
        os.utime(source.inbox / "cases.xml.tmp", (an_hour_ago, an_hour_ago))
        poll(outbox, source)
        poll(outbox, source)
    assert [file for _, file in warnings(caplog)] == ["left.txt", "cases.xml.tmp"]
    assert "does not end in .xml" in warnings(caplog)[-1][0]


def test_any_case_of_xml_is_read_and_moved_with_its_report(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    # Windows-fed shares name files CASES.XML; design §5 says *.xml, and so they are read.
    source = open_source(tmp_path)
    drop(source, "CASES.XML", valid(1))
    drop(source, "Bad.Xml", b"<not xml")
    with caplog.at_level(logging.WARNING, LOGGER):
        poll(outbox, source)
        drop(source, "CASES.XML", valid(2))  # a second file of the same name
        poll(outbox, source)
    assert warnings(caplog) == []
    assert outbox.record_count() == 2
    assert names(source.done, "*/*") == ["CASES-1.XML", "CASES.XML"]
    assert names(source.error) == ["Bad.Xml", "Bad.Xml" + REPORT_SUFFIX]
    (source.error / "Bad.Xml").write_bytes(valid(3))  # fixed where it lies
    [action] = replay_folder(outbox, "drop", {"path": drop_path(tmp_path)}, "430102")
    assert action.done and names(source.inbox) == ["Bad.Xml"] and names(source.error) == []
    poll(outbox, source)
    assert outbox.record_count() == 3


def test_an_entry_the_share_refuses_to_stat_is_passed_over_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Refusing:
        name = "stale.txt"

        def stat(self, follow_symlinks: bool = True) -> os.stat_result:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))

    (tmp_path / "left.txt").write_bytes(b"")
    passed = PassedOver(0.0, "en", lambda name: {"file": name})
    with caplog.at_level(logging.WARNING, LOGGER):
        with os.scandir(tmp_path) as entries:
            # The refusing entry first: the scan goes on past it to the entries after.
            passed.review([Refusing(), *entries], time.monotonic())  # type: ignore[list-item]
        assert [file for _, file in warnings(caplog)] == ["left.txt"]
        # Passed over, not taken as said: once the share lets it be read, it is named.
        (tmp_path / "stale.txt").write_bytes(b"")
        with os.scandir(tmp_path) as entries:
            passed.review(list(entries), time.monotonic())
    assert [file for _, file in warnings(caplog)] == ["left.txt", "stale.txt"]


def test_a_file_changed_after_the_scan_is_not_claimed_until_it_settles_again(
        tmp_path: Path, outbox: Outbox) -> None:
    """The scan that found it stable may lie minutes back: the files before it were read
    and journaled meanwhile, and its writer may have begun rewriting it in place."""
    options = {"path": drop_path(tmp_path), "stable_seconds": 0, "observer": "none",
               "files_per_chunk": 1}
    source = folder_source("drop", options, SourceContext("node-1", "430102", CATALOG, "en"))
    drop(source, "a.xml", valid(1))
    drop(source, "b.xml", valid(2))
    os.utime(source.inbox / "a.xml", ns=(1, 1))  # oldest first: a.xml is read first
    reading = source.read(outbox.source_state("drop"))
    first = next(reading)
    outbox.journal("drop", first)
    source.commit(first)
    half = valid(3)[:40]
    drop(source, "b.xml", half)  # rewritten in place, and only half there yet
    assert list(reading) == []
    assert names(source.inbox) == ["b.xml"] and names(source.error) == []
    drop(source, "b.xml", valid(3))  # written to the end
    poll(outbox, source)
    assert outbox.record_count() == 2 and outbox.rejects() == []
    assert names(source.done, "*/*") == ["a.xml", "b.xml"]


def test_an_empty_file_waits_for_its_writer_before_it_is_taken(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer creates the file, then stalls: taken at once, it would go to error/ as
    empty while its writer went on filling the moved file there, unread."""
    now = [1000.0]  # the source's monotonic clock, moved by hand
    monkeypatch.setattr(folder_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    options = {"path": drop_path(tmp_path), "stable_seconds": 0, "observer": "none",
               "rescan_seconds": 3600}
    source = folder_source("drop", options, SourceContext("node-1", "430102", CATALOG, "en"))
    drop(source, "late.xml", b"")
    drop(source, "good.xml", valid(1))
    poll(outbox, source)
    assert names(source.inbox) == ["late.xml"] and source.waiting() == 1
    assert source.wait_hint() == 300  # the empty file asks for no busy poll
    drop(source, "late.xml", valid(2))  # the writer goes on
    poll(outbox, source)
    assert outbox.record_count() == 2
    drop(source, "empty.xml", b"")  # one that stays empty is taken in the end
    poll(outbox, source)
    now[0] += 299
    poll(outbox, source)
    assert names(source.inbox) == ["empty.xml"] and source.wait_hint() == 1
    now[0] += 1
    poll(outbox, source)
    assert names(source.error) == ["empty.xml", "empty.xml" + REPORT_SUFFIX]
    report = (source.error / ("empty.xml" + REPORT_SUFFIX)).read_text(encoding="utf-8")
    assert '"empty-file"' in report


def test_an_observer_that_cannot_start_leaves_the_rescans_to_find_the_files(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from watchdog.observers import Observer

    def refuse(self: object) -> None:
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    monkeypatch.setattr(Observer, "start", refuse)
    options = {"path": drop_path(tmp_path), "stable_seconds": 0, "rescan_seconds": 30}
    source = folder_source("drop", options, SourceContext("node-1", "430102", CATALOG, "en"))
    with caplog.at_level(logging.WARNING, LOGGER):
        source.watch(lambda: None)
    [(text, _)] = [(r.getMessage(), r) for r in caplog.records]
    assert "cannot watch inbox/ for file events" in text and "every 30 s" in text
    drop(source, "cases.xml", valid(1))
    poll(outbox, source)
    source.close()
    assert outbox.record_count() == 1


def test_files_dropped_daily_under_one_name_keep_their_rejects_apart(
        tmp_path: Path, outbox: Outbox) -> None:
    """The ledger of rejects goes by file name: the day's daily.xml is claimed under a
    name error/ does not hold, so its valid records settle nothing of yesterday's bad
    one, and its own defects are not taken for yesterday's."""
    source = open_source(tmp_path)
    bad = document([record("SBXX", SBLSH="SB0001"),
                    record("SBXX", SBLSH="SB0002", SBSJ="2026-13-45")])
    drop(source, "daily.xml", bad)
    poll(outbox, source)
    drop(source, "daily.xml", document([record("SBXX", SBLSH="SB0003"),
                                        record("SBXX", SBLSH="SB0004")]))
    poll(outbox, source)
    assert outbox.open_rejects() == 1
    drop(source, "daily.xml", bad.replace(b"SB0001", b"SB0005"))
    poll(outbox, source)
    assert outbox.open_rejects() == 2  # the same defect on the same line: another file
    assert names(source.done, "*/*") == ["daily-1.xml"]
    assert names(source.error, "*.xml") == ["daily-1.xml", "daily.xml"]
    assert sorted(r["origin"] for r in outbox.rejects()) == ["daily-1.xml", "daily.xml"]
    (source.error / "daily.xml").write_bytes(valid(6))  # yesterday's, corrected
    replay_folder(outbox, "drop", {"path": drop_path(tmp_path)}, "430102")
    still_open = outbox._db.execute("SELECT origin FROM rejects WHERE replayed_at IS NULL")
    assert [origin for origin, in still_open] == ["daily-1.xml"]

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

import pytest

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
                                          "pipe.xml", "shortcut.xml"])  # all left as they are


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

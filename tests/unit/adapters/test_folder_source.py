"""The drop-folder source on real files with the real outbox: a name the file system
cannot hold as it is, or a move the system refuses, holds back no other file, and no
record is lost or journaled twice. (The agent around it: tests/integration.)"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sources import folder as folder_module
from adapters.sources.base import SourceContext
from adapters.sources.folder import FolderSource, folder_source
from adapters.sources.folder_files import NAME_BYTES, REPORT_SUFFIX, claimed_name, read_small
from frontend_machine.outbox import Outbox
from schemas.catalog import load_catalog
from schemas.errors import ConfigError
from schemas.reader import DocumentReader
from schemas.record_check import RecordCheck
from tests.unit.adapters.front_rows import poll
from tests.unit.schemas.documents import document, record

CATALOG = load_catalog()
# 90 bytes in GB18030; spelled \xNN as UTF-8 text, 291 bytes: more than NAME_MAX (255).
LONG_GB18030 = ("湖南省长沙市芙蓉区行政审批服务局政务服务办件信息数据导出文件第一批次"
                "（含附件材料清单）").encode("gb18030") + b".xml"
LONG_UTF8 = "湖南省长沙市芙蓉区" * 8 + "办件信息第一批.xml"  # 241 bytes: its report's name is not


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def drop_path(tmp_path: Path) -> str:
    """The drop folder, as the legacy system made it (the source makes only its inbox/,
    processing/, done/ and error/)."""
    folder = tmp_path / "drop"
    folder.mkdir(exist_ok=True)
    return str(folder)


def open_source(tmp_path: Path, lang: str = "en", division: str = "430102") -> FolderSource:
    options = {"path": drop_path(tmp_path), "stable_seconds": 0, "observer": "none"}
    return folder_source("drop", options, SourceContext("node-1", division, CATALOG, lang))


def drop(source: FolderSource, name: str | bytes, content: bytes) -> None:
    with open(os.path.join(os.fsencode(source.inbox), os.fsencode(name)), "wb") as handle:
        handle.write(content)


def valid(n: int) -> bytes:
    return document([record("SBXX", SBLSH=f"SB{n:04d}")])


def names(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


def refuse_rename(monkeypatch: pytest.MonkeyPatch, refused: Callable[[Path], bool]) -> list[Path]:
    """``os.rename`` fails with EPERM for the sources ``refused`` names; returns the tries."""
    tries: list[Path] = []
    rename = os.rename

    def failing(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if refused(Path(src)):
            tries.append(Path(src))
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(src))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    return tries


# -- names --------------------------------------------------------------------------------------

def test_a_long_gb18030_name_is_claimed_under_a_bounded_name(tmp_path: Path,
                                                              outbox: Outbox) -> None:
    source = open_source(tmp_path)
    drop(source, LONG_GB18030, valid(1))
    drop(source, "later.xml", valid(2))
    poll(outbox, source)
    assert outbox.record_count() == 2
    assert names(source.inbox) == [] and names(source.processing) == []
    done = names(source.done, "*/*.xml")
    assert "later.xml" in done
    [claimed] = [name for name in done if name != "later.xml"]
    assert claimed == claimed_name(os.fsdecode(LONG_GB18030))
    assert claimed.startswith("\\xba\\xfe") and claimed.endswith(".xml")
    assert len(claimed.encode()) <= NAME_BYTES


def test_a_long_utf8_name_keeps_its_start_and_gets_its_report(tmp_path: Path,
                                                               outbox: Outbox) -> None:
    source = open_source(tmp_path)
    drop(source, LONG_UTF8, b"<not xml")
    drop(source, "good.xml", valid(1))
    poll(outbox, source)
    assert outbox.record_count() == 1 and names(source.done, "*/*.xml") == ["good.xml"]
    moved = claimed_name(LONG_UTF8)
    assert moved.startswith("湖南省长沙市芙蓉区") and len(moved.encode()) <= NAME_BYTES
    assert names(source.error) == sorted([moved, moved + REPORT_SUFFIX])
    report = json.loads((source.error / (moved + REPORT_SUFFIX)).read_text(encoding="utf-8"))
    assert report["file"] == report["moved_to"] == moved
    assert report["issues"][0]["code"] == "malformed-xml"


def test_long_names_that_share_their_start_stay_apart() -> None:
    first, second = ("长" * 90 + "一.xml"), ("长" * 90 + "二.xml")
    assert claimed_name(first) != claimed_name(second)
    assert claimed_name(first)[:60] == claimed_name(second)[:60]
    assert claimed_name("短.xml") == "短.xml"


# -- moves the system refuses ---------------------------------------------------------------------

def test_a_file_that_cannot_be_claimed_waits_without_holding_back_the_others(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    source = open_source(tmp_path, lang="zh")
    drop(source, "locked.xml", valid(1))
    drop(source, "other.xml", valid(2))
    tries = refuse_rename(monkeypatch, lambda src: src.name == "locked.xml")
    with caplog.at_level(logging.WARNING, "exgate.source.folder"):
        poll(outbox, source)
        assert poll(outbox, source) == 0  # not tried again at once: no hot loop
    assert len(tries) == 1
    assert names(source.done, "*/*.xml") == ["other.xml"] and outbox.record_count() == 1
    assert names(source.inbox) == ["locked.xml"]
    [warning] = [r.getMessage() for r in caplog.records if "locked.xml" in r.getMessage()]
    assert "无法移入 processing/" in warning and "权限" in warning
    assert "（操作不被允许）" in warning and os.strerror(errno.EPERM) not in warning
    monkeypatch.undo()
    drop(source, "locked.xml", valid(1) + b"\n")  # the operator fixes it: it changed
    poll(outbox, source)
    assert names(source.inbox) == [] and outbox.record_count() == 2


def _failing_for(name: str, look: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
    """``look`` (``Path.stat``, ``Path.lstat``) failing with EIO for files named ``name``."""
    def failing(path: Path, *args: Any, **kwargs: Any) -> os.stat_result:
        if path.name == name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return look(path, *args, **kwargs)

    return failing


def test_a_file_that_cannot_be_looked_at_when_claimed_is_said_not_passed_over(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The scan saw it; the look just before its claim failed (a share gone stale): it
    was skipped on every scan with no word, as if gone."""
    source = open_source(tmp_path, lang="en")
    drop(source, "stale.xml", valid(1))
    drop(source, "other.xml", valid(2))
    for name in ("lstat", "stat"):
        monkeypatch.setattr(Path, name, _failing_for("stale.xml", getattr(Path, name)))
    with caplog.at_level(logging.WARNING, "exgate.source.folder"):
        poll(outbox, source)
        assert poll(outbox, source) == 0  # held: not tried again at once
    [warning] = [r.getMessage() for r in caplog.records if "stale.xml" in r.getMessage()]
    assert "processing/" in warning
    assert names(source.inbox) == ["stale.xml"] and outbox.record_count() == 1


def test_a_read_that_fails_is_said_in_the_agent_s_language(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    class FailingReader(DocumentReader):
        def __iter__(self) -> Iterator[RecordCheck]:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(folder_module, "DocumentReader", FailingReader)
    source = open_source(tmp_path, lang="zh")
    drop(source, "share.xml", valid(1))
    with caplog.at_level(logging.WARNING, "exgate.source.folder"):
        poll(outbox, source)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == "读取文件出错：读取时发生输入输出错误"
    assert names(source.error) == ["share.xml", "share.xml.error.json"]


def test_a_journaled_file_that_cannot_be_moved_is_not_read_again(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    source = open_source(tmp_path)
    drop(source, "stuck.xml", valid(1))
    drop(source, "other.xml", valid(2))
    tries = refuse_rename(monkeypatch,
                          lambda src: src.parent.name == "processing" and src.name == "stuck.xml")
    with caplog.at_level(logging.WARNING, "exgate.source.folder"):
        poll(outbox, source)
        assert poll(outbox, source) == 0  # journaled: neither read nor moved again yet
    assert len(tries) == 1
    assert names(source.done, "*/*.xml") == ["other.xml"]
    assert names(source.processing) == ["stuck.xml"] and outbox.record_count() == 2
    assert any("journaled but cannot be moved out of processing/" in r.getMessage()
               and "stuck.xml" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    source.close()
    restarted = open_source(tmp_path)  # after a restart the file is resumed, not doubled
    poll(outbox, restarted)
    assert names(restarted.done, "*/*.xml") == ["other.xml", "stuck.xml"]
    assert names(restarted.processing) == [] and outbox.record_count() == 2


def test_a_report_the_full_disk_refuses_holds_its_file_and_is_written_once_there_is_room(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(folder_module, "_RETRY_SECONDS", 0)  # tried again at the next poll
    source = open_source(tmp_path)
    drop(source, "mixed.xml", document([record("SBXX", SBLSH="SB0001"),
                                        record("SBXX", SBLSH="SB0002", SBSJ="2026-13-45"),
                                        record("SBXX", SBLSH="SB0003")]))
    drop(source, "other.xml", valid(4))
    write_text = Path.write_text

    def no_room(path: Path, *args: Any, **kwargs: Any) -> int:
        if path.parent == source.error:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_text(path, *args, **kwargs)

    with monkeypatch.context() as full, caplog.at_level(logging.WARNING, "exgate.source.folder"):
        full.setattr(Path, "write_text", no_room)
        poll(outbox, source)
    assert names(source.processing) == ["mixed.xml"] and names(source.error) == []
    assert names(source.done, "*/*.xml") == ["other.xml"]
    assert outbox.record_count() == 3  # the good two of mixed.xml, and other.xml's
    assert any("mixed.xml" in r.getMessage() and os.strerror(errno.ENOSPC) in r.getMessage()
               for r in caplog.records)
    poll(outbox, source)  # room again: the report is written, the file moved, none doubled
    assert names(source.processing) == []
    assert names(source.error) == ["mixed.xml", f"mixed.xml{REPORT_SUFFIX}"]
    report = json.loads((source.error / f"mixed.xml{REPORT_SUFFIX}").read_text(encoding="utf-8"))
    assert report["counts"] == {"records": 3, "valid": 2, "invalid": 1, "file_issues": 0}
    assert outbox.record_count() == 3


# -- a file read to the end that comes back -------------------------------------------------------

def refused_by_a_wrong_division(tmp_path: Path, outbox: Outbox) -> Path:
    """A file every record of which a node of another division refused, now in error/."""
    wrong = open_source(tmp_path, division="430200")
    drop(wrong, "cases.xml", document([record("SBXX", SBLSH=f"SB{n:04d}") for n in range(3)]))
    poll(outbox, wrong)
    assert outbox.record_count() == 0 and names(wrong.error, "*.xml") == ["cases.xml"]
    assert outbox.source_state("drop")["done"] is True
    wrong.close()
    return wrong.error / "cases.xml"


def test_a_file_moved_back_to_the_inbox_is_read_in_full(tmp_path: Path, outbox: Outbox) -> None:
    refused = refused_by_a_wrong_division(tmp_path, outbox)
    fixed = open_source(tmp_path)  # the operator fixed [node] division
    os.rename(refused, fixed.inbox / "cases.xml")  # as agent replay --rejects does
    poll(outbox, fixed)
    assert outbox.record_count() == 3
    assert names(fixed.done, "*/*.xml") == ["cases.xml"]


def test_a_file_claimed_again_and_killed_before_its_first_chunk_is_read_in_full(
        tmp_path: Path, outbox: Outbox) -> None:
    refused = refused_by_a_wrong_division(tmp_path, outbox)
    fixed = open_source(tmp_path)
    os.rename(refused, fixed.processing / "cases.xml")  # claimed, then kill -9
    poll(outbox, fixed)
    assert outbox.record_count() == 3
    assert names(fixed.done, "*/*.xml") == ["cases.xml"]


def test_a_file_left_half_read_in_processing_resumes_after_its_journaled_records(
        tmp_path: Path, outbox: Outbox) -> None:
    first = folder_source("drop", {"path": drop_path(tmp_path), "stable_seconds": 0,
                                   "observer": "none", "chunk_records": 2},
                          SourceContext("node-1", "430102", CATALOG, "en"))
    drop(first, "big.xml", document([record("SBXX", SBLSH=f"SB{n:04d}") for n in range(5)]))
    chunks = first.read(outbox.source_state("drop"))
    outbox.journal("drop", next(chunks))  # then kill -9: never committed, never moved
    chunks.close()
    assert outbox.source_state("drop")["done"] is False
    restarted = open_source(tmp_path)
    reads: list[int] = []
    for chunk in restarted.read(outbox.source_state("drop")):
        reads.append(len(chunk.checks))
        assert outbox.journal("drop", chunk).duplicates == 0
        restarted.commit(chunk)
    assert reads == [3] and outbox.record_count() == 5
    assert names(restarted.done, "*/*.xml") == ["big.xml"]


def test_progress_an_older_agent_counted_otherwise_reads_the_file_again_from_its_start(
        tmp_path: Path, outbox: Outbox) -> None:
    """An older agent counted elements under BODY that are no records: resuming after
    its count could skip records it never journaled."""
    source = open_source(tmp_path)
    data = document([record("SBXX", SBLSH=f"SB{n:04d}") for n in range(3)])
    drop(source, "big.xml", data)
    older = {"file": "big.xml", "sha256": hashlib.sha256(data).hexdigest(), "records": 2,
             "done": False}  # no "counting": an older agent's progress
    os.rename(source.inbox / "big.xml", source.processing / "big.xml")
    [chunk] = list(source.read(older))
    assert len(chunk.checks) == 3  # read in full; the outbox drops what it had already


def test_a_file_the_reader_fails_on_goes_to_error_and_the_others_go_through(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A defect in the reader, met on one odd file, once failed the whole source on
    every poll: no other file went through."""
    from schemas.reader import DocumentReader

    parse = DocumentReader._parse

    def failing(reader: DocumentReader, stream: object) -> Iterator[object]:
        if reader.name == "odd.xml":
            raise UnicodeError("a defect met on this file")
        return parse(reader, stream)  # type: ignore[arg-type]

    monkeypatch.setattr(DocumentReader, "_parse", failing)
    source = open_source(tmp_path)
    drop(source, "odd.xml", valid(1))
    drop(source, "other.xml", valid(2))
    with caplog.at_level(logging.ERROR, "exgate.source.folder"):
        poll(outbox, source)
    assert names(source.done, "*/*.xml") == ["other.xml"] and outbox.record_count() == 1
    assert names(source.error) == ["odd.xml", f"odd.xml{REPORT_SUFFIX}"]
    report = json.loads((source.error / f"odd.xml{REPORT_SUFFIX}").read_text(encoding="utf-8"))
    assert "UnicodeError: a defect met on this file" in json.dumps(report, ensure_ascii=False)
    assert any("odd.xml" in str(getattr(r, "file", "")) or "odd.xml" in r.getMessage()
               for r in caplog.records)


def test_the_agent_rescans_the_inbox_every_rescan_seconds_even_between_polls(
        tmp_path: Path, outbox: Outbox) -> None:
    # The example calls rescan_seconds the full rescan period, but the inbox was only
    # scanned at each poll: with observer "none" and a poll period above it, a file
    # waited the whole poll period.
    context = SourceContext("test-node", "430102", load_catalog(), "en")
    source = folder_source("drop", {"path": drop_path(tmp_path), "stable_seconds": 0,
                                    "rescan_seconds": 60, "observer": "none"}, context)
    assert source.wait_hint() == 0.0  # never scanned: scan at once
    poll(outbox, source)
    hint = source.wait_hint()
    # Just scanned: the next rescan is due a full period later (slack for a slow machine).
    assert hint is not None and 50 < hint <= 60


# -- the agent's language -------------------------------------------------------------------------

@pytest.mark.parametrize(("lang", "lines"), [
    (None, ["继续处理上次留在 processing/ 中的文件", "文件已移入 done/", "文件已移入 error/"]),
    ("en", ["resuming file", "file moved to done/", "file moved to error/"]),
])
def test_the_folder_source_logs_in_the_agents_language(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture, lang: str | None,
        lines: list[str]) -> None:
    """Chinese by default (``SourceContext.lang``), English with "en"; the structured
    fields stay as they are."""
    options = {"path": drop_path(tmp_path), "stable_seconds": 0, "observer": "none"}
    context = SourceContext("node-1", "430102", CATALOG)
    if lang is not None:
        context = SourceContext("node-1", "430102", CATALOG, lang)
    source = folder_source("drop", options, context)
    (source.processing / "left.xml").write_bytes(valid(1))  # claimed before a kill -9
    drop(source, "bad.xml", b"<not xml")
    with caplog.at_level(logging.INFO, "exgate.source.folder"):
        poll(outbox, source)
    said = [(r.getMessage(), r.file) for r in caplog.records]  # type: ignore[attr-defined]
    assert said == [(lines[0], "left.xml"), (lines[1], "left.xml"), (lines[2], "bad.xml")]


def test_a_symlink_left_in_processing_is_never_followed(tmp_path: Path, outbox: Outbox) -> None:
    """A writer sharing the drop folder links to a file only the agent may read."""
    source = open_source(tmp_path)
    secret = tmp_path / "node.key"
    secret.write_bytes(valid(2))  # even one that would parse as records
    (source.processing / "evil.xml").symlink_to(secret)
    poll(outbox, source)
    assert outbox.record_count() == 0
    assert names(source.error) == [] and names(source.done, "*/*") == []


def test_a_claimed_file_swapped_for_a_symlink_or_a_pipe_is_refused_not_read(
        tmp_path: Path) -> None:
    secret = tmp_path / "node.key"
    secret.write_bytes(b"secret")
    link = tmp_path / "swapped.xml"
    link.symlink_to(secret)
    with pytest.raises(OSError, match="symbolic link, not a file"):
        read_small(link)
    pipe = tmp_path / "pipe.xml"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match="not a regular file"):
        read_small(pipe)  # and it returns at once: a pipe's open never waits for a writer


def test_a_file_over_max_file_mb_goes_to_error_unread_and_the_others_go_through(
        tmp_path: Path, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    monkeypatch.setattr(folder_module, "read_small",
                        lambda path: read.append(path.name) or read_small(path))
    options = {"path": drop_path(tmp_path), "stable_seconds": 0, "observer": "none",
               "max_file_mb": 1}
    source = folder_source("drop", options, SourceContext("node-1", "430102", CATALOG, "en"))
    small = valid(1)
    big = small.replace(b"</EXCHANGE>", b"<!--" + b" " * (1024 * 1024) + b"--></EXCHANGE>")
    drop(source, "big.xml", big)
    drop(source, "small.xml", small)
    poll(outbox, source)
    assert names(source.done, "*/*.xml") == ["small.xml"] and outbox.record_count() == 1
    assert names(source.error) == ["big.xml", f"big.xml{REPORT_SUFFIX}"]
    report = (source.error / f"big.xml{REPORT_SUFFIX}").read_text(encoding="utf-8")
    assert "file-too-large" in report and str(1024 * 1024) in report
    assert json.loads(report)["sha256"] is None  # unknown, never an empty hash
    assert read == ["small.xml"]  # the big one was neither read nor hashed


@pytest.mark.parametrize("value", [0, 1.5, "10", True])
def test_max_file_mb_must_be_a_whole_number_of_at_least_one(tmp_path: Path,
                                                            value: object) -> None:
    options = {"path": drop_path(tmp_path), "max_file_mb": value}
    with pytest.raises(ConfigError, match=f"'max_file_mb' is {value!r}; it must be a whole "
                                          "number from 1 to 1,000,000,000"):
        folder_source("drop", options, SourceContext("node-1", "430102", CATALOG, "en"))


# -- the drop folder itself ------------------------------------------------------------------


def test_a_drop_folder_that_does_not_exist_is_a_config_error_and_is_not_made(
        tmp_path: Path) -> None:
    """A mistyped ``path`` was made, with its subfolders, and watched empty forever."""
    context = SourceContext("node-1", "430102", CATALOG, "en")
    missing = tmp_path / "nonexistent" / "drop"
    with pytest.raises(ConfigError) as caught:
        folder_source("drop", {"path": str(missing)}, context)
    assert caught.value.message("en") == (
        f"key 'path': the drop folder {missing} does not exist; create it (and have the "
        "legacy system write into its inbox/) or correct 'path'")
    assert caught.value.message("zh") == (
        f"配置项 'path'：投递目录 {missing} 不存在；请创建该目录（并让源系统将文件写入其下的 "
        "inbox/），或改正 'path'")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "drop").write_bytes(b"")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'drop'} is not a folder"):
        folder_source("drop", {"path": str(tmp_path / "drop")}, context)


def test_an_inbox_on_another_file_system_is_a_config_error(tmp_path: Path) -> None:
    """Files are claimed by a rename into processing/: across file systems (EXDEV) it
    failed for every file, and each was held and retried for ever."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    root = Path(drop_path(tmp_path))
    root.mkdir(exist_ok=True)
    share = Path(tempfile.mkdtemp(dir=shm))
    try:
        (root / "inbox").symlink_to(share)  # as a share mounted on inbox/ alone
        with pytest.raises(ConfigError) as caught:
            open_source(tmp_path)
        assert caught.value.message("en").startswith(
            f"key 'path': {root / 'inbox'} and {root / 'processing'} lie on different file "
            "systems (a share mounted on inbox/ alone, say)")
        assert f"请将共享挂载到 {root} 本身" in caught.value.message("zh")
    finally:
        shutil.rmtree(share)


def test_an_existing_drop_folder_gets_its_four_subfolders(tmp_path: Path) -> None:
    open_source(tmp_path)
    assert sorted(p.name for p in (tmp_path / "drop").iterdir()) == \
        ["done", "error", "inbox", "processing"]

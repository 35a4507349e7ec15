"""What ``exgate validate`` reads below a folder, and how it says what it could not read.

A FIFO inside a folder was once opened as a file and reported as empty (or would have
blocked), though named directly it was refused; the reasons a path was not read were
English inside the Chinese report. A folder that could not be listed was skipped in
silence: its files were never checked, and the run passed.
"""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from cli import main
from schemas import columns
from schemas.audit import expand_paths, validate_file
from schemas.audit_report import format_issue
from schemas.issues import Issue, IssueCode
from tests.unit.schemas.documents import document, record


def test_a_fifo_in_a_folder_is_not_read_but_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "good.xml").write_bytes(document([record("SL")]))
    os.mkfifo(tmp_path / "p.xml")
    files, missing = expand_paths([tmp_path])
    assert files == [tmp_path / "good.xml"]
    assert missing == [(tmp_path / "p.xml", "not a regular file or folder")]


def test_a_link_to_a_file_in_a_folder_is_read_as_a_named_one_is(tmp_path: Path) -> None:
    (tmp_path / "good.xml").write_bytes(document([record("SL")]))
    (tmp_path / "link.xml").symlink_to(tmp_path / "good.xml")
    assert expand_paths([tmp_path])[0] == [tmp_path / "good.xml", tmp_path / "link.xml"]


def test_a_folder_that_cannot_be_listed_is_reported_and_fails_the_run(
        tmp_path: Path, deny: Callable[[Path], None]) -> None:
    (tmp_path / "good.xml").write_bytes(document([record("SL")]))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "bad.xml").write_bytes(b"<not-exchange/>")
    deny(locked)
    assert expand_paths([tmp_path]) == ([tmp_path / "good.xml"],
                                        [(locked, os.strerror(errno.EACCES))])
    runner = CliRunner()
    zh = runner.invoke(main, ["validate", str(tmp_path)])
    assert zh.exit_code == 2
    assert f"{locked}: 无法读取：没有读取权限" in zh.stderr
    assert "共检查 1 个文件（合格 1，不合格 0）" in zh.stdout and "无法读取 1 个" in zh.stdout
    deny(tmp_path)  # named itself
    en = runner.invoke(main, ["validate", "--lang", "en", "--format", "json", str(tmp_path)])
    assert en.exit_code == 2
    assert json.loads(en.stdout)["unreadable"] == [
        {"file": str(tmp_path), "reason": os.strerror(errno.EACCES)}]


def test_a_file_that_cannot_be_read_is_reported_and_the_others_are_checked(
        tmp_path: Path, deny: Callable[[Path], None]) -> None:
    """Named on the command line, it stopped the whole run with click's English
    "Path '…' is not readable." before any file was checked."""
    noperm, good = tmp_path / "noperm.xml", tmp_path / "good.xml"
    noperm.write_bytes(document([record("SL")]))
    good.write_bytes(document([record("SL")]))
    deny(noperm)
    runner = CliRunner()
    zh = runner.invoke(main, ["validate", str(noperm), str(good)])
    assert zh.exit_code == 2
    assert f"{noperm}: 无法读取：没有读取权限" in zh.stderr
    assert "共检查 2 个文件（合格 1，不合格 1）" in zh.stdout and "无法读取 1 个" in zh.stdout
    en = runner.invoke(main, ["validate", "--lang", "en", "--format", "json", str(noperm),
                              str(good)])
    assert en.exit_code == 2
    report = json.loads(en.stdout)
    assert (report["files"], report["valid"]) == (2, 1)
    assert report["unreadable"] == [{"file": str(noperm), "reason": os.strerror(errno.EACCES)}]


def test_reasons_for_not_reading_are_in_the_reports_language(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "p.xml")
    gone = tmp_path / "gone.xml"
    runner = CliRunner()
    zh = runner.invoke(main, ["validate", str(tmp_path), str(gone)])
    assert zh.exit_code == 2
    assert f"{tmp_path / 'p.xml'}: 无法读取：不是普通文件或文件夹（如管道、设备），未读取" in zh.output
    assert f"{gone}: 无法读取：文件或文件夹不存在" in zh.output
    en = runner.invoke(main, ["validate", "--lang", "en", "--format", "json", str(gone)])
    assert json.loads(en.stdout)["unreadable"] == [
        {"file": str(gone), "reason": "no such file or folder"}]


def test_a_place_not_known_is_not_printed_as_zero() -> None:
    whole = Issue(IssueCode.EMPTY_FILE, "empty-file", file="a.xml")
    line_only = Issue(IssueCode.WRONG_ROOT, "wrong-root", {"found": "X"}, file="a.xml", line=2)
    both = Issue(IssueCode.MALFORMED_XML, "malformed-xml", {"detail": "d"}, file="a.xml",
                 line=3, column=7)
    assert format_issue(whole, "en").startswith("a.xml: the file is empty")
    assert format_issue(line_only, "en").startswith("a.xml:2: the root must be")
    assert format_issue(both, "en").startswith("a.xml:3:7: the document is not well-formed")


def test_a_line_too_long_to_search_gets_no_column_and_is_never_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written on one line was read whole into memory to find a column (some
    5x its size), and the column found was the first record's tag of that name."""
    monkeypatch.setattr(columns, "_LONGEST_LINE", 200)
    read: list[int] = []

    class Counted(io.TextIOWrapper):
        def readline(self, size: int = -1, /) -> str:
            text = super().readline(size)
            read.append(len(text))
            return text

    monkeypatch.setattr(columns, "io", SimpleNamespace(
        TextIOWrapper=Counted, BytesIO=io.BytesIO, BufferedReader=io.BufferedReader))
    records = [record("SBXX", SBLSH=f"SB{n}") for n in range(3)] + [record("SBXX", TJFS="7")]
    path = tmp_path / "one-line.xml"
    path.write_bytes(document(records).replace(b"\n", b""))
    (issue,) = validate_file(path).issues
    assert (issue.field, issue.line, issue.column) == ("TJFS", 1, None)
    assert max(read) <= 200

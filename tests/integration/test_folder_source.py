"""The drop-folder source with real files and the real agent (``run_once``/``open_agent``)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from frontend_machine.agent import open_agent
from frontend_machine.agent_command import run_once
from frontend_machine.outbox import Outbox
from schemas.checkdigits import credit_code_check_char
from tests.unit.frontend_machine.journaled import batch_fields
from tests.unit.frontend_machine.test_run_once import write_config

HEAD_CODE = "11430102MB" + "9876543"
HEAD_CODE += credit_code_check_char(HEAD_CODE)


def credit_code(number: int) -> str:
    first17 = f"11430102MB{number:07d}"
    return first17 + credit_code_check_char(first17)


def jgxx(number: int, name: str | None = None, *, bad: bool = False) -> str:
    """One JGXX record on one line; ``bad`` breaks its credit code's check character."""
    code = credit_code(number)
    if bad:
        code = code[:17] + ("0" if code[17] != "0" else "1")
    return (f"<JGXX><XZQHDM>430102</XZQHDM><TYSHXYDM>{code}</TYSHXYDM><SJBBH>1</SJBBH>"
            f"<GXSJ>2024-05-01 10:00:00</GXSJ><JGMC>{name or f'芙蓉区机构{number}'}</JGMC></JGXX>")


def document(records: Iterable[str], encoding: str = "UTF-8") -> bytes:
    """An exchange document, one record per line (line n+3 holds record n)."""
    head = (f'<?xml version="1.0" encoding="{encoding}"?>\n'
            '<EXCHANGE xmlns="urn:exgate:exchange:1" version="1">\n'
            f"<HEAD><XZQHDM>430102</XZQHDM><TYSHXYDM>{HEAD_CODE}</TYSHXYDM>"
            "<CREATED>2024-05-01 10:00:00</CREATED></HEAD><BODY>\n")
    text = head + "".join(f"{r}\n" for r in records) + "</BODY></EXCHANGE>\n"
    return text.encode(encoding)


def once(config: Path, lang: str = "zh") -> tuple[int, str]:
    out = io.StringIO()
    code = run_once(config, lang, out=out)
    return code, out.getvalue()


def outbox_rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(tmp_path / "outbox.db")) as db:
        return db.execute(sql).fetchall()


def done_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "drop" / "done").glob("*/*.xml"))


def test_a_file_written_slowly_is_not_taken_half_written(tmp_path: Path) -> None:
    config = write_config(tmp_path, stable_seconds=2.0)
    target = tmp_path / "drop" / "inbox" / "slow.xml"
    content = document(jgxx(i) for i in range(200))
    pieces = [content[i:i + len(content) // 6 + 1] for i in range(0, len(content),
                                                                   len(content) // 6 + 1)]
    with open_agent(config) as agent, target.open("wb") as handle:
        for piece in pieces:
            handle.write(piece)
            handle.flush()
            assert agent.poll_all() == 0, "a growing file must not be claimed"
            assert target.exists() and agent.outbox.record_count() == 0
            time.sleep(0.2)
    with open_agent(config) as agent:
        while not done_files(tmp_path):
            agent.poll_all()
            time.sleep(0.1)
        assert agent.outbox.record_count() == 200
    assert not list((tmp_path / "drop" / "error").iterdir())


def test_a_file_renamed_in_is_taken_and_temp_names_are_not(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    inbox = tmp_path / "drop" / "inbox"
    temp = inbox / ".upload.xml.part"
    temp.write_bytes(document(jgxx(i) for i in range(3)))
    code, _ = once(config)
    assert code == 0 and temp.exists() and not done_files(tmp_path)
    os.rename(temp, inbox / "upload.xml")
    code, report = once(config)
    assert code == 0
    assert [p.name for p in done_files(tmp_path)] == ["upload.xml"]
    assert "新增 3 条" in report and "JGXX" in report


def test_ten_thousand_small_files_are_all_taken(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    inbox = tmp_path / "drop" / "inbox"
    for i in range(10_000):
        (inbox / f"f{i:05}.xml").write_bytes(document([jgxx(i)]))
    code, report = once(config, "en")
    assert code == 0, report
    assert len(done_files(tmp_path)) == 10_000
    assert not list(inbox.iterdir()) and not list((tmp_path / "drop" / "processing").iterdir())
    assert outbox_rows(tmp_path, "SELECT count(DISTINCT record_key) FROM records") == [(10_000,)]
    assert "10000 added" in report


def test_a_gb18030_file_round_trips_chinese_text(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    names = ["长沙市芙蓉区行政审批服务局", "湘江新区䶮𠀀龘办事处", "岳麓区·市场监督管理局（窗口）"]
    data = document((jgxx(i, name) for i, name in enumerate(names)), encoding="GB18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the bytes really are GB18030, not UTF-8
    (tmp_path / "drop" / "inbox" / "gb.xml").write_bytes(data)
    assert once(config)[0] == 0
    with Outbox(tmp_path / "outbox.db") as box:
        [batch] = [b.batch_id for b in box.next_pending_batches(10)]
        stored = [fields["JGMC"] for _, fields in batch_fields(box, batch)]
    assert stored == names


def test_a_utf8_file_labelled_gbk_goes_to_error_and_no_garbled_record_is_taken(
        tmp_path: Path) -> None:
    # Read as declared, its names decoded into other characters and passed.
    config = write_config(tmp_path)
    names = ["长沙市芙蓉区行政审批服务局", "岳麓区市场监督管理局"]
    data = document((jgxx(i, name) for i, name in enumerate(names)), encoding="UTF-8")
    (tmp_path / "drop" / "inbox" / "mis.xml").write_bytes(
        data.replace(b'encoding="UTF-8"', b'encoding="GBK"', 1))
    code, report = once(config, "en")
    assert code == 1
    assert outbox_rows(tmp_path, "SELECT count(*) FROM records") == [(0,)]
    error = tmp_path / "drop" / "error"
    result = json.loads((error / "mis.xml.error.json").read_text(encoding="utf-8"))
    [issue] = result["issues"]
    assert (issue["code"], issue["line"]) == ("encoding-error", 4)  # record 0
    assert "declares the encoding GBK but its bytes are UTF-8" in issue["message"]
    assert (error / "mis.xml").read_bytes().startswith(b'<?xml version="1.0" encoding="GBK"')
    assert "mis.xml:4: the file declares the encoding GBK" in report


def test_three_bad_records_in_a_thousand(tmp_path: Path) -> None:
    config = write_config(tmp_path, chunk_records=128)
    bad = {17, 500, 999}
    (tmp_path / "drop" / "inbox" / "mixed.xml").write_bytes(
        document(jgxx(i, bad=i in bad) for i in range(1000)))
    code, report = once(config)
    assert code == 1
    assert outbox_rows(tmp_path, "SELECT count(*) FROM records") == [(997,)]
    error = tmp_path / "drop" / "error"
    assert (error / "mixed.xml").exists()
    result = json.loads((error / "mixed.xml.error.json").read_text(encoding="utf-8"))
    assert result["counts"] == {"records": 1000, "valid": 997, "invalid": 3, "file_issues": 0}
    assert [(i["line"], i["element"], i["field"], i["code"]) for i in result["issues"]] == [
        (n + 4, "JGXX", "TYSHXYDM", "bad-check-digit") for n in sorted(bad)]
    assert all("校验码" in i["message"] for i in result["issues"])
    lines = (error / "mixed.xml").read_text(encoding="utf-8").splitlines()
    for issue in result["issues"]:  # the column of the field's tag, as validate gives it
        assert lines[issue["line"] - 1][issue["column"] - 1:].startswith("<TYSHXYDM>")
    listed = [line for line in report.splitlines() if "mixed.xml:" in line]
    assert [line.split()[0] for line in listed] == [f"mixed.xml:{n + 4}" for n in sorted(bad)]
    assert outbox_rows(tmp_path, "SELECT count(*) FROM rejects") == [(3,)]


def test_a_file_that_is_not_xml_goes_to_error_with_a_report(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    notes = "这不是 XML，只是一段说明文字。\n".encode()
    (tmp_path / "drop" / "inbox" / "notes.xml").write_bytes(notes)
    code, report = once(config, "en")
    assert code == 1
    error = tmp_path / "drop" / "error"
    result = json.loads((error / "notes.xml.error.json").read_text(encoding="utf-8"))
    [issue] = result["issues"]
    assert issue["code"] == "malformed-xml" and issue["file"] == "notes.xml"
    assert issue["message"].startswith("the document is not well-formed XML")
    assert result["counts"]["file_issues"] == 1 and (error / "notes.xml").exists()
    assert "notes.xml:1: the document is not well-formed XML" in report


def test_a_file_in_processing_at_start_up_is_resumed_exactly_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, chunk_records=100)
    (tmp_path / "drop" / "inbox" / "big.xml").write_bytes(document(jgxx(i) for i in range(350)))
    with open_agent(config) as agent:  # a run that dies after journaling two chunks
        source = agent.sources[0]
        with closing(source.read(agent.outbox.source_state("drop"))) as chunks:
            for _, chunk in zip(range(2), chunks, strict=False):
                agent.outbox.journal("drop", chunk)
    assert [p.name for p in (tmp_path / "drop" / "processing").iterdir()] == ["big.xml"]
    assert outbox_rows(tmp_path, "SELECT count(*) FROM records") == [(200,)]
    code, report = once(config)
    assert code == 0
    assert [p.name for p in done_files(tmp_path)] == ["big.xml"]
    assert outbox_rows(tmp_path, "SELECT count(*), count(DISTINCT record_key) FROM records") \
        == [(350, 350)]
    assert "新增 150 条，重复 0 条" in report  # the first 200 were skipped, not re-read


def test_name_collisions_in_done_keep_both_files(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    inbox = tmp_path / "drop" / "inbox"
    (inbox / "daily.xml").write_bytes(document([jgxx(1)]))
    once(config)
    (inbox / "daily.xml").write_bytes(document([jgxx(2)]))
    once(config)
    assert sorted(p.name for p in done_files(tmp_path)) == ["daily-1.xml", "daily.xml"]
    assert outbox_rows(tmp_path, "SELECT count(*) FROM records") == [(2,)]


def test_the_configs_language_holds_unless_the_command_line_names_one(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + '[agent]\nlang = "en"\n',
                      encoding="utf-8")
    (tmp_path / "drop" / "inbox" / "a.xml").write_bytes(document([jgxx(1)]))
    english = CliRunner().invoke(main, ["agent", "once", "-c", str(config)])
    assert english.exit_code == 0 and "What this run took" in english.output
    chinese = CliRunner().invoke(main, ["agent", "once", "-c", str(config), "--lang", "zh"])
    assert chinese.exit_code == 0 and "本次采集结果" in chinese.output


def test_a_file_name_that_is_not_utf8_does_not_block_the_folder(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    inbox = tmp_path / "drop" / "inbox"
    # A name in GBK bytes (张.xml) beside a plain one: both files' records must arrive.
    (inbox / os.fsdecode(b"\xd5\xc5.xml")).write_bytes(document([jgxx(1)]))
    (inbox / "plain.xml").write_bytes(document([jgxx(2)]))
    code, _ = once(config, "en")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "drop" / "done").glob("*/*.xml")) == [
        "\\xd5\\xc5.xml", "plain.xml"]
    assert outbox_rows(tmp_path, "SELECT count(*) FROM records") == [(2,)]

"""``exgate validate`` keeps at most ``MAX_FILE_ISSUES`` issues of a file and counts
the rest in one closing issue: a file of millions of bad elements once held them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import audit
from tests.unit.schemas.documents import document, record


def test_issues_past_the_cap_are_counted_not_kept(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "MAX_FILE_ISSUES", 5)
    bad = [record("SBXX", SBLSH=f"SB{n}", TJFS="7") for n in range(8)]  # one issue each
    path = tmp_path / "bad.xml"
    path.write_bytes(document([record("SBXX", SBLSH="GOOD"), *bad]))
    result = audit.validate_file(path)
    assert (result.records, result.valid_records) == (9, 1)
    *listed, more = result.issues
    assert len(listed) == 5 and {i.field for i in listed} == {"TJFS"}
    assert (more.code, more.message_id, more.args) == (
        listed[0].code, "more-file-issues", {"count": 3, "shown": 5})
    assert more.message("zh") == "该文件另有 3 个问题未列出（只列出前 5 个）"
    assert more.message("en") == "3 more issues of this file are not listed (the first 5 are)"


def test_a_file_under_the_cap_lists_every_issue(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(document([record("SBXX", SBLSH=f"SB{n}", TJFS="7") for n in range(3)]))
    assert [i.field for i in audit.validate_file(path).issues] == ["TJFS"] * 3

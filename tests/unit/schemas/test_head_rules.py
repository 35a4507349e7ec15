"""The HEAD follows the rules records follow: a GB 32100 check character, a real time
not more than a day ahead.

The XSD alone passed a HEAD whose TYSHXYDM had a wrong check character, or whose
CREATED named 2026-02-30 25:61:00, and such a file validated clean.
"""

from __future__ import annotations

from schemas.reader import DocumentReader
from tests.unit.schemas.documents import ORG, document, record


def head_issues(**head: str) -> list[tuple[str, str | None, str, int | None]]:
    reader = DocumentReader(document([record("SBXX")], head=head), "t.xml")
    checks = list(reader)
    assert [c.valid for c in checks] == [True]  # the records beside a bad HEAD still count
    return [(i.code, i.field, i.element, i.line) for i in reader.issues]


def test_a_good_head_has_no_issues() -> None:
    assert head_issues() == []


def test_a_wrong_check_character_in_the_head_is_reported() -> None:
    wrong = ORG[:-1] + ("0" if ORG[-1] != "0" else "1")
    assert head_issues(TYSHXYDM=wrong) == [("bad-check-digit", "TYSHXYDM", "HEAD", 3)]


def test_a_time_not_on_the_calendar_in_the_head_is_reported() -> None:
    assert head_issues(CREATED="2026-02-30 23:00:00") == [("bad-date", "CREATED", "HEAD", 3)]


def test_a_creation_time_more_than_a_day_ahead_is_reported() -> None:
    assert head_issues(CREATED="2099-01-01 00:00:00") == [
        ("bad-date", "CREATED", "HEAD", 3)]


def test_the_head_issue_names_the_field_in_both_languages() -> None:
    reader = DocumentReader(document([record("SBXX")], head={"CREATED": "2026-02-30 23:00:00"}),
                            "t.xml")
    list(reader)
    [issue] = reader.issues
    assert "CREATED（报文生成时间）" in issue.message("zh")
    assert "is not a real time" in issue.message("en")

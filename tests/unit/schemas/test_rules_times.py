"""Times are real when their Beijing time is on the calendar, whatever form or zone they
are written in: year 1's first hours are as real at +08:00 as in UTC."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from schemas.audit import validate_file
from schemas.catalog import load_catalog
from schemas.rules import canonical_time, normalise_values
from schemas.times import BEIJING, format_time, parse_time
from tests.unit.schemas.documents import document, record


@pytest.mark.parametrize(("text", "beijing"), [
    ("0001-01-01 00:00:00", "0001-01-01 00:00:00"),
    ("00010101000000", "0001-01-01 00:00:00"),
    ("0001-01-01T00:00:00", "0001-01-01 00:00:00"),
    ("0001-01-01T00:00:00+08:00", "0001-01-01 00:00:00"),
    ("0001-01-01T07:59:59+08:00", "0001-01-01 07:59:59"),
    ("0001-01-01T00:00:00.5+08:00", "0001-01-01 00:00:00"),
    ("0001-01-01T00:00:00Z", "0001-01-01 08:00:00"),
])
def test_year_one_is_real_in_every_form(text: str, beijing: str) -> None:
    assert canonical_time(text) == beijing


@pytest.mark.parametrize(("text", "beijing"), [
    ("2026-11-20T09:58:01.250+08:00", "2026-11-20 09:58:01"),
    ("2026-11-20T09:58:01.1234567", "2026-11-20 09:58:01"),
    ("2026-11-20T01:58:01.9Z", "2026-11-20 09:58:01"),
])
def test_a_fraction_of_a_second_is_dropped(text: str, beijing: str) -> None:
    assert canonical_time(text) == beijing


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+09:00",       # 0000-12-31 23:00 in Beijing: before year 1
    "0000-01-01 00:00:00",
    "9999-12-31T23:00:00-05:00",       # after 9999 in Beijing
    "2026-02-29T09:58:01.5+08:00",
    "2026-11-20T09:58:60.5",
    "2026-11-20T09:58:01.5 +08:00",
])
def test_times_off_the_calendar_are_not_real(text: str) -> None:
    assert canonical_time(text) is None


def test_year_one_at_beijing_time_is_no_bad_date(tmp_path: Path) -> None:
    spec = load_catalog().elements["SBXX"]
    latest = datetime(2030, 1, 1, tzinfo=BEIJING)
    for text in ("0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00Z"):
        changes, issues = normalise_values(record("SBXX", SBSJ=text)[1], spec, latest)
        assert issues == [], text
        assert changes["SBSJ"].startswith("0001-01-01 0")
        path = tmp_path / "year1.xml"
        path.write_bytes(document([record("SBXX", SBSJ=text)]))
        assert validate_file(path).issues == (), text


@pytest.mark.parametrize(("text", "beijing"), [
    ("0001-01-01T06:00:00+14:00", "0001-01-01 00:00:00"),
    ("2026-11-24T00:30:00-05:00", "2026-11-24 13:30:00"),
    ("9999-12-31T15:59:59Z", "9999-12-31 23:59:59"),
])
def test_a_zoned_time_is_converted_without_a_detour_through_utc(text: str,
                                                                beijing: str) -> None:
    moment = parse_time(text)
    assert moment is not None and format_time(moment) == beijing


def test_a_zoned_time_past_the_calendar_in_beijing_is_no_time() -> None:
    assert parse_time("9999-12-31T23:00:00-01:00") is None

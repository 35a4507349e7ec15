"""Generated samples: valid as generated, realistic lifecycles, and exactly listed defects."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from schemas.checkdigits import credit_code_valid, resident_id_valid
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.samples import DEFAULT_UNTIL, SampleSet, describe, generate
from schemas.samples.defects import KINDS
from schemas.times import BEIJING
from schemas.writer import Layout

Key = tuple[str, int | None, str | None, str | None, str]


def validate(samples: SampleSet) -> tuple[list[Record], Counter[Key]]:
    """Every valid record, and every issue as (file, line, element, field, code)."""
    records: list[Record] = []
    found: Counter[Key] = Counter()
    for sample in samples.files:
        reader = DocumentReader(sample.path, sample.name)
        for check in reader:
            if check.record is not None:
                records.append(check.record)
            found.update((i.file, i.line, i.element, i.field, str(i.code)) for i in check.issues)
        found.update((i.file, i.line, i.element, i.field, str(i.code)) for i in reader.issues)
        assert reader.records == sample.records
    return records, found


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleSet, list[Record]]:
    samples = generate(tmp_path_factory.mktemp("clean"), cases=300, files=3, seed=11)
    records, found = validate(samples)
    assert found == Counter()
    return samples, records


@pytest.mark.parametrize("encoding", ["UTF-8", "GB18030", "UTF-16"])
def test_every_generated_file_validates_clean(tmp_path: Path, encoding: str) -> None:
    samples = generate(tmp_path, cases=120, files=2, encoding=encoding, seed=3)
    records, found = validate(samples)
    assert found == Counter()
    assert len(records) == samples.records == sum(samples.elements.values())
    for sample in samples.files:
        prolog = sample.path.read_bytes()[:120].decode(encoding)
        assert f"encoding='{encoding}'" in prolog
    assert json.loads(samples.defects_path.read_text("utf-8"))["defects"] == []


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", cases=40, seed=5)
    second = generate(tmp_path / "b", cases=40, seed=5)
    other = generate(tmp_path / "c", cases=40, seed=6)
    assert first.files[0].path.read_bytes() == second.files[0].path.read_bytes()
    assert first.files[0].path.read_bytes() != other.files[0].path.read_bytes()


def test_all_14_elements_occur(clean: tuple[SampleSet, list[Record]]) -> None:
    samples, records = clean
    assert len({r.element for r in records}) == 14
    assert samples.cases == 300 and Counter(r.element for r in records)["SBXX"] == 300


def test_each_case_moves_forward_in_time_and_stays_in_the_past(
    clean: tuple[SampleSet, list[Record]],
) -> None:
    _, records = clean
    until = DEFAULT_UNTIL.replace(tzinfo=BEIJING)
    cases: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if "SBLSH" in r.fields:
            stamp = {"SBXX": "SBSJ", "SL": "SLSJ", "SPGC": "SPSJ", "BJ": "BJSJ", "SF": "SFSJ",
                     "LQDJ": "LQSJ", "YSL": "YSLSJ"}.get(r.element)
            if stamp:
                cases[r.fields["SBLSH"]][r.element].append(r.fields[stamp])
        assert datetime.fromisoformat(r.fields["GXSJ"]).replace(tzinfo=BEIJING) < until
    for serial, times in cases.items():
        order = [times[e] for e in ("SBXX", "YSL", "SL", "SPGC", "BJ", "SF", "LQDJ") if e in times]
        flat = [t for group in order for t in group]
        assert flat == sorted(flat), serial
        assert times["SBXX"][0] < times.get("SL", ["9999"])[0], serial


def test_lifecycles_follow_the_rules_of_the_trade(clean: tuple[SampleSet, list[Record]]) -> None:
    _, records = clean
    items = {r.fields["SXBM"]: r.fields for r in records if r.element == "SXXX"}
    by_case: dict[str, dict[str, Record]] = defaultdict(dict)
    for r in records:
        if r.element in ("SBXX", "SL", "BJ", "SF", "LQDJ"):
            by_case[r.fields["SBLSH"]][r.element] = r
    for case in by_case.values():
        item = items[case["SBXX"].fields["SXBM"]]
        if "SF" in case:
            assert item["SFSF"] == "1" and case["BJ"].fields["BJJG"] in ("0", "6")
        if "LQDJ" in case:
            assert case["BJ"].fields["BJJG"] == "0"
        if "BJ" in case:
            assert case["SL"].fields["SLZT"] in ("1", "3")


def test_identifiers_pass_the_real_checks(clean: tuple[SampleSet, list[Record]]) -> None:
    _, records = clean
    applicants = [r.fields for r in records if r.element == "SBXX"]
    kinds = Counter(f["SQRZJLX"] for f in applicants)
    assert kinds["10"] > 0 and kinds["20"] > 0
    for f in applicants:
        if f["SQRZJLX"] == "10":
            assert resident_id_valid(f["SQRZJHM"])
        if f["SQRZJLX"] == "20":
            assert credit_code_valid(f["SQRZJHM"])


def test_divisions_span_cities_and_counties(clean: tuple[SampleSet, list[Record]]) -> None:
    samples, records = clean
    assert {f.division for f in samples.files} == {"430100", "430200", "430300"}
    counties = {r.division for r in records if not r.division.endswith("00")}
    assert len({c[:4] for c in counties}) == 3 and len(counties) > 10


def test_times_come_in_all_three_notations(tmp_path: Path) -> None:
    samples = generate(tmp_path, cases=30, seed=2)
    text = samples.files[0].path.read_text("utf-8")
    assert "<GXSJ>2026-" in text or "<GXSJ>2025-" in text
    assert "+08:00</GXSJ>" in text
    assert any(f"<GXSJ>{year}" in text and "T" not in text.split(f"<GXSJ>{year}")[1][:14]
               for year in ("2025", "2026"))


@pytest.mark.parametrize(("encoding", "layout"), [
    ("UTF-8", Layout.INDENTED), ("GB18030", Layout.INDENTED), ("UTF-16", Layout.INDENTED),
    ("UTF-8", Layout.COMPACT),
])
def test_reported_issues_equal_the_listed_defects(
    tmp_path: Path, encoding: str, layout: Layout,
) -> None:
    samples = generate(tmp_path, cases=400, files=2, encoding=encoding, invalid_rate=0.15,
                       seed=29, layout=layout)
    listed = json.loads(samples.defects_path.read_text("utf-8"))["defects"]
    expected = Counter((d["file"], d["line"], d["element"], d["field"], d["code"]) for d in listed)
    _, found = validate(samples)
    assert found == expected
    assert {d["code"] for d in listed} == {str(kind) for kind in KINDS}


def test_about_the_requested_share_of_records_is_defective(tmp_path: Path) -> None:
    samples = generate(tmp_path, cases=500, invalid_rate=0.1, seed=8)
    assert 0.07 < len(samples.defects) / samples.records < 0.13


def test_rejects_impossible_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid_rate"):
        generate(tmp_path, invalid_rate=1.5)
    with pytest.raises(ValueError, match="province"):
        generate(tmp_path, province="990000")


def test_describe_in_both_languages(tmp_path: Path) -> None:
    samples = generate(tmp_path, cases=20, invalid_rate=0.2, seed=1)
    zh, en = describe(samples, "zh"), describe(samples, "en")
    applications = samples.elements["SBXX"]  # 20 cases, plus any duplicate-record defects
    assert f"{samples.records:,} 条记录" in zh and f"申办信息 {applications}" in zh
    assert f"注入缺陷 {len(samples.defects)} 处" in zh and "DEFECTS.json" in zh
    assert f"{samples.records:,} records" in en and f"SBXX {applications}" in en


def test_the_cli_command(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["samples", "--out", str(tmp_path), "--cases", "10",
                                  "--encoding", "GB18030", "--seed", "4", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "10 cases" in result.output and len(list(tmp_path.glob("*.xml"))) == 1
    result = runner.invoke(main, ["samples", "--out", str(tmp_path), "--encoding", "EBCDIC-X"])
    assert result.exit_code == 2
    assert "不支持的编码" in result.output

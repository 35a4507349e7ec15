"""``exgate export`` refuses, before it reads or writes anything, what would give an
export that fails its own checks (an ``--org`` that is no credit code) or is empty by
mistake (a ``--division`` outside the level, ``--since`` not before ``--until``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.stores.base import IncomingBatch
from adapters.stores.sql import SqlStore
from cli import main
from gateway.export import ExportQuery, check_query, export_store
from schemas.errors import ConfigError
from schemas.reader import DocumentReader
from schemas.times import BEIJING
from tests.unit.gateway.test_replay import write_config
from tests.unit.schemas.documents import ORG, document, record

PROVINCE = "430000"


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """A province level whose store holds a few records of 430102."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = SqlStore(url)
    store.migrate()
    reader = DocumentReader(document([record("SBXX"), record("SL"), record("SF")]), "t")
    records = [check.record for check in reader if check.record is not None]
    store.write(IncomingBatch("B1", "n1", "430102", "0" * 64, records,
                              datetime.now(BEIJING)))
    store.close()
    yield write_config(tmp_path, url, tmp_path / "registry", PROVINCE)


def export(config: Path, out: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["export", "-c", str(config), "--out", str(out),
                                       *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("org", "zh", "en"), [
    ("1143010081TUD6974X", "--org（HEAD/TYSHXYDM）“1143010081TUD6974X” 的校验码错误（GB 32100）",
     "--org (HEAD/TYSHXYDM) '1143010081TUD6974X' fails the GB 32100 check character"),
    ("abc<&>", "--org（HEAD/TYSHXYDM）“abc<&>” 为 6 位；统一社会信用代码应为 18 位",
     "--org (HEAD/TYSHXYDM) 'abc<&>' has 6 characters"),
    ("12451422mb0173307F", "含有不允许的字符 “m”、“b”", "not allowed: 'm', 'b'"),
], ids=["check-character", "length", "characters"])
def test_an_org_that_is_no_credit_code_is_refused(tmp_path: Path, config: Path, org: str,
                                                  zh: str, en: str) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = export(config, out, "--org", org)
    assert (code, stdout) == (2, "")
    assert stderr.startswith("错误：") and zh in stderr and "或省略 --org" in stderr
    code, _, stderr = export(config, out, "--org", org, "--lang", "en")
    assert code == 2 and en in stderr and "leave --org out" in stderr
    assert not out.exists()  # nothing written


def test_a_division_of_no_province_is_refused(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = export(config, out, "--division", "403102")
    assert code == 2 and "--division '403102' 不是 6 位 GB/T 2260 行政区划代码" in stderr
    code, _, stderr = export(config, out, "--division", "403102", "--lang", "en")
    assert code == 2 and "first two digits are a province's" in stderr
    assert not out.exists()


def test_a_valid_org_heads_every_file(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = export(config, out, "--org", ORG, "--lang", "en")
    assert code == 0 and "exported 3 records" in stdout
    verified = CliRunner().invoke(main, ["audit", "verify", str(out), "--lang", "en"])
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(("level", "division"), [
    (PROVINCE, "440000"), (PROVINCE, "440105"), ("430100", "430000"), ("430100", "430200"),
])
def test_a_division_outside_the_level_is_refused(tmp_path: Path, config: Path, level: str,
                                                 division: str) -> None:
    config.write_text(config.read_text(encoding="utf-8").replace(
        f'division = "{PROVINCE}"', f'division = "{level}"'), encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = export(config, out, "--division", division)
    assert (code, stdout) == (2, "")
    assert f"--division {division} 不在本级行政区划 {level}（网关配置 [level] division）之内" \
        in stderr
    code, _, stderr = export(config, out, "--division", division, "--lang", "en")
    assert code == 2
    assert f"--division {division} lies outside this level's division {level}" in stderr
    assert not out.exists()


@pytest.mark.parametrize("division", ["430000", "430100", "430102"])
def test_a_division_within_the_level_exports(tmp_path: Path, config: Path,
                                             division: str) -> None:
    code, stdout, _ = export(config, tmp_path / "out", "--division", division,
                             "--lang", "en")
    assert code == 0 and "exported 3 records" in stdout


@pytest.mark.parametrize(("since", "until"), [
    ("2026-07-01", "2026-06-01"), ("2026-07-01", "2026-07-01 00:00:00"),
])
def test_since_not_before_until_is_refused(tmp_path: Path, config: Path, since: str,
                                           until: str) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = export(config, out, "--since", since, "--until", until)
    assert (code, stdout) == (2, "")
    assert "不早于 --until" in stderr and "导出将为空" in stderr
    code, _, stderr = export(config, out, "--since", since, "--until", until, "--lang", "en")
    assert code == 2 and "is not before --until" in stderr and "would be empty" in stderr
    assert not out.exists()


def test_export_store_holds_its_callers_to_the_same_checks(tmp_path: Path,
                                                           config: Path) -> None:
    """The function behind the command refuses the same queries (the level aside, which
    only the configuration knows)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", create=False)
    try:
        for query in (ExportQuery(PROVINCE, org="abc"),
                      ExportQuery(PROVINCE, since=datetime(2026, 7, 1),
                                  until=datetime(2026, 6, 1))):
            with pytest.raises(ConfigError):
                export_store(store, query, tmp_path / "out")
            assert not (tmp_path / "out").exists()
    finally:
        store.close()
    check_query(ExportQuery("430102", org=ORG), "430102")
    with pytest.raises(ConfigError, match="outside this level's division 430100"):
        check_query(ExportQuery("430000"), "430100")

"""``exgate audit verify`` names each difference from the manifest in the chosen
language: Chinese by default with no English left in, English with ``--lang en``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from gateway.audit_verify import Mismatch, verify_export
from tests.unit.schemas.documents import document, record

# Words a Chinese line may hold: codes and names of the format, not sentences.
_NAMES = {"MANIFEST", "json", "JSON", "sha", "UTF", "totals", "files", "name",
          "by_element", "SBXX", "xml"}


def handmade(folder: Path, totals: dict[str, Any] | None = None, **entry: Any) -> Path:
    """A one-file export of two SBXX records; ``entry`` overrides the file's entry."""
    folder.mkdir()
    data = document([record("SBXX"), record("SBXX", SBLSH="SB0002")])
    (folder / "a.xml").write_bytes(data)
    listed = {"name": "a.xml", "sha256": hashlib.sha256(data).hexdigest(), "records": 2,
              "by_element": {"SBXX": 2}, **entry}
    manifest: dict[str, Any] = {"files": [listed]}
    if totals is not None:
        manifest["totals"] = totals
    (folder / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def only(folder: Path) -> Mismatch:
    [mismatch] = verify_export(folder).mismatches
    return mismatch


def texts(mismatch: Mismatch) -> tuple[str, str]:
    return mismatch.message("zh"), mismatch.message("en")


def test_a_count_by_element_names_the_element_and_both_counts(tmp_path: Path) -> None:
    mismatch = only(handmade(tmp_path / "x", records=3, by_element={"SBXX": 3}))
    assert (mismatch.code, mismatch.file) == ("count-mismatch", "a.xml")
    assert texts(mismatch) == (
        "记录数与清单不符：记录数: 清单 3，文件 2；SBXX: 清单 3，文件 2",
        "record counts differ from the manifest: records: manifest 3, file 2; "
        "SBXX: manifest 3, file 2")


def test_an_element_the_manifest_leaves_out_counts_as_none(tmp_path: Path) -> None:
    mismatch = only(handmade(tmp_path / "x", by_element={"SBXX": 1, "SL": 1}))
    assert texts(mismatch)[0] == "记录数与清单不符：SBXX: 清单 1，文件 2；SL: 清单 1，文件 0"


def test_totals_name_only_what_differs(tmp_path: Path) -> None:
    totals = {"files": 1, "records": 2, "by_element": {"SBXX": 1, "SL": 1}}
    mismatch = only(handmade(tmp_path / "x", totals=totals))
    assert (mismatch.code, mismatch.file) == ("count-mismatch", "MANIFEST.json")
    assert texts(mismatch) == (
        "清单的 totals 合计与文件不符：SBXX: 清单 1，文件 2；SL: 清单 1，文件 0",
        "totals disagree with the files: SBXX: manifest 1, files 2; SL: manifest 1, files 0")
    broken = only(handmade(tmp_path / "y", totals={"files": "one", "records": 2}))
    assert texts(broken) == (
        "清单的 totals 合计与文件不符：文件数: 清单 \"one\"，文件 1；"
        "各要素记录数: 清单 缺失，文件 {\"SBXX\": 2}",
        "totals disagree with the files: file count: manifest \"one\", files 1; "
        "by_element: manifest missing, files {\"SBXX\": 2}")


def _tampered(folder: Path) -> None:
    (folder / "a.xml").write_bytes((folder / "a.xml").read_bytes().replace(b"SB0002", b"SB0003"))


def _unlisted(folder: Path) -> None:
    (folder / "notes.txt").write_text("x", encoding="utf-8")


def _missing(folder: Path) -> None:
    (folder / "a.xml").unlink()


def _no_manifest(folder: Path) -> None:
    (folder / "MANIFEST.json").unlink()


def _not_json(folder: Path) -> None:
    (folder / "MANIFEST.json").write_text('{"files": [', encoding="utf-8")


def _bad_entry(folder: Path) -> None:
    (folder / "MANIFEST.json").write_text('{"files": [{"name": "../a.xml"}]}',
                                          encoding="utf-8")


@pytest.mark.parametrize(("spoil", "code", "zh", "en"), [
    (_tampered, "sha256-mismatch", "与清单中的", "differs from the manifest's"),
    (_unlisted, "extra-file", "清单中没有列出此文件", "not listed in the manifest"),
    (_missing, "missing-file", "清单列出了此文件，但目录中没有", "listed but absent"),
    (_no_manifest, "bad-manifest", "缺少 MANIFEST.json", "MANIFEST.json is missing"),
    (_not_json, "bad-manifest", "MANIFEST.json 不是有效的 JSON（第 1 行第 12 列）",
     "MANIFEST.json is not valid JSON"),
    (_bad_entry, "bad-manifest", "MANIFEST.json 的 files[0] 无效",
     "MANIFEST.json files[0] is not a valid entry"),
], ids=["sha256", "extra", "missing", "no-manifest", "not-json", "bad-entry"])
def test_every_mismatch_speaks_the_chosen_language(tmp_path: Path, spoil: Any, code: str,
                                                   zh: str, en: str) -> None:
    folder = handmade(tmp_path / "x")
    spoil(folder)
    mismatch = only(folder)
    assert mismatch.code == code
    assert zh in mismatch.message("zh") and en in mismatch.message("en")
    result = CliRunner().invoke(main, ["audit", "verify", str(folder)])
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if f" {code}: " in line]
    sentence = line.split(f" {code}: ", 1)[1]
    assert zh in sentence
    words = re.findall(r"[A-Za-z_]{2,}", re.sub(r"[0-9a-f]{16}…", "", sentence))
    assert set(words) <= _NAMES, sentence
    english = CliRunner().invoke(main, ["audit", "verify", str(folder), "--lang", "en",
                                        "--format", "json"])
    [listed] = json.loads(english.output)["mismatches"]
    assert listed["code"] == code and en in listed["detail"]

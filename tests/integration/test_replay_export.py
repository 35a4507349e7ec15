"""Audit export, manifest verification, the import round trip, and agent-side replay.

Everything runs on SQLite stores and front-end databases in temp folders; the CLI is
run for real (``exgate export``, ``exgate validate``, ``exgate audit verify``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters.frontdb import front_tables
from adapters.frontdb_create import create_all
from adapters.sources.base import Chunk, Origin
from adapters.stores.base import IncomingBatch
from adapters.stores.sql import SqlStore
from adapters.stores.sql_latest import iter_latest
from cli import main
from frontend_machine.outbox import Outbox
from gateway.audit_verify import import_export, verify_export
from gateway.export import ExportQuery, export_store
from schemas.reader import DocumentReader
from schemas.records import Record
from schemas.times import BEIJING
from tests.unit.adapters.front_rows import row
from tests.unit.gateway.test_replay import write_config
from tests.unit.schemas.documents import document, record

EXGATE = str(Path(sys.executable).parent / "exgate")
NOT_COMPARED = {"BATCH_ID", "NODE_ID", "STORED_AT"}
PROVINCE = "430000"


def exgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXGATE, *args], capture_output=True, text=True, timeout=300,
                          check=False)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def read_records(data: Path | bytes) -> list[Record]:
    reader = DocumentReader(data, "test")
    found = [check.record for check in reader if check.record is not None]
    assert reader.records == len(found) and not reader.issues
    return found


def new_version(rec: Record, **changes: str) -> Record:
    version = rec.version + 1
    fields = {**rec.fields, **changes, "SJBBH": str(version)}
    return Record(rec.element, fields, rec.key, version)


def latest_rows(store: SqlStore) -> dict[str, list[dict[str, Any]]]:
    """Every element's latest versions without the delivery columns, sorted."""
    out = {}
    for code in store.schema.elements:
        rows = [{k: (v.normalize() if isinstance(v, Decimal) else v) for k, v in r.items()
                 if k not in NOT_COMPARED} for r in iter_latest(store, code)]
        out[code] = sorted(rows, key=repr)
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    """A province store with 30 generated cases, hand-written fee records and corrections."""
    assert exgate("samples", "--out", str(tmp_path / "samples"), "--cases", "30", "--seed",
                  "7", "--files", "3").returncode == 0
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    opened.migrate()
    now = __import__("datetime").datetime.now(BEIJING)
    for n, file in enumerate(sorted((tmp_path / "samples").glob("*.xml"))):
        recs = read_records(file)
        opened.write(IncomingBatch(f"S{n}", "n1", PROVINCE, f"{n:064d}", recs, now))
    hand = read_records(document([record("SF"), record("SBXX", SBLSH="HAND-1")]))
    corrected = [new_version(r, SQRMC="更正后的申请人") for r in hand if r.element == "SBXX"]
    opened.write(IncomingBatch("H1", "n1", "430100", "h" * 64, hand, now))
    opened.write(IncomingBatch("H2", "n1", "430100", "i" * 64, corrected, now))
    yield opened
    opened.close()


@pytest.fixture
def config(tmp_path: Path, store: SqlStore) -> Path:
    return write_config(tmp_path, store.url.render_as_string(hide_password=False),
                        tmp_path / "registry", PROVINCE)


@pytest.fixture
def exported(tmp_path: Path, config: Path) -> Path:
    out = tmp_path / "export"
    result = exgate("export", "-c", str(config), "--out", str(out),
                    "--max-records-per-file", "100", "--lang", "en")
    assert result.returncode == 0, result.stderr
    assert "exported" in result.stdout
    return out


def test_export_validates_clean_and_verifies(exported: Path, store: SqlStore) -> None:
    manifest = json.loads((exported / "MANIFEST.json").read_text(encoding="utf-8"))
    total = sum(len(rows) for rows in latest_rows(store).values())
    assert manifest["totals"]["records"] == total
    assert len(manifest["files"]) == -(-total // 100) > 1
    assert all(f["records"] <= 100 for f in manifest["files"])
    assert manifest["query"]["division"] == PROVINCE
    validated = exgate("validate", str(exported), "--lang", "en")
    assert validated.returncode == 0, validated.stdout
    verified = exgate("audit", "verify", str(exported), "--lang", "en")
    assert verified.returncode == 0, verified.stdout
    assert "manifest verified" in verified.stdout


def test_export_holds_only_the_latest_version(exported: Path) -> None:
    versions = {}
    for file in sorted(exported.glob("*.xml")):
        for rec in read_records(file):
            assert (rec.element, rec.key_text) not in versions
            versions[(rec.element, rec.key_text)] = rec
    corrected = versions[("SBXX", "HAND-1")]
    assert (corrected.version, corrected.fields["SQRMC"]) == (2, "更正后的申请人")
    assert versions[("SF", "SB0001|JK0001")].fields["SFJE"] == "120.50"


def test_import_round_trip_reproduces_the_latest_records(tmp_path: Path, exported: Path,
                                                         store: SqlStore) -> None:
    empty = SqlStore(f"sqlite:///{tmp_path / 'copy.db'}")
    empty.migrate()
    try:
        result = import_export(exported, empty)
        assert result.stored == result.records > 0
        assert latest_rows(empty) == latest_rows(store)
        assert import_export(exported, empty).stored == 0  # idempotent
    finally:
        empty.close()


def test_manifest_names_a_tampered_a_missing_and_an_extra_file(tmp_path: Path,
                                                                exported: Path) -> None:
    first, second = sorted(exported.glob("*.xml"))[:2]
    cases = {"sha256-mismatch": first.name, "missing-file": second.name,
             "extra-file": "notes.txt"}
    for code, name in cases.items():
        copy = tmp_path / code
        shutil.copytree(exported, copy)
        if code == "sha256-mismatch":
            text = (copy / name).read_text(encoding="utf-8")
            (copy / name).write_text(text.replace("<SJBBH>1</SJBBH>", "<SJBBH>2</SJBBH>", 1),
                                     encoding="utf-8")
        elif code == "missing-file":
            (copy / name).unlink()
        else:
            (copy / name).write_text("not part of the export", encoding="utf-8")
        report = verify_export(copy)
        assert [(m.code, m.file) for m in report.mismatches] == [(code, name)], code
        result = exgate("audit", "verify", str(copy), "--lang", "en")
        assert result.returncode == 1
        assert name in result.stdout and code in result.stdout


def test_a_dropped_record_is_a_count_mismatch(tmp_path: Path, exported: Path) -> None:
    copy = tmp_path / "dropped"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "MANIFEST.json").read_text(encoding="utf-8"))
    entry = manifest["files"][0]
    element = next(iter(entry["by_element"]))
    entry["by_element"][element] += 1
    (copy / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert [m.code for m in verify_export(copy).mismatches] == ["count-mismatch"]


def test_filters_and_empty_folders(tmp_path: Path, store: SqlStore) -> None:
    query = ExportQuery("430102", elements=("SBXX", "SF"), max_records_per_file=7)
    result = export_store(store, query, tmp_path / "county")
    expected = {code: sum(1 for r in iter_latest(store, code) if r["XZQHDM"] == "430102")
                for code in ("SBXX", "SF")}
    assert result.by_element == {k: v for k, v in expected.items() if v}
    assert verify_export(tmp_path / "county").ok
    assert exgate("export", "-c", str(tmp_path / "gateway.toml"), "--out",
                  str(tmp_path / "county")).returncode == 2  # not empty
    late = export_store(store, ExportQuery(PROVINCE, since=__import__("datetime").datetime(
        2100, 1, 1)), tmp_path / "none")
    assert (late.records, late.files) == (0, ())
    assert verify_export(tmp_path / "none").ok


def test_a_county_export_holds_the_whole_store_unless_a_division_is_asked(
        tmp_path: Path) -> None:
    """A county store keeps its city's other counties' records (the gateway accepts them:
    ``within``); an export without --division holds them, with --division it does not.
    A time before year 1000 is written with four digits, so the export re-validates."""
    county = SqlStore(f"sqlite:///{tmp_path / 'county.db'}")
    county.migrate()
    recs = read_records(document([record("SBXX", SBSJ="0202-11-20 09:00:00"),
                                  record("SBXX", SBLSH="SIBLING", XZQHDM="430103")],
                                 head={"XZQHDM": "430102"}))
    now = __import__("datetime").datetime.now(BEIJING)
    county.write(IncomingBatch("C1", "n1", "430102", "c" * 64, recs, now))
    config = write_config(tmp_path, county.url.render_as_string(hide_password=False),
                          tmp_path / "registry", "430102")
    county.close()
    whole, own = tmp_path / "whole", tmp_path / "own"
    assert exgate("export", "-c", str(config), "--out", str(whole)).returncode == 0
    assert exgate("export", "-c", str(config), "--out", str(own), "--division",
                  "430102").returncode == 0
    exported = {path: sorted(r.key_text for f in sorted(path.glob("*.xml"))
                             for r in read_records(f)) for path in (whole, own)}
    assert exported == {whole: ["SB0001", "SIBLING"], own: ["SB0001"]}
    [early] = [r for r in read_records(next(own.glob("*.xml")))]
    assert early.fields["SBSJ"] == "0202-11-20 09:00:00"
    for path in (whole, own):
        verified = exgate("audit", "verify", str(path), "--lang", "en")
        assert verified.returncode == 0, verified.stdout
    manifest = json.loads((whole / "MANIFEST.json").read_text(encoding="utf-8"))
    assert manifest["query"]["whole_store"] is True


@pytest.mark.parametrize("where", ["file", "totals"])
def test_a_manifest_whose_record_counts_disagree_is_a_mismatch(
        tmp_path: Path, exported: Path, where: str) -> None:
    copy = tmp_path / "edited"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "MANIFEST.json").read_text(encoding="utf-8"))
    if where == "file":
        manifest["files"][0]["records"] += 500
    else:
        manifest["totals"]["records"] += 500
    (copy / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    [mismatch] = verify_export(copy).mismatches
    named = manifest["files"][0]["name"] if where == "file" else "MANIFEST.json"
    assert (mismatch.code, mismatch.file) == ("count-mismatch", named)
    assert exgate("audit", "verify", str(copy)).returncode == 1


# -- the agent side ----------------------------------------------------------------------


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    """A node's agent config, after its first run."""
    front = f"sqlite:///{tmp_path / 'front.db'}"
    create_all(front)
    (tmp_path / "drop").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(
        '[node]\nid = "n1"\ndivision = "430102"\n'
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        f'[[sources]]\nkind = "folder"\nname = "drop"\npath = "{tmp_path / "drop"}"\n'
        f'[[sources]]\nkind = "db"\nname = "front"\nurl = "{front}"\n'
        'tables = ["SBXX"]\n', encoding="utf-8")
    Outbox(tmp_path / "outbox.db").close()  # the agent has run: replay never makes one
    return config


def failed_batch(outbox_path: Path) -> str:
    with Outbox(outbox_path) as box:
        check = next(iter(DocumentReader(document([record("SBXX")]), "x")))
        box.journal("drop", Chunk(((Origin("drop", "a.xml", 5), check),)))
        [batch_id] = box.seal_batches(100, 1 << 20, 0)
        box.mark_sent(batch_id)
        box.record_receipt(batch_id, "province", "failed", reasons=["unknown-node: n1"])
        box.record_receipt(batch_id, "city", "stored", stored_count=1)
    return batch_id


def test_agent_requeues_a_failed_batch(tmp_path: Path, agent: Path) -> None:
    batch_id = failed_batch(tmp_path / "outbox.db")
    code, out = invoke("agent", "batches", "-c", str(agent), "--json")
    [shown] = json.loads(out)["batches"]
    assert (code, shown["state"]) == (0, "failed")
    assert shown["receipts"]["province"]["reasons"] == ["unknown-node: n1"]
    assert invoke("agent", "replay", "-c", str(agent), "--all-failed", "--dry-run")[0] == 0
    with Outbox(tmp_path / "outbox.db") as box:
        assert box.batch(batch_id).state.value == "failed"  # type: ignore[union-attr]
    code, out = invoke("agent", "replay", "-c", str(agent), batch_id, "--lang", "en")
    assert code == 0 and "requeued" in out
    with Outbox(tmp_path / "outbox.db") as box:
        assert box.batch(batch_id).state.value == "pending"  # type: ignore[union-attr]
        assert [r["level"] for r in box.receipts_of(batch_id)] == ["city"]
    assert invoke("agent", "replay", "-c", str(agent), batch_id)[0] == 1  # not failed now


def test_agent_readmits_a_corrected_drop_file(tmp_path: Path, agent: Path) -> None:
    error = tmp_path / "drop" / "error"
    error.mkdir(parents=True)
    bad = document([record("SBXX", TJFS="7")])
    (error / "f.xml").write_bytes(bad)
    (error / "f.xml.error.json").write_text("{}", encoding="utf-8")
    code, out = invoke("agent", "replay", "-c", str(agent), "--rejects", "--lang", "en")
    assert code == 1 and "f.xml: still invalid" in out
    (error / "f.xml").write_bytes(document([record("SBXX")]))
    assert invoke("agent", "replay", "-c", str(agent), "--rejects", "--dry-run")[0] == 0
    assert (error / "f.xml").exists()
    code, out = invoke("agent", "replay", "-c", str(agent), "--rejects", "--lang", "en")
    assert code == 0, out
    assert (tmp_path / "drop" / "inbox" / "f.xml").exists()
    assert not (error / "f.xml").exists() and not (error / "f.xml.error.json").exists()


def test_a_drop_file_outside_the_node_stays_in_error(tmp_path: Path, agent: Path) -> None:
    error = tmp_path / "drop" / "error"
    error.mkdir(parents=True)
    # Valid on its own (the HEAD's province contains it), but outside node 430102's city.
    elsewhere = document([record("SBXX", XZQHDM="430203")], head={"XZQHDM": "430000"})
    (error / "f.xml").write_bytes(elsewhere)
    code, out = invoke("agent", "replay", "-c", str(agent), "--rejects", "--lang", "en")
    assert code == 1 and "f.xml: still invalid" in out
    assert (error / "f.xml").exists() and not (tmp_path / "drop" / "inbox" / "f.xml").exists()


def test_agent_resets_a_corrected_database_row(tmp_path: Path, agent: Path) -> None:
    table = front_tables("sqlite").elements["SBXX"]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'front.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [row("SBXX", 1) | {"TJFS": "7", "SYNC_FLAG": 2,
                                                            "SYNC_MSG": "TJFS bad"}])
        code, out = invoke("agent", "replay", "-c", str(agent), "--rejects", "--lang", "en")
        assert code == 1 and "still invalid" in out and "TJFS" in out
        with engine.begin() as conn:
            conn.execute(table.update().values(TJFS="1"))
        assert invoke("agent", "replay", "-c", str(agent), "--rejects", "--dry-run")[0] == 0
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.SYNC_FLAG)).scalar_one() == 2
        assert invoke("agent", "replay", "-c", str(agent), "--rejects")[0] == 0
        with engine.connect() as conn:
            flag, msg = conn.execute(sa.select(table.c.SYNC_FLAG, table.c.SYNC_MSG)).one()
        assert (flag, msg) == (0, None)
    finally:
        engine.dispose()


# -- audit verify on hostile folders ---------------------------------------------------------


def handmade_export(folder: Path, **entry: Any) -> Path:
    """A one-file export written by hand; ``entry`` overrides the manifest's file entry."""
    folder.mkdir()
    data = document([record("SBXX")])
    (folder / "a.xml").write_bytes(data)
    listed = {"name": "a.xml", "sha256": hashlib.sha256(data).hexdigest(),
              "by_element": {"SBXX": 1}, **entry}
    (folder / "MANIFEST.json").write_text(json.dumps({"files": [listed]}), encoding="utf-8")
    return folder


def test_a_handmade_export_verifies(tmp_path: Path) -> None:
    assert verify_export(handmade_export(tmp_path / "ok")).ok


@pytest.mark.parametrize("entry", [
    {"by_element": {"SBXX": "one"}}, {"by_element": {"SBXX": None}},
    {"by_element": {"SBXX": -1}}, {"name": "../etc/passwd"}, {"name": "/etc/passwd"},
    {"name": ".."}, {"sha256": 1},
])
def test_a_malformed_manifest_is_a_mismatch_not_a_traceback(tmp_path: Path,
                                                            entry: dict[str, Any]) -> None:
    folder = handmade_export(tmp_path / "bad", **entry)
    assert [m.code for m in verify_export(folder).mismatches] == ["bad-manifest"]
    code, out = invoke("audit", "verify", str(folder), "--lang", "en")
    assert code == 1 and "bad-manifest" in out


def test_files_are_never_read_through_a_link(tmp_path: Path) -> None:
    # A listed file that links elsewhere (another folder, /dev/zero, a FIFO) is not the
    # export's own content, and reading it could leave the folder or never end.
    folder = handmade_export(tmp_path / "linked")
    (folder / "a.xml").rename(tmp_path / "elsewhere.xml")
    (folder / "a.xml").symlink_to(tmp_path / "elsewhere.xml")
    assert [(m.code, m.file) for m in verify_export(folder).mismatches] \
        == [("missing-file", "a.xml")]
    (folder / "MANIFEST.json").rename(tmp_path / "MANIFEST.json")
    (folder / "MANIFEST.json").symlink_to(tmp_path / "MANIFEST.json")
    assert [m.code for m in verify_export(folder).mismatches] == ["bad-manifest"]

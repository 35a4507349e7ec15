"""The outbox journal: exactly-once, duplicates, conflicts, atomic progress, batching, budget."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from adapters.sealing import generate_node_keys
from adapters.sources.base import Chunk, Origin
from frontend_machine import outbox_schema
from frontend_machine.envelope import NodeIdentity, batch_document
from frontend_machine.heartbeat import Heartbeat, heartbeat_body
from frontend_machine.outbox import Outbox, OutboxBroken
from frontend_machine.outbox_batches import BatchState, Depth, plan_batches
from frontend_machine.outbox_connection import mapped
from frontend_machine.outbox_schema import _V1, _V2, SCHEMA_VERSION, configure, migrate
from frontend_machine.replay import requeue_batches
from schemas.errors import RetriableError
from schemas.issues import Issue, IssueCode
from schemas.record_check import RecordCheck
from schemas.records import Record
from schemas.times import BEIJING
from schemas.writer import document_bytes
from tests.unit.frontend_machine.journaled import batch_fields
from tests.unit.schemas.documents import record as document_record


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def record(key: str, version: int = 1, name: str = "芙蓉区行政审批服务局",
           element: str = "SBXX", line: int | None = 7) -> Record:
    """A record the writer accepts (payloads are its XML); ``name`` is SBXX's SQRMC;
    ``line`` None for a database row's."""
    _, fields = document_record(element, SBLSH=key, SJBBH=str(version))
    if element == "SBXX":
        fields["SQRMC"] = name
    return Record(element, fields, (key,), version, line)


def valid(*records: Record) -> tuple[tuple[Origin, RecordCheck], ...]:
    return tuple((Origin("src", "EX_SBXX#1", r.line), RecordCheck(r.element, r.line, r, ()))
                 for r in records)


def invalid(line: int) -> tuple[Origin, RecordCheck]:
    issue = Issue(IssueCode.MISSING_FIELD, "missing-field",
                  {"field": "SBLSH", "label": "申办流水号"}, "SBXX", "SBLSH", "a.xml", line)
    return Origin("src", "a.xml", line), RecordCheck("SBXX", line, None, (issue,))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db", clock=clock) as box:
        yield box


def test_records_rejects_and_progress_are_journaled(outbox: Outbox) -> None:
    chunk = Chunk((*valid(record("A"), record("B")), invalid(9)), {"seq": 2})
    result = outbox.journal("src", chunk)
    assert (result.added, result.duplicates, result.rejected, result.conflicts) == (2, 0, 1, 0)
    assert result.by_element["SBXX"]["added"] == 2
    assert outbox.source_state("src") == {"seq": 2}
    assert outbox.source_state("other") == {}
    assert outbox.record_count() == 2
    [reject] = outbox.rejects()
    assert (reject["origin"], reject["line"], reject["issues"][0]["code"]) == (
        "a.xml", 9, "missing-field")


def test_a_redelivered_chunk_is_journaled_exactly_once(outbox: Outbox) -> None:
    chunk = Chunk((*valid(record("A"), record("B")), invalid(9)), {"seq": 2})
    outbox.journal("src", chunk)
    again = outbox.journal("src", chunk)  # the agent died before source.commit
    assert (again.added, again.duplicates) == (0, 2)
    assert outbox.record_count() == 2
    assert len(outbox.rejects()) == 1


def test_a_chunk_of_several_elements_is_tallied_per_element(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A"), record("B", element="SF"))))
    result = outbox.journal("src", Chunk(valid(record("A"), record("C"), record("B", element="SF"),
                                               record("D", element="SF"))))
    assert (result.added, result.duplicates) == (2, 2)
    assert result.by_element == {"SBXX": {"added": 1, "duplicates": 1, "conflicts": 0},
                                 "SF": {"added": 1, "duplicates": 1, "conflicts": 0}}


def test_a_chunk_of_one_element_counts_duplicates_within_it(outbox: Outbox) -> None:
    result = outbox.journal("src", Chunk(valid(record("A"), record("A"), record("B"))))
    assert result.by_element == {"SBXX": {"added": 2, "duplicates": 1, "conflicts": 0}}


def test_rejects_without_a_line_or_element_are_journaled_once(outbox: Outbox) -> None:
    """A database row has no line and a file-level issue no element; SQLite's UNIQUE
    treats those NULLs as distinct, so this once journaled them again after a crash."""
    issue = Issue(IssueCode.MISSING_FIELD, "missing-head", {}, None, "HEAD")
    row = (Origin("db", "EX_SBXX#7"), RecordCheck("SBXX", None, None, (issue,)))
    chunk = Chunk((row,), {"seq": 7}, file_issues=(issue.located(file="bad.xml"),))
    outbox.journal("db", chunk)
    outbox.journal("db", chunk)  # the agent died before source.commit
    assert sorted(r["origin"] for r in outbox.rejects()) == ["EX_SBXX#7", "bad.xml"]


def test_same_key_and_version_with_other_content_is_kept_as_conflict(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A", name="甲"))))
    result = outbox.journal("src", Chunk(valid(record("A", name="乙"), record("A", 2))))
    assert (result.added, result.duplicates, result.conflicts) == (2, 0, 1)
    assert outbox.record_count() == 3


def test_chinese_text_round_trips(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A", name="湖南省长沙市芙蓉区𠀀"))))
    [batch] = outbox.seal_batches(100, 1 << 20, 0)
    [back] = batch_fields(outbox, batch)
    assert back == ("SBXX", dict(record("A", name="湖南省长沙市芙蓉区𠀀").fields))


def test_progress_and_records_commit_together_or_not_at_all(
        outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox.journal("src", Chunk(valid(record("A")), {"seq": 1}))

    def crash(*args: object) -> None:
        raise OSError("disk vanished while saving progress")

    monkeypatch.setattr(outbox, "_save_state", crash)
    with pytest.raises(OSError):
        outbox.journal("src", Chunk((*valid(record("B"), record("C")), invalid(3)), {"seq": 3}))
    monkeypatch.undo()
    assert outbox.record_count() == 1
    assert outbox.source_state("src") == {"seq": 1}
    assert outbox.rejects() == []
    # The source replays the chunk after the failure: now it all goes in.
    result = outbox.journal("src", Chunk(valid(record("B"), record("C")), {"seq": 3}))
    assert result.added == 2 and outbox.source_state("src") == {"seq": 3}


def test_unserialisable_progress_rolls_back_the_records(outbox: Outbox) -> None:
    with pytest.raises(TypeError):
        outbox.journal("src", Chunk(valid(record("A")), {"cursor": object()}))
    assert outbox.record_count() == 0


def test_a_second_connection_sees_only_committed_chunks(tmp_path: Path, outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A")), {"seq": 1}))
    reader = sqlite3.connect(tmp_path / "outbox.db")
    try:
        assert reader.execute("SELECT count(*) FROM records").fetchone()[0] == 1
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        reader.close()


def test_batches_are_cut_by_record_count_in_journal_order(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(*(record(f"K{i:03}") for i in range(25)))))
    sealed = outbox.seal_batches(10, 1 << 30, linger_seconds=60)
    assert len(sealed) == 2  # the trailing 5 wait for the linger time
    keys = [fields["SBLSH"] for batch in sealed for _, fields in batch_fields(outbox, batch)]
    assert keys == [f"K{i:03}" for i in range(20)]
    assert outbox.depth().unbatched_records == 5


def test_the_trailing_batch_is_sealed_after_linger(outbox: Outbox, clock: FakeClock) -> None:
    outbox.journal("src", Chunk(valid(record("A"), record("B"))))
    assert outbox.seal_batches(10, 1 << 30, linger_seconds=5) == []
    clock.now += 5
    [batch] = outbox.seal_batches(10, 1 << 30, linger_seconds=5)
    info = outbox.batch(batch)
    assert info is not None and info.record_count == 2 and info.state is BatchState.PENDING
    assert outbox.seal_batches(10, 1 << 30, linger_seconds=0) == []


def test_batches_are_cut_by_bytes() -> None:
    rows = [(seq, 400, 0.0) for seq in range(1, 11)]
    groups = plan_batches(rows, max_records=100, max_bytes=1000, now=0.0, linger=0.0)
    assert [g.count for g in groups] == [2, 2, 2, 2, 2]
    huge = plan_batches([(1, 5000, 0.0), (2, 10, 0.0)], 100, 1000, now=0.0, linger=1.0)
    assert [g.count for g in huge] == [1]  # an oversized record travels alone; 1 lingers


def test_batch_lifecycle_pending_sent_stored(outbox: Outbox, clock: FakeClock) -> None:
    outbox.journal("src", Chunk(valid(record("A"))))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    clock.now += 3
    assert outbox.oldest_pending_age() == 3
    assert [b.batch_id for b in outbox.next_pending_batches(5)] == [batch]
    outbox.mark_unsent(batch, "connection reset")
    outbox.mark_sent(batch)
    # Sent, but not stored everywhere yet: it still counts as waiting, and ages.
    assert outbox.next_pending_batches(5) == [] and outbox.oldest_pending_age() == 3
    outbox.mark_stored(batch, "county", 1)
    outbox.mark_stored(batch, "city", 1)
    assert outbox.batch(batch).state is BatchState.SENT  # type: ignore[union-attr]
    outbox.mark_stored(batch, "province", 1)
    info = outbox.batch(batch)
    assert info is not None and info.state is BatchState.STORED and info.attempts == 2
    assert outbox.oldest_pending_age() is None


def test_a_failed_level_fails_the_batch_until_requeued(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A"))))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    outbox.mark_sent(batch)
    outbox.mark_stored(batch, "province")
    outbox.mark_failed(batch, "store down", level="city")
    assert outbox.batch(batch).state is BatchState.FAILED  # type: ignore[union-attr]
    assert outbox.depth().failed_batches == 1
    assert outbox.requeue([batch]) == 1
    assert [b.batch_id for b in outbox.next_pending_batches(5)] == [batch]


def test_a_later_failed_receipt_leaves_a_stored_batch_stored(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A"))))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    outbox.mark_sent(batch)
    for level in ("province", "city", "county"):
        outbox.mark_stored(batch, level, 1)
    state = outbox.record_receipt(batch, "city", "failed", failed_count=1,
                                  reasons=["a resend with other content"])
    assert state is BatchState.STORED
    assert outbox.batch(batch).state is BatchState.STORED  # type: ignore[union-attr]
    assert {r["level"]: r["status"] for r in outbox.receipts_of(batch)} == {
        "province": "stored", "city": "stored", "county": "stored"}


def sent(outbox: Outbox) -> str:
    outbox.journal("src", Chunk(valid(record("A"))))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    outbox.mark_sent(batch)
    return batch


def receipts(outbox: Outbox, batch: str) -> dict[str, str]:
    return {r["level"]: r["status"] for r in outbox.receipts_of(batch)}


def test_a_refusal_the_level_takes_back_by_storing_leaves_the_batch_sent(
        outbox: Outbox) -> None:
    # The province refused the batch (node disabled), then stored it on its own replay:
    # the batch stayed failed, "failed at province", and --all-failed sent it again.
    batch = sent(outbox)
    outbox.mark_failed(batch, "node-disabled", level="province")
    assert outbox.batch(batch).state is BatchState.FAILED  # type: ignore[union-attr]
    outbox.mark_stored(batch, "province", 1)
    info = outbox.batch(batch)
    assert info is not None and info.state is BatchState.SENT
    assert info.last_error is None and info.finished_at is None
    assert receipts(outbox, batch) == {"province": "stored"}
    assert requeue_batches(outbox, [], all_failed=True, dry_run=True) == []
    assert outbox.depth() == Depth(0, 1, 0, 0)  # still waiting for city and county
    outbox.mark_stored(batch, "city", 1)
    assert outbox.record_receipt(batch, "county", "stored", stored_count=1) is BatchState.STORED


def test_an_older_refusal_arriving_after_the_levels_stored_receipt_changes_nothing(
        outbox: Outbox) -> None:
    batch = sent(outbox)
    outbox.mark_stored(batch, "province", 1)
    state = outbox.record_receipt(batch, "province", "failed", failed_count=1,
                                  reasons=["node-disabled"])
    assert state is BatchState.SENT
    info = outbox.batch(batch)
    assert info is not None and info.state is BatchState.SENT and info.last_error is None
    assert receipts(outbox, batch) == {"province": "stored"}
    outbox.mark_stored(batch, "city", 1)
    outbox.mark_stored(batch, "county", 1)
    assert outbox.batch(batch).state is BatchState.STORED  # type: ignore[union-attr]


def test_a_batch_stays_failed_while_any_level_still_refuses_it(outbox: Outbox) -> None:
    batch = sent(outbox)
    outbox.mark_failed(batch, "node-disabled", level="province")
    outbox.mark_failed(batch, "node-disabled", level="city")
    assert outbox.record_receipt(batch, "province", "stored") is BatchState.FAILED
    assert outbox.batch(batch).last_error == "failed at city"  # type: ignore[union-attr]
    assert outbox.record_receipt(batch, "city", "stored") is BatchState.SENT


def test_a_batch_the_publisher_could_not_build_stays_failed_on_a_late_receipt(
        outbox: Outbox) -> None:
    batch = sent(outbox)
    outbox.mark_failed(batch, "cannot build the batch message: bad key")
    assert outbox.record_receipt(batch, "province", "stored") is BatchState.FAILED
    info = outbox.batch(batch)
    assert info is not None and info.last_error == "cannot build the batch message: bad key"


def test_a_failed_batch_whose_payloads_are_gone_is_not_requeued(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A"))))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    outbox.mark_sent(batch)
    outbox.mark_failed(batch, "store down", level="city")
    outbox._db.execute("UPDATE records SET payload = NULL")  # as an old compact() left it
    assert outbox.payloads_gone(batch)
    assert outbox.requeue([batch]) == 0
    assert outbox.batch(batch).state is BatchState.FAILED  # type: ignore[union-attr]
    [action] = requeue_batches(outbox, [batch], lang="en")
    assert not action.done and "payloads are gone" in action.detail


def test_a_city_node_needs_two_levels(tmp_path: Path) -> None:
    with Outbox(tmp_path / "city.db", levels=("province", "city")) as box:
        box.journal("src", Chunk(valid(record("A"))))
        [batch] = box.seal_batches(10, 1 << 20, 0)
        box.mark_sent(batch)
        box.mark_stored(batch, "province")
        box.mark_stored(batch, "city")
        assert box.batch(batch).state is BatchState.STORED  # type: ignore[union-attr]


def test_over_budget_drops_nothing_and_stored_records_keep_identity(
        tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", budget_bytes=256 * 1024, clock=clock) as box:
        assert not box.over_budget()
        big = "长" * 2000
        for start in range(0, 200, 50):
            box.journal("src", Chunk(valid(*(record(f"K{i}", name=big) for i in range(start,
                                                                                    start + 50)))))
        assert box.over_budget()
        # Over budget never means dropping: every record is still there.
        assert box.record_count() == 200
        sealed = box.seal_batches(1000, 1 << 30, 0)
        for batch in sealed:
            box.mark_sent(batch)
            for level in ("province", "city", "county"):
                box.mark_stored(batch, level)
        box.make_room(keep_stored_seconds=86400)  # forgets nothing yet
        assert not box.over_budget()  # the stored batches' payloads went
        again = box.journal("src", Chunk(valid(record("K1", name=big))))
        assert again.duplicates == 1  # identity survives compaction


def test_schema_version_is_recorded_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox(path).close()
    with Outbox(path) as box:
        box.journal("src", Chunk(valid(record("A")), {"seq": 1}))
    with Outbox(path) as box:
        assert box.source_state("src") == {"seq": 1}
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM schema_meta WHERE key='version'").fetchone() == (
            str(SCHEMA_VERSION),)
    finally:
        db.close()


def test_a_version_1_outbox_with_duplicate_rejects_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        configure(db)
        db.executescript(_V1 + "; INSERT INTO schema_meta (key, value) VALUES ('version', '1');")
        for _ in range(2):
            db.execute("INSERT INTO rejects (source, origin, line, element, issues, digest,"
                       " rejected_at) VALUES ('db', 'EX_SL#1', NULL, 'SL', '[]', 'd', 0)")
    finally:
        db.close()
    with Outbox(path) as box:
        assert [r["origin"] for r in box.rejects()] == ["EX_SL#1"]


def test_version_2_json_payloads_become_the_xml_the_publisher_sent(tmp_path: Path) -> None:
    """A batch sealed before the upgrade is sent again byte for byte after it (the
    gateways take a resend with another sha256 for a reused batch ID)."""
    path = tmp_path / "o.db"
    old = [record("A", name="甲 & <乙>"), record("B", element="SF")]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        configure(db)
        db.executescript(_V1 + ";" + _V2 +
                         "; INSERT INTO schema_meta (key, value) VALUES ('version', '2');")
        db.execute("INSERT INTO batches (batch_id, state, created_at, record_count, bytes)"
                   " VALUES ('B1', 'sent', 0, 2, 10)")
        for r in old:
            payload = json.dumps({"key": r.key, "fields": dict(r.fields)}, ensure_ascii=False,
                                 sort_keys=True)
            db.execute("INSERT INTO records (element, record_key, sjbbh, digest, division,"
                       " payload, size, source, origin, journaled_at, batch_id) VALUES"
                       " (?, ?, ?, ?, '430102', ?, 1, 'src', 'o', 0, 'B1')",
                       (r.element, r.key_text, r.version, r.digest(), payload))
    finally:
        db.close()
    node = NodeIdentity("n1", "430102", "u", generate_node_keys("n1"))
    with Outbox(path) as box:
        payloads = box.batch_payloads("B1")
        sizes = [size for size, in box._db.execute("SELECT size FROM records ORDER BY seq")]
    head = {"XZQHDM": "430102", "TYSHXYDM": old[0].fields["TYSHXYDM"], "BATCHID": "B1",
            "NODEID": "n1", "COUNT": "2", "CREATED": "2026-11-23 10:00:00"}
    created = datetime(2026, 11, 23, 10, tzinfo=BEIJING).timestamp()
    assert batch_document("B1", payloads, node, created) == document_bytes(head, old)
    assert sizes == [len(p.encode()) for p in payloads]


def test_a_clock_stepped_back_holds_no_batch(outbox: Outbox, clock: FakeClock) -> None:
    outbox.journal("src", Chunk(valid(record("A"))))
    clock.now -= 3  # less than the linger: the next seal waits, a flush does not
    assert outbox.seal_batches(10, 1 << 30, linger_seconds=5) == []
    assert len(outbox.seal_batches(10, 1 << 30, linger_seconds=0)) == 1
    outbox.journal("src", Chunk(valid(record("B"))))
    clock.now -= 7200  # NTP corrects a clock that ran two hours fast
    assert len(outbox.seal_batches(10, 1 << 30, linger_seconds=5)) == 1
    assert outbox.seal_batches(10, 1 << 30, linger_seconds=math.inf) == []


def test_the_age_of_a_record_stamped_before_a_clock_step_keeps_growing(
        tmp_path: Path, clock: FakeClock) -> None:
    ticks = FakeClock(100.0)
    with Outbox(tmp_path / "o.db", clock=clock, monotonic=ticks) as box:
        box.journal("src", Chunk(valid(record("A"))))
        clock.now -= 7200
        assert box.oldest_pending_age() == 0.0
        clock.now += 30
        ticks.now += 30
        assert box.oldest_pending_age() == 30.0  # a lower bound, not 0 for two hours
        clock.now += 7200
        assert box.oldest_pending_age() == 30.0


def test_a_full_disk_says_what_failed_and_what_it_left(outbox: Outbox) -> None:
    outbox.journal("src", Chunk(valid(record("A"))))
    outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    many = Chunk(valid(*(record(f"K{i}", name="长" * 2000) for i in range(20))))
    with pytest.raises(RetriableError, match="journaling a chunk: none of it was journaled"):
        outbox.journal("src", many)
    assert outbox.record_count() == 1


def test_a_migration_sqlite_rolled_back_itself_reports_its_own_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a full disk SQLite may end the transaction itself; a second ROLLBACK would fail
    with "no transaction is active" and hide why the outbox cannot be opened."""
    db = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    try:
        configure(db)

        def full_disk(connection: sqlite3.Connection) -> None:
            connection.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL, at times
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setitem(outbox_schema._MIGRATIONS, 1, full_disk)
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            migrate(db)
        assert not db.in_transaction
    finally:
        db.close()


def row_reject(row_id: int, source: str = "src") -> tuple[Origin, RecordCheck]:
    issue = Issue(IssueCode.MISSING_FIELD, "missing-field",
                  {"field": "SBLSH", "label": "申办流水号"}, "SBXX", "SBLSH")
    return Origin(source, f"EX_SBXX#{row_id}"), RecordCheck("SBXX", None, None, (issue,))


def row_record(row_id: int, key: str, source: str = "src") -> tuple[Origin, RecordCheck]:
    rec = record(key, line=None)
    return Origin(source, f"EX_SBXX#{row_id}"), RecordCheck(rec.element, None, rec, ())


def test_a_row_corrected_and_read_again_settles_its_reject(outbox: Outbox) -> None:
    # Before, only `agent replay --rejects` settled a reject: a row corrected in place and
    # read again (flag reset, changelog or cursor re-read) stayed open.
    outbox.journal("src", Chunk((row_reject(5), row_reject(9))))
    assert outbox.open_rejects() == 2
    outbox.journal("src", Chunk((row_record(5, "K1"), row_record(6, "K2"))))
    assert outbox.open_rejects() == 1  # row 9 is still wrong
    outbox.journal("other", Chunk((row_record(9, "K3", source="other"),)))
    assert outbox.open_rejects() == 1  # another source's row of the same table


def test_a_settled_reject_refused_again_the_same_way_is_open_again(
        outbox: Outbox, clock: FakeClock) -> None:
    """A row corrected (its reject settled), then edited back into the same fault: the
    identical reject was dropped as a re-read, and the source's flag 2 went unsaid."""
    outbox.journal("src", Chunk((row_reject(5),)))
    outbox.journal("src", Chunk((row_reject(5),)))  # a re-read after a crash: still one
    assert outbox.open_rejects() == 1 and len(outbox.rejects("src")) == 1
    outbox.journal("src", Chunk((row_record(5, "K1"),)))  # corrected
    assert outbox.open_rejects() == 0
    clock.now += 60
    outbox.journal("src", Chunk((row_reject(5),)))  # and broken again
    [reject] = outbox.rejects("src")
    assert outbox.open_rejects() == 1 and reject["rejected_at"] == clock()
    outbox.journal("src", Chunk((invalid(3),)))
    assert outbox.mark_rejects_replayed("src", ["a.xml"]) == 1  # a file replayed …
    outbox.journal("src", Chunk((invalid(3),)))  # … and refused the same way
    assert outbox.open_rejects() == 2


def test_a_valid_record_on_a_rejected_line_of_a_file_settles_nothing(outbox: Outbox) -> None:
    """A file written on one line holds every record on line 1; the next file dropped
    under the same name is another file: a line is no record's identity."""
    rec = record("K1")
    same_line = (Origin("src", "a.xml", 5), RecordCheck(rec.element, 5, rec, ()))
    outbox.journal("src", Chunk((invalid(5), same_line)))
    assert outbox.open_rejects() == 1
    again = (Origin("src", "a.xml", 5), RecordCheck(rec.element, 5, record("K2"), ()))
    outbox.journal("src", Chunk((again,)))
    assert outbox.open_rejects() == 1
    assert outbox.mark_rejects_replayed("src", ["a.xml"]) == 1  # replaying the file does


def test_the_heartbeat_counts_a_sent_batch_missing_a_receipt_as_waiting(
        outbox: Outbox, clock: FakeClock) -> None:
    # Only pending batches were reported: a batch one level never got (a link down)
    # left the node green at the centre, its outbox "empty".
    outbox.journal("src", Chunk(valid(record("A"))))
    [batch] = outbox.seal_batches(10, 1 << 20, 0)
    outbox.mark_sent(batch)
    outbox.mark_stored(batch, "county", 1)
    clock.now += 600
    body = json.loads(heartbeat_body(Heartbeat("n1", "430102"), outbox, clock.now))
    assert body["outbox"]["pending_batches"] == 1
    assert body["outbox"]["oldest_pending_age_s"] == 600


def test_outbox_errors_carry_their_chinese_text(tmp_path: Path) -> None:
    full = mapped(sqlite3.OperationalError("database or disk is full"), tmp_path / "o.db",
                  "journaling a chunk")
    assert isinstance(full, RetriableError)
    assert "while journaling a chunk" in str(full)
    assert "暂时无法写入：database or disk is full" in full.message("zh")
    broken = mapped(sqlite3.DatabaseError("file is not a database"), tmp_path / "o.db", "x")
    assert isinstance(broken, OutboxBroken)
    assert "无法使用：file is not a database" in broken.message("zh")

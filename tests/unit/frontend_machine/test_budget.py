"""The disk budget: reading pauses when the outbox is full, and receipts make room again."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.sources.base import Chunk
from frontend_machine.agent import Agent
from frontend_machine.config import AgentConfig, NodeConfig, OutboxConfig
from frontend_machine.outbox import ALL_LEVELS, Outbox, RoomMade
from frontend_machine.outbox_batches import BatchState
from frontend_machine.outbox_budget import REPLAYED_BEFORE
from tests.unit.frontend_machine.test_outbox import FakeClock, invalid, record, valid

BIG = "长" * 2000  # 6 kB of text, 8 kB of pages a record: 50 of them fill 2/3 of the budget


class EndlessSource:
    """Hands out one chunk of 50 new big records per read; counts the reads."""

    name = "src"

    def __init__(self) -> None:
        self.reads = 0
        self.keys = itertools.count()

    def read(self, state: Mapping[str, Any]) -> Iterator[Chunk]:
        self.reads += 1
        keys = [next(self.keys) for _ in range(50)]
        yield Chunk(valid(*(record(f"K{k:06d}", name=BIG) for k in keys)), {"last": keys[-1]})

    def commit(self, chunk: Chunk) -> None:
        pass


def stored_everywhere(outbox: Outbox, batch_id: str) -> None:
    outbox.mark_sent(batch_id)
    for level in ALL_LEVELS:
        outbox.mark_stored(batch_id, level, 50)


def budgeted(tmp_path: Path, budget: int, batch_max_records: int) -> AgentConfig:
    """An agent whose outbox ``o.db`` may hold ``budget`` bytes."""
    return AgentConfig(tmp_path / "agent.toml", NodeConfig("n1", "430102"),
                       OutboxConfig(tmp_path / "o.db", disk_budget_mb=budget / 2**20,
                                    batch_max_records=batch_max_records), ())


def test_receipts_make_room_and_reading_resumes_without_dropping_anything(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    budget = 600 * 1024
    config = budgeted(tmp_path, budget, batch_max_records=50)
    source = EndlessSource()
    with Outbox(tmp_path / "o.db", budget_bytes=budget) as outbox, \
            Outbox(tmp_path / "o.db") as publisher_side:  # receipts arrive on their own
        caplog.set_level(logging.INFO, logger="exgate.agent")
        agent = Agent(config, outbox, [source], lang="en")
        for _ in range(10):
            agent.poll_all()
        assert agent.paused and source.reads == 2
        agent.poll_all()
        assert source.reads == 2  # paused: the source is not read
        # The centre sees it: not caught up, and why (it showed lag 0 and no error).
        assert agent.catch_up.behind and agent.source_lag() > 0
        assert agent.last_error == "outbox over its disk budget: reading of sources paused"

        first, second = (b.batch_id for b in outbox.next_pending_batches(10))
        stored_everywhere(publisher_side, first)
        agent.poll_all()
        assert "reading resumed" in caplog.text
        assert source.reads == 3  # the stored batch made room for one more chunk

        # Nothing journaled but unsent was touched: the pending batch still has its XML.
        assert outbox.batch(second).state is BatchState.PENDING  # type: ignore[union-attr]
        assert len(outbox.batch_payloads(second)) == 50
        assert outbox.record_count() == 150  # and the stored batch's identities stay
        again = outbox.journal("src", Chunk(valid(record("K000000", name=BIG))))
        assert again.duplicates == 1


def test_a_stored_batch_gives_up_its_payloads_and_is_forgotten_after_retention(
        tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        box.journal("src", Chunk(valid(record("A"), record("B"))))
        [stored] = box.seal_batches(10, 1 << 20, 0)
        box.journal("src", Chunk(valid(record("C"))))
        [pending] = box.seal_batches(10, 1 << 20, 0)
        box.journal("src", Chunk(valid(record("D"))))  # unbatched
        stored_everywhere(box, stored)
        payloads = dict(box._db.execute("SELECT record_key, payload IS NOT NULL FROM records"))
        assert payloads == {"A": 1, "B": 1, "C": 1, "D": 1}  # the receipts rewrote nothing

        clock.now += 86400
        assert box.make_room(keep_stored_seconds=2 * 86400) == RoomMade()  # within retention
        payloads = dict(box._db.execute("SELECT record_key, payload IS NOT NULL FROM records"))
        assert payloads == {"A": 0, "B": 0, "C": 1, "D": 1}
        assert box.record_count() == 4
        clock.now += 2 * 86400
        assert box.make_room(keep_stored_seconds=2 * 86400) == RoomMade(forgotten=1)
        assert box.batch(stored) is None and box.receipts_of(stored) == []
        keys = [key for key, in box._db.execute("SELECT record_key FROM records ORDER BY seq")]
        assert keys == ["C", "D"]
        assert box.batch_payloads(pending) and box.depth().unbatched_records == 1


def test_the_budget_counts_pages_in_use_not_the_file_that_never_shrinks(
        tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.journal("src", Chunk(valid(*(record(f"K{i}", name=BIG) for i in range(50)))))
        [batch] = box.seal_batches(1000, 1 << 30, 0)
        box.make_room(keep_stored_seconds=86400)  # folds the WAL in: the file holds it all
        full = box.disk_bytes()
        stored_everywhere(box, batch)
        box.make_room(keep_stored_seconds=86400)
        file_size = (tmp_path / "o.db").stat().st_size
        assert box.disk_bytes() < full / 4 <= file_size


def test_make_room_drops_the_payloads_of_every_stored_batch_a_few_at_a_time(
        tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.journal("src", Chunk(valid(*(record(f"K{i}") for i in range(45)))))
        batches = box.seal_batches(1, 1 << 20, 0)  # more than one transaction's worth
        for batch in batches[:-1]:
            stored_everywhere(box, batch)
        statements: list[str] = []
        box._db.set_trace_callback(statements.append)
        box.make_room(keep_stored_seconds=86400)
        box._db.set_trace_callback(None)
        left = [key for key, in box._db.execute(
            "SELECT record_key FROM records WHERE payload IS NOT NULL")]
        assert left == ["K44"] and box.record_count() == 45  # the sent batch keeps its XML
        assert statements.count("BEGIN IMMEDIATE") > 2


def test_identities_of_stored_batches_are_forgotten_early_rather_than_pausing_for_good(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Every batch stored at every level, and still over budget: the identities kept for
    # the retention filled it, and the agent stayed paused with nothing left to send.
    budget = 160 * 1024
    config = budgeted(tmp_path, budget, batch_max_records=500)
    with Outbox(tmp_path / "o.db", budget_bytes=budget) as outbox:
        for start in range(0, 3000, 500):
            outbox.journal("src", Chunk(valid(*(record(f"K{k:06d}") for k in
                                                range(start, start + 500)))))
        for batch in outbox.seal_batches(500, 1 << 30, 0):
            stored_everywhere(outbox, batch)
        assert outbox.over_budget() and outbox.record_count() == 3000
        caplog.set_level(logging.INFO, logger="exgate.agent")
        source = EndlessSource()
        agent = Agent(config, outbox, [source], lang="en")
        agent.poll_all()
        assert "forgotten early" in caplog.text and source.reads == 1
        journaled = [key for key, in outbox._db.execute("SELECT record_key FROM records")]
        assert len(journaled) < 3000 + 50 and journaled[-50:] == [f"K{k:06d}" for k in range(50)]


def test_rejects_replayed_past_their_retention_are_forgotten_and_open_ones_never(
        tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        box.journal("src", Chunk((invalid(1), invalid(2))))
        assert box.mark_rejects_replayed("src", ["a.xml"]) == 2  # corrected and sent again
        box.journal("src", Chunk((invalid(3),)))  # still open
        clock.now += 86400
        assert box.make_room(keep_stored_seconds=2 * 86400) == RoomMade()
        clock.now += 2 * 86400
        assert box.make_room(keep_stored_seconds=2 * 86400) == RoomMade(rejects_forgotten=2)
        assert [r["line"] for r in box.rejects()] == [3] and box.open_rejects() == 1


def test_rejects_alone_over_budget_pause_reading_saying_so_and_replayed_ones_make_room(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing awaits a receipt, so no receipt will free room: the pause says what holds
    it, and once the rejects are replayed they are forgotten early to make room."""
    budget = 300 * 1024
    config = budgeted(tmp_path, budget, batch_max_records=50)
    source = EndlessSource()
    with Outbox(tmp_path / "o.db", budget_bytes=budget) as outbox:
        for start in range(0, 3000, 500):
            outbox.journal("src", Chunk(tuple(invalid(n) for n in range(start, start + 500))))
        caplog.set_level(logging.INFO, logger="exgate.agent")
        agent = Agent(config, outbox, [source], lang="en")
        agent.poll_all()
        assert agent.paused and source.reads == 0
        assert "no batch awaits a receipt that would free room: 0 failed batches and 3000 " \
               "open rejects hold it" in caplog.text.lower()
        outbox.mark_rejects_replayed("src", ["a.xml"])
        agent.poll_all()
        assert "reading resumed" in caplog.text and source.reads == 1
        assert "3000 rejects already replayed (corrected) were forgotten early" in caplog.text
        assert outbox.rejects() == []


def test_forgetting_replayed_rejects_reads_them_by_an_index_not_the_whole_table(
        tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        plan = " ".join(row[3] for row in outbox._db.execute(
            f"EXPLAIN QUERY PLAN {REPLAYED_BEFORE}", (1.0, 10)))
    assert "USING INDEX rejects_replayed" in plan or "USING COVERING INDEX rejects_replayed" \
        in plan, plan
    assert "TEMP B-TREE" not in plan, plan

"""Journaling with ``seal_full``: the batches a chunk fills are sealed in its transaction,
cut exactly as ``seal_batches`` would cut them afterwards, and counted as journaled."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from adapters.sources.base import Chunk
from frontend_machine.outbox import BatchLimits, Outbox
from frontend_machine.outbox_batches import Seats, seat_full_batches
from tests.unit.frontend_machine.journaled import batch_fields
from tests.unit.frontend_machine.test_outbox import FakeClock, record, valid

TEN = BatchLimits(10, 1 << 30)


def chunk(first: int, count: int) -> Chunk:
    return Chunk(valid(*(record(f"K{n:03}") for n in range(first, first + count))))


def batches(outbox: Outbox) -> list[tuple[int, int, list[str]]]:
    """(record count, bytes, keys in journal order) of every batch, oldest first."""
    return [(info.record_count, info.bytes,
             [fields["SBLSH"] for _, fields in batch_fields(outbox, info.batch_id)])
            for info in outbox.batches()]


def test_the_tail_and_the_new_rows_are_seated_as_plan_batches_cuts_them() -> None:
    tail = [(seq, 100, 0.0) for seq in (41, 42, 43)]
    seats = seat_full_batches(tail, [100] * 25, TEN)
    assert seats == [Seats((0, 2), (0, 6), 10, 1000), Seats(None, (7, 16), 10, 1000)]
    # 8 rows are left: not a full batch, so they stay unbatched
    by_bytes = seat_full_batches([], [400, 400, 400, 100], BatchLimits(100, 1000))
    assert by_bytes == [Seats(None, (0, 1), 2, 800)]
    only_tail = seat_full_batches([(seq, 1, 0.0) for seq in range(1, 21)], [1], TEN)
    assert only_tail == [Seats((0, 9), None, 10, 10), Seats((10, 19), None, 10, 10)]


@pytest.mark.parametrize("sizes", [(7, 12, 5, 30, 1), (10, 10, 3), (25,)])
def test_sealing_with_the_journal_gives_the_batches_sealing_after_it_gives(
        tmp_path: Path, sizes: tuple[int, ...]) -> None:
    clock = FakeClock()
    with Outbox(tmp_path / "with.db", clock=clock) as together, \
            Outbox(tmp_path / "after.db", clock=clock) as after:
        first = 0
        for size in sizes:
            sealed = together.journal("src", chunk(first, size), seal_full=TEN).sealed
            after.journal("src", chunk(first, size))
            assert len(sealed) == len(after.seal_batches(10, 1 << 30, math.inf))
            first += size
        assert batches(together) == batches(after)
        assert together.depth() == after.depth()
        keys = [key for _, _, batch in batches(together) for key in batch]
        assert keys == [f"K{n:03}" for n in range(len(keys))]  # journal order, each once


def test_duplicates_in_a_sealing_chunk_leave_each_batch_its_real_count(
        tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", clock=FakeClock()) as outbox:
        outbox.journal("src", chunk(0, 10))  # not sealed: the unbatched tail
        result = outbox.journal("src", chunk(5, 20), seal_full=TEN)  # K005-K009 again
        assert (result.added, result.duplicates) == (15, 5)
        assert len(result.sealed) == 3
        found = batches(outbox)
        assert [(count, keys[0], keys[-1]) for count, _, keys in found] == [
            (10, "K000", "K009"), (5, "K010", "K014"), (10, "K015", "K024")]
        for batch_id, (_, size, _) in zip(result.sealed, found, strict=True):
            payloads = outbox.batch_payloads(batch_id)
            assert size == sum(len(p.encode()) for p in payloads)
        assert outbox.record_count() == 25 and outbox.depth().unbatched_records == 0


def test_a_chunk_of_duplicates_only_seals_no_empty_batch(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", clock=FakeClock()) as outbox:
        assert len(outbox.journal("src", chunk(0, 10), seal_full=TEN).sealed) == 1
        again = outbox.journal("src", chunk(0, 10), seal_full=TEN)
        assert (again.added, again.duplicates, again.sealed) == (0, 10, ())
        assert [count for count, _, _ in batches(outbox)] == [10]


def test_a_failed_journal_seals_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", clock=FakeClock()) as outbox:
        outbox.journal("src", chunk(0, 4))
        bad = Chunk(chunk(4, 20).checks, {"unserialisable": object()})
        with pytest.raises(TypeError):
            outbox.journal("src", bad, seal_full=TEN)
        assert outbox.batches() == [] and outbox.record_count() == 4
        assert outbox.depth().unbatched_records == 4


def test_batch_rows_exist_before_their_records_point_at_them(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=FakeClock()) as outbox:
        outbox.journal("src", chunk(0, 30), seal_full=TEN)
    with sqlite3.connect(path) as db:  # foreign keys are on in the outbox: checked anyway
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = db.execute("SELECT count(*) FROM records WHERE batch_id IS NOT NULL AND"
                             " batch_id NOT IN (SELECT batch_id FROM batches)").fetchone()
        assert orphans == (0,)

"""Journaling with ``seal_full``: the batches a chunk fills are sealed in its transaction,
cut exactly as ``seal_batches`` would cut them afterwards, and counted as journaled."""

from __future__ import annotations

import math
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


def journal_both_ways(tmp_path: Path, chunks: list[Chunk],
                      limits: BatchLimits = TEN) -> tuple[Outbox, Outbox, list[int]]:
    """The chunks journaled with ``seal_full`` into one outbox and, into another, each
    journaled then sealed after it (linger infinite); the seal counts of the first."""
    clock = FakeClock()
    together = Outbox(tmp_path / "with.db", clock=clock)
    after = Outbox(tmp_path / "after.db", clock=clock)
    counts = []
    try:
        for piece in chunks:
            counts.append(len(together.journal("src", piece, seal_full=limits).sealed))
            after.journal("src", piece)
            assert counts[-1] == len(after.seal_batches(limits.max_records, limits.max_bytes,
                                                        math.inf))
    except BaseException:  # the caller's ``with`` is not reached: close them here
        together.close()
        after.close()
        raise
    return together, after, counts


def test_duplicates_in_a_sealing_chunk_leave_no_short_batch(tmp_path: Path) -> None:
    evens = Chunk(valid(*(record(f"K{n:03}") for n in range(0, 40, 2))))
    together, after, counts = journal_both_ways(tmp_path, [evens, chunk(0, 40)])
    with together, after:
        assert counts == [2, 2]
        assert batches(together) == batches(after)
        assert [count for count, _, _ in batches(together)] == [10, 10, 10, 10]
        keys = [key for _, _, batch in batches(together) for key in batch]
        assert sorted(keys) == [f"K{n:03}" for n in range(40)] and len(set(keys)) == 40


def test_a_chunk_of_duplicates_only_leaves_the_lingering_tail_alone(tmp_path: Path) -> None:
    together, after, counts = journal_both_ways(tmp_path, [chunk(0, 8), chunk(0, 8)])
    with together, after:
        assert counts == [0, 0]
        assert together.batches() == [] and together.depth().unbatched_records == 8


def test_a_chunk_repeated_whole_seals_no_empty_batch(tmp_path: Path) -> None:
    together, after, counts = journal_both_ways(tmp_path, [chunk(0, 10), chunk(0, 10)])
    with together, after:
        assert counts == [1, 0]
        assert [count for count, _, _ in batches(together)] == [10]


def test_batches_are_cut_by_bytes_as_sealing_after_would(tmp_path: Path) -> None:
    one_byte = BatchLimits(100, 1)  # every record is bigger: each travels alone
    together, after, counts = journal_both_ways(tmp_path, [chunk(0, 3)], one_byte)
    with together, after:
        assert counts == [3]
        assert [count for count, _, _ in batches(together)] == [1, 1, 1]
        record_bytes = batches(after)[0][1]  # the keys are as long, so all records are
    three = BatchLimits(100, 3 * record_bytes + 1)
    together, after, counts = journal_both_ways(tmp_path / "3", [chunk(3, 4), chunk(7, 6)],
                                                three)
    with together, after:
        assert batches(together) == batches(after)
        assert [(count, size) for count, size, _ in batches(together)] == [
            (3, 3 * record_bytes)] * 3


def test_a_failed_journal_seals_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", clock=FakeClock()) as outbox:
        outbox.journal("src", chunk(0, 4))
        bad = Chunk(chunk(4, 20).checks, {"unserialisable": object()})
        with pytest.raises(TypeError):
            outbox.journal("src", bad, seal_full=TEN)
        assert outbox.batches() == [] and outbox.record_count() == 4
        assert outbox.depth().unbatched_records == 4

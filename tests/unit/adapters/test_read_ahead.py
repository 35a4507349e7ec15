"""``read_ahead``: the pages, in order, fetched at most one ahead, errors in the consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from adapters.sources.read_ahead import read_ahead


class Pages:
    """A source of numbered pages that records how far it was pulled and how it ended."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.pulled = 0
        self.closed = False
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        try:
            for n in range(self.count):
                self.threads.add(threading.current_thread().name)
                if n == self.fail_at:
                    raise LookupError(f"page {n} is gone")
                self.pulled += 1
                yield n
        finally:
            self.closed = True


def test_every_page_arrives_once_in_order_from_another_thread() -> None:
    source = Pages(50)
    with read_ahead(iter(source)) as pages:
        assert list(pages) == list(range(50))
    assert source.closed
    assert source.threads == {"exgate-read-ahead"}


def test_an_error_arrives_after_the_pages_before_it() -> None:
    source = Pages(10, fail_at=3)
    seen = []
    with pytest.raises(LookupError, match="page 3 is gone"), \
            read_ahead(iter(source)) as pages:
        seen.extend(pages)
    assert seen == [0, 1, 2]


def test_the_fetching_runs_at_most_one_page_ahead_and_stops_with_the_block() -> None:
    source = Pages(1000)
    with read_ahead(iter(source)) as pages:
        assert next(pages) == 0
        assert next(pages) == 1
        # The two taken, and at most the next one, fetched while the second is in hand.
        assert source.pulled <= 3
    assert source.closed
    assert source.pulled <= 3
    assert not any(t.name == "exgate-read-ahead" for t in threading.enumerate())


def test_an_empty_source_ends_at_once() -> None:
    source = Pages(0)
    with read_ahead(iter(source)) as pages:
        assert list(pages) == []
    assert source.closed

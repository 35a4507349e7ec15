"""The heap is frozen for a loop's duration only, and garbage is collected first."""

from __future__ import annotations

import gc
import weakref

from adapters.heap import startup_frozen


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_heap_is_frozen_during_the_block_only_and_garbage_is_not_kept() -> None:
    garbage = weakref.ref(Cycle())  # a cycle: only the collector frees it
    before = gc.get_freeze_count()
    with startup_frozen():
        assert gc.get_freeze_count() > before
        assert garbage() is None  # collected, not frozen
    assert gc.get_freeze_count() == 0

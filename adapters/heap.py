"""The garbage collector around a long-running loop (``agent run``, ``gateway run``).

What startup loaded (the XSD catalogue, SQLAlchemy, pika, the compiled patterns) lives
as long as the process. Left in the collector's generations, every full collection
walks all of it again: about a tenth of the CPU of a busy agent or gateway. Frozen
(``gc.freeze``), it is skipped. Garbage is collected first, so none is kept for good,
and the heap is unfrozen when the loop ends, for a process that goes on (a test).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["startup_frozen"]


@contextmanager
def startup_frozen() -> Iterator[None]:
    """Freeze what is alive now for the duration of the block."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()

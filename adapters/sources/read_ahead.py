"""Fetch a source's next page while the agent validates and journals the current one.

A page from a database server costs the agent a wait: the query runs on the server and
the rows cross the network. Validating and journaling a page is CPU work in the agent.
Run the fetching in a thread one page ahead, and the two overlap: the driver releases
the GIL while it waits for the server.

At most one page waits in the hand-over, so memory stays bounded by two pages. The
consumer sees the pages, and any error of the fetching, in the same order as without
the thread. Closing stops the fetching at the next page boundary and waits for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Generic, TypeVar

__all__ = ["read_ahead"]

T = TypeVar("T")

_END = object()  # the pages ran out


class _Failure:
    """The exception that ended the fetching, to raise again in the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextmanager
def read_ahead(pages: Iterator[T]) -> Iterator[Iterator[T]]:
    """``pages``, fetched one page ahead in a thread; the thread ends with the block."""
    ahead = _ReadAhead(pages)
    try:
        yield ahead.pages()
    finally:
        ahead.close()


class _ReadAhead(Generic[T]):
    def __init__(self, source: Iterator[T]) -> None:
        self._source = source
        self._handover: queue.Queue[object] = queue.Queue(maxsize=1)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name="exgate-read-ahead",
                                        daemon=True)
        self._thread.start()

    def pages(self) -> Iterator[T]:
        while True:
            item = self._handover.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]  # anything else is a page of the source

    def close(self) -> None:
        """Stop fetching after the page in hand, if any, and wait for the thread."""
        self._closing.set()
        while self._thread.is_alive():
            # The thread may wait to hand a page over: take it, so it sees the close.
            with suppress(queue.Empty):
                self._handover.get(timeout=0.05)
        self._thread.join()

    def _fetch(self) -> None:
        try:
            for page in self._source:
                self._handover.put(page)
                if self._closing.is_set():
                    return
            self._handover.put(_END)
        except BaseException as exc:  # the consumer raises it, in its own thread
            self._handover.put(_Failure(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

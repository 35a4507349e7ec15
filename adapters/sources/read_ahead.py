"""Fetch a source's next page while the agent validates and journals the current one.

A page from a database server costs the agent a wait: the query runs on the server and
the rows cross the network. Validating and journaling a page is CPU work in the agent.
Run the fetching in a thread one page ahead, and the two overlap: the driver releases
the GIL while it waits for the server.

The thread fetches a page only once the consumer has taken the one before, so at most
one page waits besides the one in hand. The consumer sees the pages, and any error of
the fetching, in the same order as without the thread. Closing stops the fetching; it
waits for a query already running (one page's query, at most).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
        self._handover: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._wanted = threading.Semaphore(1)  # pages the consumer is ready for
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
            self._wanted.release()  # fetch the next one while this one is worked on
            yield item  # type: ignore[misc]  # anything else is a page of the source

    def close(self) -> None:
        """Stop fetching, and wait for the thread (and so for a query it runs)."""
        self._closing.set()
        self._wanted.release()  # wake the thread if it waits to be asked
        self._thread.join()

    def _fetch(self) -> None:
        try:
            while True:
                self._wanted.acquire()
                if self._closing.is_set():
                    return
                page = next(self._source, _END)
                self._handover.put(page)
                if page is _END:
                    return
        except BaseException as exc:  # the consumer raises it, in its own thread
            self._handover.put(_Failure(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

"""The write-back leaves out rows a legacy transaction holds, instead of waiting for them.

A legacy application may hold a row for minutes: a form open for editing locks the
record it shows (Oracle Forms does), a batch job its rows until it commits. Waiting for
such a row failed the whole page's write-back after ``LOCK_WAIT_SECONDS``; the page was
then read and journaled again on every poll, and every row after it waited too. So the
write-back first locks the page's rows it can have at once (``FOR UPDATE SKIP LOCKED``)
and marks only those; a held row stays as it is (at 0) and is read again by a later
pass, which the outbox drops as a duplicate, until it is free (by ``flag``, not before
``HELD_RETRY_SECONDS``).

Servers without ``SKIP LOCKED`` (MySQL before 8.0.1, MariaDB before 10.6) and SQLite
(which locks the whole file) keep the bounded wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sqlalchemy import Connection, select
from sqlalchemy.engine import Dialect

from adapters.sources.db_strategies import Page
from adapters.sources.db_tables import ElementTable, any_row_id, in_batches

__all__ = ["HELD_RETRY_SECONDS", "HeldRows", "free_rows", "skips_locked"]

# How long a held row is kept out of the pages of a strategy that reads every unmarked
# row on each pass (``flag``): it would be journaled again (a duplicate) and its lock
# tried on every poll, and the agent, taking something on every pass, would never idle.
HELD_RETRY_SECONDS = 30.0


def skips_locked(dialect: Dialect) -> bool:
    """Whether the connected server has ``SELECT … FOR UPDATE SKIP LOCKED``."""
    version = tuple(dialect.server_version_info or ())
    if dialect.name == "mysql" or dialect.name == "mariadb":
        mariadb = bool(getattr(dialect, "is_mariadb", False))
        return version >= ((10, 6) if mariadb else (8, 0, 1))
    return dialect.name in ("postgresql", "oracle")


def free_rows(conn: Connection, element: ElementTable,
              row_ids: Sequence[int]) -> set[int]:
    """Lock, for the rest of ``conn``'s transaction, the rows of ``row_ids`` no other
    transaction holds, and return their ids. On PostgreSQL the lock is the one the
    UPDATE takes (FOR NO KEY UPDATE): a row whose key a legacy transaction holds for a
    child row it inserts is not held off."""
    row_id = element.row_id
    assert row_id is not None
    postgresql = conn.dialect.name == "postgresql"
    free: set[int] = set()
    for batch in [row_ids] if postgresql else in_batches(row_ids):
        wanted = any_row_id(row_id, batch) if postgresql else row_id.in_(batch)
        query = select(row_id).where(wanted).with_for_update(skip_locked=True, key_share=True)
        free.update(int(i) for i in conn.execute(query).scalars())
    return free


class HeldRows:
    """The rows held off the write-back, each by its locator (``table#ROW_ID``), with
    the monotonic time a pass may hand it out again.

    The write-back writes it (one at a time); the pass only looks rows up in it, which
    is safe beside that one writer thread.
    """

    def __init__(self) -> None:
        self._due: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self._due)

    def note(self, table: str, held: Sequence[int], free: Iterable[int],
             now: float) -> list[int]:
        """Take in what one table's lock query found; returns the held ids that were
        not held before, to be said once while they stay held."""
        for row_id in free:
            self._due.pop(f"{table}#{row_id}", None)
        # A held row is tried again, and its time renewed, every HELD_RETRY_SECONDS while
        # it stays at 0: one long past its time was deleted, or marked by someone else.
        stale = now - 10 * HELD_RETRY_SECONDS
        for key in [key for key, due in self._due.items() if due < stale]:
            del self._due[key]
        new = [row_id for row_id in held if f"{table}#{row_id}" not in self._due]
        self._due.update((f"{table}#{row_id}", now + HELD_RETRY_SECONDS) for row_id in held)
        return new

    def kept_out(self, page: Page, now: float) -> Page:
        """``page`` without its held rows that are not due again at ``now``."""
        rows = tuple(row for row in page.rows
                     if self._due.get(f"{row.table.name}#{row.ident}", 0.0) <= now)
        return page if len(rows) == len(page.rows) else replace(page, rows=rows)

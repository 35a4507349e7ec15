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

from collections.abc import Sequence

from sqlalchemy import Connection, select
from sqlalchemy.engine import Dialect

from adapters.sources.db_tables import ElementTable, any_row_id, in_batches

__all__ = ["HELD_RETRY_SECONDS", "free_rows", "skips_locked"]

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


"""``ST_COVERAGE``: per node and element, when records last arrived and how many were stored.

Moved inside each batch's write transaction (``SqlStore.write``), so the status views
read a few hundred rows instead of grouping the element tables. A duplicate-only batch
still moves ``LAST_AT``: the node did send the element.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Table, and_, insert, update

__all__ = ["cover"]


def cover(conn: Connection, coverage: Table, node_id: str, stored: Mapping[str, int],
          now: datetime) -> None:
    """Add ``stored[element]`` records of ``node_id`` arrived at ``now``.

    Sorted by element so two batches of one node lock the rows in the same order; two
    workers inserting the same new row make one fail on the primary key, which the
    store reports as retriable, and the retry updates the other's row.
    """
    c = coverage
    for element in sorted(stored):
        mine = and_(c.c["NODE_ID"] == node_id, c.c["ELEMENT"] == element)
        done = conn.execute(update(c).where(mine).values(
            LAST_AT=now, RECORDS=c.c.RECORDS + stored[element]))
        if done.rowcount == 0:
            conn.execute(insert(c).values(NODE_ID=node_id, ELEMENT=element, FIRST_AT=now,
                                          LAST_AT=now, RECORDS=stored[element]))

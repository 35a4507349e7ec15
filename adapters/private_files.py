"""Files that hold records are created readable by their owner alone.

The outbox (every record of a front-end machine, in plain text) and a SQLite level
store would otherwise take their mode from the umask: 0644 under the usual 022, which
lets every local account read government records. SQLite gives a database's ``-wal``
and ``-shm`` files the mode of the database, so creating the database file is enough.
A file that exists keeps the mode its operator gave it.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

__all__ = ["create_private"]


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600, unless it exists."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

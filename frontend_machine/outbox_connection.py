"""The outbox's SQLite connection: opened once, and its transactions, with errors mapped.

The agent creates its journal; the operators' commands open an existing one only, so a
mistyped path is ``OutboxNotFound`` instead of a new, empty journal. sqlite3's errors
become exgate's at this boundary: a full disk, a lock or a busy file is
``RetriableError`` (the transaction is rolled back and the source hands the same
records out again), anything else ``OutboxBroken``; a path that cannot be a journal at
all (a folder, a path through a file, no right to write) is ``OutboxPathUnusable``, a
config error. Apart from ``Outbox`` because it is
the same for every statement the outbox runs, whatever it journals.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from adapters.private_files import create_private
from frontend_machine.outbox_schema import SchemaTooNew, configure, migrate
from schemas.errors import ConfigError, FatalError, FileNotThere, RetriableError

__all__ = ["OutboxBroken", "OutboxNotFound", "OutboxPathUnusable", "connect", "mapped",
           "transaction", "unopenable"]

_RETRIABLE = ("full", "locked", "busy", "disk i/o", "unable to open")


class OutboxBroken(FatalError):
    """The outbox cannot be used (corrupt, a table gone, read-only media): no source can
    make progress, so the agent stops and says so rather than retrying forever."""


class OutboxPathUnusable(ConfigError):
    """``[outbox] path`` names what cannot be a journal (a folder, a path through a file,
    a folder the agent's user may not write): a config error, since only fixing the
    config or the folder helps, never a restart."""


# The errors of such a path, as the system reports them (and EROFS: a read-only file
# system, or one systemd's ProtectSystem makes so, outside the unit's ReadWritePaths).
_PATH_ERRORS = (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)


class OutboxNotFound(FileNotThere):
    """An outbox opened with ``create=False`` is not there."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, what="outbox", what_zh="发件箱", key="[outbox] path")


def connect(path: Path, create: bool) -> sqlite3.Connection:
    """The journal at ``path``, configured and migrated; ``create=False`` opens an
    existing file only (``OutboxNotFound`` otherwise)."""
    if not create and not path.is_file():
        raise OutboxNotFound(path)
    try:
        db = _open(path, create)
    except (OSError, sqlite3.Error) as exc:  # a folder the agent's user may not write
        raise unopenable(path, exc) from exc
    try:
        configure(db)
        migrate(db)
    except SchemaTooNew as exc:  # no folder or permission to check: the exgate is too old
        db.close()
        raise OutboxBroken(f"cannot open outbox {path}: {exc}",
                           zh=f"无法打开发件箱 {path}：{exc.message('zh')}") from exc
    except sqlite3.Error as exc:
        db.close()
        raise unopenable(path, exc) from exc
    return db


def _open(path: Path, create: bool) -> sqlite3.Connection:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)
        return sqlite3.connect(path, isolation_level=None, timeout=30.0)
    # mode=rw: a file removed after the caller's check is an error, not a new journal.
    return sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=rw",
                           uri=True, isolation_level=None, timeout=30.0)


def unopenable(path: Path, exc: Exception) -> OutboxBroken | OutboxPathUnusable:
    """Why the journal at ``path`` cannot be opened or made: ``OutboxPathUnusable`` when
    the path itself is wrong, else ``OutboxBroken``."""
    if _is_dir(path):
        return OutboxPathUnusable(
            f"cannot open outbox {path}: it is a folder; give [outbox] path the journal's "
            f"file, such as {path / 'outbox.db'}",
            zh=f"无法打开发件箱 {path}：这是一个文件夹；请在 [outbox] path 中写明发件箱文件，"
               f"例如 {path / 'outbox.db'}")
    en = (f"cannot open outbox {path}: {exc} (check [outbox] path, and that the agent's "
          "user may write its folder)")
    zh = (f"无法打开发件箱 {path}：{exc}（请检查 [outbox] path，以及代理的运行用户能否写入其所在"
          "文件夹）")
    if isinstance(exc, _PATH_ERRORS) or getattr(exc, "errno", None) == errno.EROFS \
            or (os.access(path, os.F_OK) and not os.access(path, os.R_OK | os.W_OK)):
        return OutboxPathUnusable(en, zh=zh)
    return OutboxBroken(en, zh=zh)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a folder on the way the agent's user may not search
        return False


@contextmanager
def transaction(db: sqlite3.Connection, path: Path, doing: str) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error; sqlite errors mapped.

    ``doing`` names the operation and what a failure leaves behind, for the message.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise mapped(exc, path, doing) from exc
    try:
        yield
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise mapped(exc, path, doing) from exc
        raise


def mapped(exc: sqlite3.Error, path: Path, doing: str) -> Exception:
    # The Chinese says where and SQLite's own words; what was being done is in the English.
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(word in text for word in _RETRIABLE):
        return RetriableError(f"outbox {path}: {exc}, while {doing}",
                              zh=f"发件箱 {path} 暂时无法写入：{exc}；稍后重试，数据不会丢失")
    return OutboxBroken(f"outbox {path}: {exc}, while {doing}",
                        zh=f"发件箱 {path} 无法使用：{exc}")

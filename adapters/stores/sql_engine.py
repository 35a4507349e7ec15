"""The central store's SQLAlchemy engine, and on SQLite the pragmas and locking it needs.

A SQLite store is created where its URL points, folders and all, unless it is opened
with ``create=False`` (read-only commands): a mistyped path is then ``StoreNotFound``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL

from adapters.db_connect import bound_silent_servers, connect_args
from adapters.private_files import create_private
from schemas.errors import FileNotThere

__all__ = ["READ_ONLY", "SQLITE_BUSY_S", "StoreNotFound", "create_store_engine"]

SQLITE_BUSY_S = 5.0  # then "database is locked" → RetriableError, and the caller backs off
READ_ONLY = "exgate_read_only"  # execution option: this connection only reads


class StoreNotFound(FileNotThere):
    """A SQLite store opened with ``create=False`` is not there."""

    def __init__(self, path: str) -> None:
        super().__init__(path, what="store", what_zh="监察库", key="[store] url")


def create_store_engine(url: URL, sqlite_busy_s: float, create: bool) -> Engine:
    if url.get_backend_name() != "sqlite":
        return bound_silent_servers(create_engine(
            url, pool_pre_ping=True, pool_size=8, max_overflow=8, connect_args=connect_args(url)))
    if url.database and url.database != ":memory:" and "uri" not in url.query:
        path = os.path.abspath(url.database)
        if create:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            create_private(Path(path))
        elif not os.path.isfile(path):
            raise StoreNotFound(path)
        else:
            # mode=rw: a file removed after this check is an error, not a new empty store.
            url = url.set(database=f"file:{quote(path)}").update_query_dict(
                {"mode": "rw", "uri": "true"})
    engine = create_engine(url, connect_args={"timeout": sqlite_busy_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a batch is acked after commit
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: two readers upgrading to writers would deadlock.
        # Read-only work (the status views) reads a WAL snapshot and blocks no writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine

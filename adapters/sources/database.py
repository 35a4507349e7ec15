"""Database mode: read the front-end tables (design §4) as a ``Source``.

``database_source`` is the ``SourceFactory`` for ``[[sources]] kind = "db"``; the
options are described in ``adapters.sources.db_options`` and the three read
strategies in ``adapters.sources.db_strategies``. Every row is converted to the
exchange text form and validated with ``check_row``, exactly like an XML record.
Driver errors leave this module as ``RetriableError``; bad options as ``ConfigError``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Update,
    create_engine,
    event,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    NoSuchModuleError,
    NotSupportedError,
    ProgrammingError,
    SQLAlchemyError,
)

from adapters.config_files import read_password_file, redact
from adapters.db_connect import (
    bound_silent_servers,
    connect_args,
    driver_detail,
    engine_url,
    shown_url,
)
from adapters.sources.base import Chunk, Origin, SourceContext
from adapters.sources.db_cursor import CursorStrategy, check_timestamp_types
from adapters.sources.db_locks import HeldRows, free_rows, skips_locked
from adapters.sources.db_options import DatabaseOptions, parse_options
from adapters.sources.db_strategies import (
    ChangelogStrategy,
    FlagStrategy,
    Page,
    ReadContext,
    Strategy,
    Unconfirmed,
    with_verdicts,
)
from adapters.sources.db_sync_msg import FRONTDB_ROOM, MessageRoom, look_up_room
from adapters.sources.db_tables import (
    REJECTED,
    TAKEN,
    ElementTable,
    any_row_id,
    by_name,
    check_row,
    element_tables,
    in_batches,
    mark_rejected,
    mark_taken,
    reject_message,
    untimed_check,
)
from adapters.sources.read_ahead import read_ahead
from adapters.sources.sqlite_bytes import sqlite_text
from schemas.errors import ConfigError, RetriableError, message_of
from schemas.messages import Localized
from schemas.times import BEIJING

__all__ = [
    "DatabaseSource",
    "database_source",
    "engine_options",
    "session_settings",
    "source_engine",
    "source_url",
]

Clock = Callable[[], datetime]
log = logging.getLogger("exgate.source.db")


def _beijing_now() -> datetime:
    return datetime.now(BEIJING)


def database_source(name: str, options: Mapping[str, Any], context: SourceContext,
                    clock: Clock = _beijing_now) -> DatabaseSource:
    """Build a database source from its ``[[sources]]`` options (ConfigError if bad)."""
    parsed = parse_options(options, context.catalog)
    engine = source_engine(parsed)
    try:
        tables = element_tables(parsed, engine.dialect.name, context.catalog)
        reader = ReadContext(engine, tables, parsed.page_size, clock, context.lang)
        return DatabaseSource(name, context, reader, _strategy(parsed, reader))
    except BaseException:
        engine.dispose()  # the strategy's checks may have opened a connection
        raise


def source_engine(options: DatabaseOptions) -> Engine:
    """The source's engine; on SQLite, undecodable TEXT bytes reach ``check_row``.

    SQLite stores whatever bytes a legacy writer hands it, and its default decoding
    fails the whole fetch on one bad value ("Could not decode to UTF-8 column"):
    ``sqlite_text`` turns them into a reject of that field instead.
    """
    url = source_url(options)
    _refuse_missing_sqlite_file(url)
    driver_options = engine_options(url, options)
    try:
        engine = bound_silent_servers(
            create_engine(url, pool_pre_ping=True, **driver_options))
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"'url': no driver for {url.drivername!r} ({exc}); install it "
                          f"or name an installed driver, such as oracle+oracledb://",
                          zh=f"'url'：没有 {url.drivername!r} 的驱动（{exc}）；请安装它，"
                             f"或改用已安装的驱动，例如 oracle+oracledb://") from exc
    except Exception as exc:  # it connects to nothing: the URL, an option or the client
        said = redact(str(exc))  # SQLAlchemy quotes an invalid URL in its message
        raise ConfigError(f"'url' or its options: {said}", zh=f"'url' 或其相关选项有误：{said}") \
            from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _decode_leniently)
    session = session_settings(engine.dialect.name)
    if session:
        event.listen(engine, "connect", functools.partial(_set_session, session))
    return engine


def _decode_leniently(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.text_factory = sqlite_text


# Every session speaks Beijing time (the domain's convention for naive times): a
# zone-aware column (PostgreSQL timestamptz, MySQL TIMESTAMP, Oracle TIMESTAMP WITH
# TIME ZONE) is then compared with the cursor's naive bound, and read back, in Beijing
# time whatever the server's own zone; on a UTC server the safety lag was 8 hours off
# and late commits inside it were skipped. A row a legacy transaction keeps locked is
# left out of the write-back where the server can skip it (``db_locks``); elsewhere it
# fails the write-back after a bounded wait (the source is retried on the next poll,
# the other sources go on) rather than stalling the agent; Oracle, which has no such
# setting, gets a call timeout on the write-back (``_round_trips_bounded``).
LOCK_WAIT_SECONDS = 10


def session_settings(dialect_name: str) -> tuple[str, ...]:
    """The statements that open every session of a source on ``dialect_name``."""
    wait = LOCK_WAIT_SECONDS
    mysql = (f"SET time_zone = '+08:00', innodb_lock_wait_timeout = {wait}",)
    return {
        "postgresql": ("SET TIME ZONE 'Asia/Shanghai'", f"SET lock_timeout = '{wait}s'"),
        "mysql": mysql,
        "mariadb": mysql,
        "oracle": ("ALTER SESSION SET TIME_ZONE = '+08:00'",),
    }.get(dialect_name, ())


def _set_session(statements: tuple[str, ...], dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for statement in statements:
            cursor.execute(statement)
    finally:
        cursor.close()
    # Session settings outlive a commit, while the pool's rollback on check-in would
    # undo a SET still inside psycopg's implicit transaction.
    dbapi_connection.commit()


def source_url(options: DatabaseOptions) -> URL:
    """The source's URL, with the password of ``password_file`` when one is given."""
    url = engine_url(options.url)
    if options.password_file is None:
        return url
    if url.get_backend_name() == "sqlite":
        raise ConfigError("'password_file': a SQLite database has no password; remove it",
                          zh="'password_file'：SQLite 数据库没有口令，请删除此项")
    return url.set(password=read_password_file(options.password_file, "'password_file'"))


def _refuse_missing_sqlite_file(url: URL) -> None:
    """SQLite creates a database file that is not there: a mistyped path would be read as
    an empty database, "no such table" on every poll, for ever."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri") == "true":
        return  # SQLite's URI form names its file itself
    if url.database in (None, "", ":memory:") or Path(url.database).is_file():
        return
    raise ConfigError(
        f"'url': no SQLite database {url.database}: check the path, or create the"
        f" front-end tables there with `exgate frontdb init --url {url}`",
        zh=f"'url'：SQLite 数据库 {url.database} 不存在：请检查路径，或用"
           f" exgate frontdb init --url {url} 在此创建前置库表")


def engine_options(url: URL, options: DatabaseOptions) -> dict[str, Any]:
    """Driver-specific ``create_engine`` arguments: timeouts, Oracle thick mode."""
    bounded = connect_args(url)
    wants_thick = options.oracle_thick or options.oracle_client_lib is not None
    if not wants_thick:
        return {"connect_args": bounded} if bounded else {}
    if url.get_backend_name() != "oracle":
        raise ConfigError("'oracle_thick' and 'oracle_client_lib' apply to Oracle URLs only",
                          zh="'oracle_thick' 和 'oracle_client_lib' 只适用于 Oracle 的 URL")
    if url.get_driver_name() != "oracledb":
        # cx_Oracle always uses the client libraries; it finds them itself.
        return {}
    lib = options.oracle_client_lib
    return {"thick_mode": {"lib_dir": lib} if lib else True, "connect_args": bounded}


def _strategy(options: DatabaseOptions, reader: ReadContext) -> Strategy:
    if options.strategy == "changelog":
        return ChangelogStrategy(reader, options.changelog_gap_wait_seconds)
    if options.strategy == "cursor":
        check_timestamp_types(reader)
        return CursorStrategy(reader, options.cursor_safety_lag_seconds,
                              options.cursor_null_scan_seconds)
    return FlagStrategy(reader)


class DatabaseSource:
    """Front-end database tables as a source; see ``db_strategies`` for the strategies."""

    def __init__(self, name: str, context: SourceContext, reader: ReadContext,
                 strategy: Strategy) -> None:
        self.name = name
        self._context = context
        self._reader = reader
        self._strategy = strategy
        self._by_name = by_name(reader.tables)
        self._resumed = False  # True once the last journaled page's write-back is done
        self._writer: ThreadPoolExecutor | None = None  # of an overlapped write-back
        self._writing: Future[None] | None = None
        self._rooms: dict[str, MessageRoom] = {}  # by table, for the write-back only
        self._held = HeldRows()  # rows another transaction held at the write-back
        self._skip_locked = True  # off once the server refuses it (``_leave_out_held``)

    def read(self, state: Mapping[str, Any]) -> Iterator[Chunk]:
        """Yield validated pages after ``state``; every chunk's progress is the whole state.

        The first read of this instance (the agent's start), and the first read after a
        failed ``commit``, first finish the write-back of the last page journaled, which
        a crash or a failed UPDATE (a lock, a dropped connection) left undone. The read
        ends once the write-back of its last page is done, so the next pass never reads
        a page again only because its write-back was still running.
        """
        try:
            with self._driver_errors("read"):
                if not self._resumed:
                    unconfirmed = self._strategy.unconfirmed(state)
                    if unconfirmed:
                        self._write_back(self._misflagged(unconfirmed))
                    self._resumed = True
                last = dict(state)
                with self._pages(state) as pages:
                    for page in pages:
                        if self._held and self._strategy.rereads_unmarked:
                            page = self._held.kept_out(page, time.monotonic())
                            if not page.rows and page.progress == last:
                                continue  # nothing but held rows: nothing new to say
                        last = page.progress
                        yield self._chunk(page)
        except BaseException:  # an error, or the agent stopping early (GeneratorExit)
            self._settle_quietly()
            raise
        self._settle()

    def _pages(self, state: Mapping[str, Any]) -> AbstractContextManager[Iterator[Page]]:
        """The strategy's pages; from a server, fetched a page ahead (``read_ahead``)."""
        pages = self._strategy.pages(state)
        return read_ahead(pages) if self._overlapped else nullcontext(pages)

    def commit(self, chunk: Chunk) -> None:
        """Mark journaled rows taken (1) and rejected rows (2, with SYNC_MSG) at once.

        On a server, for a ``pipelined`` strategy, the UPDATEs run in a thread while
        the agent validates the next page: this returns once the previous page's
        write-back is done (raising its error, if it failed) and this one's has begun.
        """
        if not self._strategy.writes_back or not chunk.checks:
            return  # nothing to write back (cursor): no thread either
        if not self._overlapped:
            self._write_back(chunk)
            return
        self._settle()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="exgate-write-back")
        self._writing = self._writer.submit(self._write_back, chunk)

    def _settle(self) -> None:
        """Wait for the write-back in progress, if any, and raise its error."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _settle_quietly(self) -> None:
        """``_settle`` while another exception leaves ``read``: that one is raised (a
        broken outbox must still stop the agent); a failed write-back only means its
        rows are read again, so it is logged."""
        try:
            self._settle()
        except Exception as exc:
            warning = Localized(f"数据源 {self.name}：上一页的回写失败，这些行将再次读取："
                                f"{message_of(exc, 'zh')}",
                                f"source {self.name}: the last page's write-back failed; "
                                f"its rows will be read again: {message_of(exc, 'en')}")
            log.warning(warning.pick(self._context.lang))

    @functools.cached_property
    def _overlapped(self) -> bool:
        """Whether reads and write-backs overlap the agent's work (``pipelined``).

        SQLite runs in this process: it has no server's wait to overlap.
        """
        return self._strategy.pipelined and self._reader.engine.dialect.name != "sqlite"

    def _write_back(self, chunk: Chunk) -> None:
        taken: dict[str, list[int]] = {}
        rejected: dict[str, list[dict[str, Any]]] = {}
        now = self._reader.clock().astimezone(BEIJING).replace(tzinfo=None)
        rooms: dict[str, MessageRoom] = {}  # looked up once a table and write-back
        for origin, check in chunk.checks:
            table, _, row_id = origin.locator.rpartition("#")
            if check.record is not None:
                taken.setdefault(table, []).append(int(row_id))
            else:
                room = rooms.get(table) or rooms.setdefault(table, self._room(table))
                msg = reject_message(check, self._context.lang, room)
                rejected.setdefault(table, []).append(
                    {"b_id": int(row_id), "b_msg": msg, "b_now": now})
        try:
            try:
                self._mark(taken, rejected, now)
            except _SkipLockedRefused:
                self._mark(taken, rejected, now)  # now without: ``_skip_locked`` is off
        except BaseException:
            # This page is journaled and its progress saved: ``pages`` will not hand its
            # rows out again, so the next ``read`` must re-apply its write-back first.
            self._resumed = False
            raise

    def _mark(self, taken: dict[str, list[int]], rejected: dict[str, list[dict[str, Any]]],
              now: datetime) -> None:
        """One transaction: the rows taken and rejected marked, but for held ones."""
        with self._driver_errors("commit"), self._reader.engine.begin() as conn, \
                _round_trips_bounded(conn):
            if self._skip_locked and skips_locked(conn.dialect):
                taken, rejected = self._leave_out_held(conn, taken, rejected)
            for table, row_ids in taken.items():
                for statement in self._mark_taken(self._table(table), row_ids, now):
                    conn.execute(statement)
            for table, params in rejected.items():
                if params:
                    conn.execute(mark_rejected(self._table(table)), params)

    def _leave_out_held(
        self, conn: Connection, taken: dict[str, list[int]],
        rejected: dict[str, list[dict[str, Any]]],
    ) -> tuple[dict[str, list[int]], dict[str, list[dict[str, Any]]]]:
        """``taken`` and ``rejected`` without the rows another transaction holds, which
        stay as they are until a later pass reads them again (``db_locks``).

        A server that takes the version's word for SKIP LOCKED and then refuses it (a
        compatible database of another make) turns it off for this source, said once:
        ``_SkipLockedRefused`` has the write-back run again without it.
        """
        kept_taken: dict[str, list[int]] = {}
        kept_rejected: dict[str, list[dict[str, Any]]] = {}
        for table in taken.keys() | rejected.keys():
            ids = [*taken.get(table, ()), *(p["b_id"] for p in rejected.get(table, ()))]
            try:
                free = free_rows(conn, self._table(table), ids)
            except (ProgrammingError, NotSupportedError) as exc:
                if "SKIP" not in str(exc.orig).upper() and "syntax" not in str(exc.orig).lower():
                    raise  # not the clause (a right missing, say): said as the error it is
                self._skip_locked = False
                warning = Localized(
                    f"数据源 {self.name}：数据库不支持 SELECT … FOR UPDATE SKIP LOCKED"
                    f"（{driver_detail(exc)}）；回写改为等待被锁定的行",
                    f"source {self.name}: the database refuses SELECT … FOR UPDATE SKIP "
                    f"LOCKED ({driver_detail(exc)}); the write-back waits for locked rows "
                    "instead")
                log.warning(warning.pick(self._context.lang))
                raise _SkipLockedRefused from exc
            kept_taken[table] = [i for i in taken.get(table, ()) if i in free]
            kept_rejected[table] = [p for p in rejected.get(table, ()) if p["b_id"] in free]
            held = [i for i in ids if i not in free]
            if new := self._held.note(table, held, free, time.monotonic()):
                self._tell_held(table, new)
        return kept_taken, kept_rejected

    def _tell_held(self, table: str, new: list[int]) -> None:
        """Say the rows newly held, once while they stay held (a poll a second would
        repeat it)."""
        shown = ", ".join(map(str, new[:10])) + (f" … (+{len(new) - 10})" if len(new) > 10 else "")
        warning = Localized(
            f"数据源 {self.name}：{table} 中 ROW_ID 为 {shown} 的行正被其他事务锁定（例如有人"
            "正在编辑），本次未回写其标志；解锁后的轮询将再次读取这些行",
            f"source {self.name}: rows {shown} of {table} are locked by another transaction "
            "(someone editing them, say): their flags are not written back now; a poll "
            "reads them again once they are free")
        log.warning(warning.pick(self._context.lang))

    def _mark_taken(self, table: ElementTable, row_ids: list[int],
                    now: datetime) -> Iterator[Update]:
        """One UPDATE per page on PostgreSQL (an array parameter), IN lists elsewhere.

        A long IN list costs PostgreSQL a parameter per row to bind and plan; ``= ANY``
        of one array does the same update about three times faster.
        """
        if not row_ids:
            return
        if self._reader.engine.dialect.name == "postgresql":
            yield _mark_taken_any(table, row_ids, now)
            return
        for batch in in_batches(row_ids):
            yield mark_taken(table, batch, now)

    def close(self) -> None:
        try:
            self._settle()
        finally:
            if self._writer is not None:
                self._writer.shutdown()
            self._reader.engine.dispose()

    def __enter__(self) -> DatabaseSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._reader.engine

    def _table(self, name: str) -> ElementTable:
        return self._by_name[name.rpartition(".")[2].upper()]

    def _room(self, name: str) -> MessageRoom:
        """The room in table ``name``'s SYNC_MSG, looked up once (``db_sync_msg``); while
        the database cannot be asked, the column ``frontdb init`` makes."""
        room = self._rooms.get(name)
        if room is None:
            room = look_up_room(self._reader.engine, self._table(name))
            if room is None:
                return FRONTDB_ROOM
            self._rooms[name] = room
        return room

    def _misflagged(self, unconfirmed: Sequence[Unconfirmed]) -> Chunk:
        """The rows whose flag is not the one they were journaled for: the others'
        write-back is done, and rewriting it would move their SYNC_TIME.

        A row whose content validates otherwise now than when it was journaled (time
        went by, the config or the catalogue changed) is left as it is: marking it by
        the new verdict would mark a row taken whose record was never journaled. At 0
        (its write-back lost) the closing sweep reads it again. With no journaled
        verdict kept (a state saved by an older exgate), the new one decides.
        """
        checked = self._chunk(Page(tuple(u.row for u in unconfirmed), {}))
        kept = []
        for (origin, check), row in zip(checked.checks, unconfirmed, strict=True):
            verdict = TAKEN if check.valid else REJECTED
            if row.journaled is not None and row.journaled != verdict:
                continue
            if row.flag is None or int(row.flag) != verdict:
                kept.append((origin, check))
        return Chunk(tuple(kept), {})

    def _chunk(self, page: Page) -> Chunk:
        latest = self._reader.clock() + timedelta(days=1)
        catalog, division = self._context.catalog, self._context.node_division
        checks = tuple(
            (Origin(self.name, f"{row.table.name}#{row.ident}"),
             untimed_check(row.table, row.values[0], catalog) if page.untimed
             else check_row(row.table, row.values, catalog, division, latest))
            for row in page.rows)
        rejected = (row for row, (_, check) in zip(page.rows, checks, strict=True)
                    if check.record is None)
        return Chunk(checks=checks, progress=with_verdicts(page.progress, rejected))

    @contextmanager
    def _driver_errors(self, action: str) -> Iterator[None]:
        """A driver's failure as a ``RetriableError`` in both languages, with the driver's
        own words only (``driver_detail``): SQLAlchemy's SQL dump would put a page's whole
        query (and row values) into the operator's log line. The original error stays
        chained as ``__cause__``."""
        try:
            yield
        except SQLAlchemyError as exc:
            where = shown_url(self._reader.engine.url)
            detail = driver_detail(exc)
            action_zh = {"read": "读取", "commit": "写回"}.get(action, action)
            raise RetriableError(f"source {self.name!r}: cannot {action} {where}: {detail}",
                                 zh=f"数据源 {self.name!r}：无法{action_zh} {where}：{detail}"
                                 ) from exc


class _SkipLockedRefused(Exception):
    """The server refused ``FOR UPDATE SKIP LOCKED``: write back without it."""


@contextmanager
def _round_trips_bounded(conn: Connection) -> Iterator[None]:
    """On Oracle, bound each round trip of the write-back to ``LOCK_WAIT_SECONDS``.

    Oracle has no session lock timeout: a row a legacy transaction keeps locked would
    hold the UPDATE, and the agent, for as long as that transaction lasts. A call
    timeout (python-oracledb, and cx_Oracle with 18c client libraries) fails it instead,
    like ``lock_timeout`` on PostgreSQL. Only here: a page's SELECT may rightly be slow,
    so the connection's own call timeout (``db_connect.bound_round_trips``) comes back after.
    """
    driver: Any = conn.connection.driver_connection
    if conn.dialect.name != "oracle" or not hasattr(driver, "call_timeout"):
        yield
        return
    before = driver.call_timeout
    driver.call_timeout = LOCK_WAIT_SECONDS * 1000  # milliseconds
    try:
        yield
    finally:
        # A timed-out call may have broken the connection: its error is the one to raise.
        with suppress(Exception):
            driver.call_timeout = before


def _mark_taken_any(element: ElementTable, row_ids: Sequence[int], now: datetime) -> Update:
    """``mark_taken`` for PostgreSQL: ``ROW_ID = ANY(:ids)`` with the ids as one array."""
    assert element.row_id is not None
    return (update(element.table).where(any_row_id(element.row_id, row_ids))
            .values({element.controls["SYNC_FLAG"]: TAKEN, element.controls["SYNC_TIME"]: now,
                     element.controls["SYNC_MSG"]: None}))

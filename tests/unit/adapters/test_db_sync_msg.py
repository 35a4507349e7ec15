"""SYNC_MSG room: a reject reason cut to what the table's column holds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, oracle

from adapters.frontdb import SYNC_MSG_LENGTH, front_tables
from adapters.sources.db_options import parse_options
from adapters.sources.db_sync_msg import FRONTDB_ROOM, MessageRoom, look_up_room, room_of
from adapters.sources.db_tables import element_tables
from schemas.catalog import load_catalog

REASON = "SLZT [bad-value] 办件状态“bogus”不在代码表中; SLSJ [bad-time] 受理时间“never”不是时间"


@pytest.mark.parametrize("length", [1, 2, 10, 40, len(REASON) - 1])
def test_a_reason_cut_in_characters_fills_the_column_and_ends_in_an_ellipsis(
        length: int) -> None:
    cut = MessageRoom(length).fit(REASON)
    assert len(cut) == length
    assert cut == REASON[:length - 1] + "…"


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 20, 41, 100])
def test_a_reason_cut_in_bytes_never_splits_a_character(length: int) -> None:
    cut = MessageRoom(length, in_bytes=True).fit(REASON)
    assert len(cut.encode()) <= length
    assert cut.endswith("…") == (length >= 3)
    body = cut.removesuffix("…")
    assert REASON.startswith(body)
    room = length - len("…".encode()) if length >= 3 else length
    assert len(body.encode()) + len(REASON[len(body)].encode()) > room  # the next did not fit


def test_a_reason_that_fits_is_left_whole() -> None:
    assert MessageRoom(len(REASON)).fit(REASON) == REASON
    assert MessageRoom(len(REASON.encode()), in_bytes=True).fit(REASON) == REASON
    assert MessageRoom(len(REASON.encode()) - 1, in_bytes=True).fit(REASON) != REASON


@pytest.mark.parametrize(("column_type", "dialect", "room"), [
    (sa.VARCHAR(40), "postgresql", MessageRoom(40)),
    (mysql.VARCHAR(200), "mysql", MessageRoom(200)),
    (sa.VARCHAR(500), "oracle", MessageRoom(500, in_bytes=True)),  # VARCHAR2 reflected
    (sa.NVARCHAR(500), "oracle", MessageRoom(500)),  # NVARCHAR2: always characters
    (sa.VARCHAR(8000), "postgresql", FRONTDB_ROOM),  # never more than frontdb's
    (mysql.TINYTEXT(), "mysql", MessageRoom(255, in_bytes=True)),
    (mysql.TEXT(), "mysql", FRONTDB_ROOM),
    (sa.Text(), "postgresql", FRONTDB_ROOM),
    (oracle.CLOB(), "oracle", FRONTDB_ROOM),
    (sa.VARCHAR(), "postgresql", FRONTDB_ROOM),
    (None, "postgresql", FRONTDB_ROOM),  # no such column: the write-back says so
])
def test_the_room_of_a_reflected_column(column_type: sa.types.TypeEngine[object] | None,
                                        dialect: str, room: MessageRoom) -> None:
    assert room_of(column_type, dialect) == room


def test_the_room_is_looked_up_in_the_table_and_none_while_it_cannot_be() -> None:
    engine = sa.create_engine("sqlite://")
    catalog = load_catalog()
    tables = element_tables(parse_options({"url": "sqlite://"}, catalog), "sqlite", catalog)
    assert look_up_room(engine, tables["SL"]) is None  # not created yet
    front_tables("sqlite").metadata.create_all(engine)
    assert look_up_room(engine, tables["SL"]) == MessageRoom(SYNC_MSG_LENGTH)

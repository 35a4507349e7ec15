"""How much of a reject reason a table's ``SYNC_MSG`` column holds.

``frontdb init`` makes the column 2,000 characters (NVARCHAR2 on Oracle). A legacy
table that a mapping points at may carry its own, narrower one: VARCHAR(200), MySQL's
TINYTEXT, or an Oracle VARCHAR2 whose length counts bytes. A reason cut to 2,000
characters would fail such a table's write-back on every poll (PostgreSQL and strict
MySQL refuse it, Oracle raises ORA-12899), taking the page's journaled rows down with
it, read again forever. So the column is looked up once per table, and each reason is
cut to what the column holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, String, Unicode, inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeEngine

from adapters.frontdb import SYNC_MSG_LENGTH

if TYPE_CHECKING:  # db_tables cuts its reasons with MessageRoom
    from adapters.sources.db_tables import ElementTable

__all__ = ["FRONTDB_ROOM", "MessageRoom", "look_up_room", "room_of"]

_ELLIPSIS = "…"
_TINYTEXT_BYTES = 255


@dataclass(frozen=True)
class MessageRoom:
    """A SYNC_MSG column's length; ``in_bytes`` when it may count bytes, not characters.

    Bytes are counted as UTF-8, the widest encoding a Chinese character takes in the
    character sets of these databases (GBK's two bytes fit too).
    """

    length: int = SYNC_MSG_LENGTH
    in_bytes: bool = False

    def fit(self, text: str) -> str:
        """``text``, or as much of it as fits followed by "…"."""
        if len(text) <= self.length and not (
                self.in_bytes and len(text.encode()) > self.length):
            return text
        if not self.in_bytes:
            return text[:self.length - 1] + _ELLIPSIS if self.length > 0 else ""
        room = self.length - len(_ELLIPSIS.encode())
        if room < 0:
            return text.encode()[:self.length].decode(errors="ignore")
        # A cut inside a character leaves a partial sequence: "ignore" drops it.
        return text.encode()[:room].decode(errors="ignore") + _ELLIPSIS


FRONTDB_ROOM = MessageRoom()  # the column ``frontdb init`` creates


def room_of(column_type: TypeEngine[object] | None, dialect_name: str) -> MessageRoom:
    """The room a reflected SYNC_MSG type gives; the default for an unbounded text
    (TEXT, CLOB) or a column not found (the write-back then says it is missing)."""
    if isinstance(column_type, mysql.TINYTEXT):
        return MessageRoom(_TINYTEXT_BYTES, in_bytes=True)
    length = getattr(column_type, "length", None)
    if not isinstance(column_type, String) or length is None:
        return FRONTDB_ROOM
    # An Oracle VARCHAR2 or CHAR is in bytes unless declared in CHAR: reflection cannot
    # tell the two apart, so it is taken as bytes. NVARCHAR2 always counts characters.
    in_bytes = dialect_name == "oracle" and not isinstance(column_type, Unicode)
    return MessageRoom(min(length, SYNC_MSG_LENGTH), in_bytes)


def look_up_room(engine: Engine, element: ElementTable) -> MessageRoom | None:
    """The room of ``element``'s SYNC_MSG column; None when the database cannot be asked
    now (it is away, or the catalogue is closed to the agent's user)."""
    name = element.controls["SYNC_MSG"].name.lower()
    try:
        columns = inspect(engine).get_columns(element.table.name, schema=element.table.schema)
    except SQLAlchemyError:
        return None
    found = next((c["type"] for c in columns if c["name"].lower() == name), None)
    return room_of(found, engine.dialect.name)

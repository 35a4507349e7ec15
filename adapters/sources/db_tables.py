"""How one element is read from one table: columns, value conversion, write-back.

Field columns are selected untyped, so each driver hands back its own Python values
(``datetime``, ``Decimal``, SQLite's raw text) and a malformed value becomes a reject
with a reason instead of a conversion error that stops the page. Only Oracle amounts
are typed, because python-oracledb returns ``NUMBER`` as a float otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnClause,
    ColumnElement,
    DateTime,
    Integer,
    Numeric,
    String,
    TableClause,
    Update,
    any_,
    bindparam,
    column,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import NullType, TypeEngine

from adapters.frontdb import (
    AMOUNT_PRECISION,
    AMOUNT_SCALE,
    SYNC_MSG_LENGTH,
    fold_identifier,
    table_name,
)
from adapters.sources.db_options import DatabaseOptions, MappingOptions
from adapters.sources.db_rejects import unrepresentable, untimed_issue
from adapters.sources.db_sync_msg import FRONTDB_ROOM, MessageRoom
from schemas.catalog import ElementSpec, SchemaCatalog
from schemas.record_check import RecordCheck, check_fields
from schemas.times import format_time

__all__ = [
    "ElementTable",
    "by_name",
    "check_row",
    "element_tables",
    "fields_of",
    "in_batches",
    "mark_rejected",
    "mark_taken",
    "reject_message",
    "to_text",
    "untimed_check",
]

TAKEN, REJECTED = 1, 2
_IN_LIST_LIMIT = 1000  # Oracle refuses longer IN lists (ORA-01795)


@dataclass(frozen=True, eq=False)
class ElementTable:
    """An element's source table: the standard EX_<CODE> or a mapped legacy table."""

    element: str
    name: str                                   # as configured: "EX_SBXX", "LEGACY_APPLY"
    table: TableClause
    fields: tuple[tuple[str, ColumnClause[Any]], ...]   # field code → column
    controls: Mapping[str, ColumnClause[Any]]   # ROW_ID, SYNC_FLAG, … (flag/changelog)
    timestamp: ColumnClause[Any] | None = None  # cursor column
    key: tuple[ColumnClause[Any], ...] = ()     # cursor tie-breakers
    time_fields: frozenset[str] = frozenset()

    @property
    def row_id(self) -> ColumnClause[Any] | None:
        return self.controls.get("ROW_ID")

    @cached_property
    def codes(self) -> tuple[str, ...]:
        """The field codes in ``fields`` order: the keys of every row's field dict."""
        return tuple(code for code, _ in self.fields)

    @cached_property
    def time_codes(self) -> tuple[str, ...]:
        """The time fields this table reads (a mapped table may read only some)."""
        return tuple(code for code in self.codes if code in self.time_fields)


def element_tables(options: DatabaseOptions, dialect_name: str,
                   catalog: SchemaCatalog) -> dict[str, ElementTable]:
    """The tables the source reads, by element code, in catalogue order."""
    mapping = options.mapping or {}
    return {code: _element_table(catalog.elements[code], mapping.get(code), options.strategy,
                                 dialect_name)
            for code in options.tables}


def _element_table(spec: ElementSpec, mapped: MappingOptions | None, strategy: str,
                   dialect_name: str) -> ElementTable:
    columns: dict[str, ColumnClause[Any]] = {}

    def col(name: str, type_: TypeEngine[Any] | None = None) -> ColumnClause[Any]:
        folded = fold_identifier(name, dialect_name)
        return columns.setdefault(folded, column(folded, type_ or NullType()))

    name = mapped.table if mapped else table_name(spec.code)
    sources = mapped.columns if mapped else {f: f for f in spec.fields}
    fields = tuple((f, col(c, _read_type(spec.fields[f].type_name, dialect_name)))
                   for f, c in sources.items())
    controls = {code: col(code, type_) for code, type_ in _CONTROL_TYPES.items()} \
        if strategy != "cursor" or mapped is None else {}
    timestamp: ColumnClause[Any] | None = None
    key: tuple[ColumnClause[Any], ...] = ()
    if strategy == "cursor" and mapped is None:  # GXSJ, with ROW_ID as the tie-breaker
        timestamp, key = col("GXSJ"), (controls["ROW_ID"],)
    elif strategy == "cursor" and mapped is not None and mapped.timestamp is not None:
        timestamp, key = col(mapped.timestamp), tuple(col(k) for k in mapped.key)
    schema, _, bare = name.rpartition(".")
    clause = table(fold_identifier(bare, dialect_name), *columns.values(),
                   schema=fold_identifier(schema, dialect_name) if schema else None)
    return ElementTable(spec.code, name, clause, fields, controls, timestamp, key,
                        frozenset(spec.time_fields))


_CONTROL_TYPES: dict[str, TypeEngine[Any]] = {
    "ROW_ID": BigInteger(), "SYNC_FLAG": Integer(), "SYNC_TIME": DateTime(),
    "SYNC_MSG": String(SYNC_MSG_LENGTH),
}


def _read_type(type_name: str, dialect_name: str) -> TypeEngine[Any]:
    if type_name == "Amount" and dialect_name == "oracle":
        return Numeric(AMOUNT_PRECISION, AMOUNT_SCALE, asdecimal=True)
    return NullType()


def to_text(value: Any) -> str | None:
    """A database value in the exchange text form the validator expects."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):  # before ``date``, its base class
        return _datetime_text(value)
    if isinstance(value, bool):  # before ``int``, its base class
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # keeps the scale: Decimal("12.50") → "12.50"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d 00:00:00")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _datetime_text(value: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss``; naive values are Beijing time already (domain convention)."""
    if value.tzinfo is not None:
        return format_time(value)
    # isoformat is several times cheaper than strftime, and the same text from year 1000
    # on; strftime does not pad earlier years, and such a value keeps its old spelling.
    return value.isoformat(" ", "seconds") if value.year >= 1000 \
        else value.strftime("%Y-%m-%d %H:%M:%S")


# By exact type, what ``to_text`` does for the types drivers hand over most often.
_TO_TEXT: dict[type, Callable[[Any], str]] = {datetime: _datetime_text, int: str}


def reject_message(check: RecordCheck, lang: str, room: MessageRoom = FRONTDB_ROOM) -> str:
    """The SYNC_MSG of a rejected row: ``FIELD [code] message; …`` cut to the column."""
    parts = []
    for issue in check.issues:
        message = issue.message(lang)
        where = issue.field or check.element
        parts.append(f"[{issue.code}] {message}" if where in message
                     else f"{where} [{issue.code}] {message}")
    return room.fit("; ".join(parts))


def in_batches(values: Sequence[Any], size: int = _IN_LIST_LIMIT) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def any_row_id(row_id: ColumnClause[Any], row_ids: Sequence[int]) -> ColumnElement[bool]:
    """``ROW_ID = ANY(:ids)`` with the ids as one array (PostgreSQL): a long IN list costs
    a parameter per row to build, bind and plan."""
    return row_id == any_(bindparam("b_ids", list(row_ids), type_=ARRAY(BigInteger())))


def mark_taken(element: ElementTable, row_ids: Sequence[int], now: datetime) -> Update:
    """SYNC_FLAG=1 for journaled rows; a repeat after a crash changes nothing."""
    assert element.row_id is not None
    return (update(element.table).where(element.row_id.in_(row_ids))
            .values({element.controls["SYNC_FLAG"]: TAKEN, element.controls["SYNC_TIME"]: now,
                     element.controls["SYNC_MSG"]: None}))


def mark_rejected(element: ElementTable) -> Update:
    """SYNC_FLAG=2 and the reason; run with ``[{"b_id": …, "b_msg": …, "b_now": …}]``."""
    assert element.row_id is not None
    return (update(element.table).where(element.row_id == bindparam("b_id"))
            .values({element.controls["SYNC_FLAG"]: REJECTED,
                     element.controls["SYNC_TIME"]: bindparam("b_now", type_=DateTime()),
                     element.controls["SYNC_MSG"]: bindparam("b_msg")}))


def fields_of(element: ElementTable, values: Iterable[Any]) -> dict[str, str | None]:
    """Field code → exchange text for one row's field values (in ``element.fields`` order)."""
    # Most values are text already: skip the call for them, it is most of the cost; and
    # the usual other types go straight to their converter, past to_text's isinstance chain.
    texts = [value if value is None or type(value) is str
             else _TO_TEXT.get(type(value), to_text)(value)
             for value in values]
    fields = dict(zip(element.codes, texts, strict=True))
    for code in element.time_codes:
        fields[code] = _whole_seconds(fields[code])
    return fields


def check_row(element: ElementTable, values: Iterable[Any], catalog: SchemaCatalog,
              division: str, latest: datetime) -> RecordCheck:
    """Validate one row's field values like an XML record.

    A value with no exchange form (a character XML cannot carry, bytes that are not
    UTF-8) makes the row a ``bad-value`` reject (``db_rejects``): the validator would
    otherwise raise and stop the whole page, again on every poll.
    """
    fields = fields_of(element, values)
    if _may_hold_non_xml(fields.values()):
        issues = unrepresentable(catalog.elements[element.element], fields)
        if issues:
            return RecordCheck(element.element, None, None, issues)
    # Either way every value is XML text now: the fast path need not scan the row again.
    return check_fields(element.element, fields, catalog, division, latest, xml_text=True)


def untimed_check(element: ElementTable, timestamp: Any, catalog: SchemaCatalog) -> RecordCheck:
    """The reject of a cursor row whose ``timestamp`` has no place in the order (NULL,
    or text in another notation), whatever its fields hold.

    Its fields are validated once the timestamp is filled and the cursor reads it.
    """
    assert element.timestamp is not None
    field = next((code for code, c in element.fields if c is element.timestamp), None)
    issue = untimed_issue(catalog.elements[element.element], element.timestamp.name, field,
                          timestamp)
    return RecordCheck(element.element, None, None, (issue,))


def _may_hold_non_xml(texts: Iterable[str | None]) -> bool:
    """False when no text can hold a character outside XML: the usual, cheap answer.

    Every such character (C0 controls, surrogates, U+FFFE/U+FFFF) is unprintable, and
    one ``isprintable`` over the joined row is far cheaper than a search per field.
    Undecodable bytes arrive as surrogate escapes, so they take the slow path too.
    """
    return not "".join(filter(None, texts)).isprintable()


def _whole_seconds(text: str | None) -> str | None:
    """Drop the fraction of ``yyyy-MM-dd HH:mm:ss.ffffff``, SQLite's text of a DATETIME.

    The exchange form has whole seconds; other spellings are left to the validator.
    """
    if text is not None and len(text) > 20 and text[10] == " " and text[19] == "." \
            and text[20:].isdigit():
        return text[:19]
    return text


def by_name(tables: Mapping[str, ElementTable]) -> dict[str, ElementTable]:
    """Tables by upper-case bare name (no schema): how locators and EX_CHANGELOG name them.

    ``parse_options`` refuses two such names for the strategies that write back.
    """
    return {t.name.rpartition(".")[2].upper(): t for t in tables.values()}

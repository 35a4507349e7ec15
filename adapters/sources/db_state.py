"""The persisted positions of the database strategies, as pure functions on plain data.

Every ``progress`` a strategy hands out is its *whole* state (a versioned dict), since
the agent keeps only the last one. An unknown version or another strategy's state
starts the strategy from the beginning: re-delivery is safe, the outbox drops the
duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import TIMESTAMP, ColumnElement, DateTime, and_, literal, or_
from sqlalchemy.sql.elements import ColumnClause

from adapters.sources.sqlite_bytes import bound_text, from_hex, holds_undecoded, to_hex

__all__ = [
    "STATE_VERSION",
    "ChangelogPosition",
    "Gap",
    "after_key",
    "bound_value",
    "decode_value",
    "encode_value",
    "strategy_state",
]

STATE_VERSION = 1


def strategy_state(state: Mapping[str, Any], strategy: str) -> Mapping[str, Any]:
    """``state`` when it is this strategy's current version, else an empty start."""
    if state.get("v") == STATE_VERSION and state.get("strategy") == strategy:
        return state
    return {}


# -- changelog -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Gap:
    """SEQs ``start..end`` not seen yet, though a higher SEQ was: first noticed at ``since``."""

    start: int
    end: int
    since: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class ChangelogPosition:
    """Everything up to ``high`` was delivered, except the open ``gaps``.

    ``seq`` (the low-water mark) never passes an open gap: it is the position a DBA may
    purge EX_CHANGELOG up to.
    """

    high: int = 0
    gaps: tuple[Gap, ...] = ()

    @property
    def seq(self) -> int:
        return self.gaps[0].start - 1 if self.gaps else self.high

    def to_progress(self) -> dict[str, Any]:
        return {"v": STATE_VERSION, "strategy": "changelog", "seq": self.seq, "high": self.high,
                "gaps": [[g.start, g.end, g.since] for g in self.gaps]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ChangelogPosition:
        state = strategy_state(state, "changelog")
        gaps = tuple(Gap(int(s), int(e), float(t)) for s, e, t in state.get("gaps", ()))
        return cls(int(state.get("high", 0)), gaps)

    def advance(self, seqs: Iterable[int], now: float) -> ChangelogPosition:
        """Account for the SEQs of one page (ascending): fill gaps, open new ones."""
        position = self
        for seq in seqs:
            if seq <= position.high:
                position = replace(position, gaps=_fill(position.gaps, seq))
                continue
            gaps = position.gaps
            if seq > position.high + 1:
                gaps = (*gaps, Gap(position.high + 1, seq - 1, now))
            position = ChangelogPosition(seq, gaps)
        return position

    def expire(self, before: float) -> ChangelogPosition:
        """Drop gaps first seen before ``before``: their transactions rolled back."""
        return replace(self, gaps=tuple(g for g in self.gaps if g.since > before))


def _fill(gaps: Sequence[Gap], seq: int) -> tuple[Gap, ...]:
    result: list[Gap] = []
    for gap in gaps:
        if gap.start <= seq <= gap.end:
            result.extend(g for g in (Gap(gap.start, seq - 1, gap.since),
                                      Gap(seq + 1, gap.end, gap.since)) if g.start <= g.end)
        else:
            result.append(gap)
    return tuple(result)


# -- cursor ----------------------------------------------------------------------------------

def after_key(columns: Sequence[ColumnClause[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """``(c1, c2, …) > (v1, v2, …)`` spelled out, since Oracle has no row comparison.

    The leading ``c1 >= v1`` lets every database use an index on the first column.
    """
    bound = [bound_value(v) for v in values]

    def strictly_after(index: int) -> ColumnElement[bool]:
        head: ColumnElement[bool] = columns[index] > bound[index]
        if index == len(columns) - 1:
            return head
        return or_(head, and_(columns[index] == bound[index], strictly_after(index + 1)))

    return and_(columns[0] >= bound[0], strictly_after(0))


def bound_value(value: Any) -> Any:
    """A cursor value as a query parameter.

    A time with a fraction of a second is bound as a TIMESTAMP: as a generic DateTime,
    Oracle's drivers bind a DATE, which drops the fraction, and a cursor resting inside
    one second would read the same page again for ever. A whole second keeps the generic
    bind: against an Oracle DATE column (legacy tables mostly have one, and no fraction),
    a TIMESTAMP bind converts the column, row by row, and its index goes unused, while a
    DATE bind against a TIMESTAMP column is converted once. Text is bound as
    ``bound_text`` binds it.
    """
    if isinstance(value, datetime):
        zoned = value.tzinfo is not None
        kind = DateTime(timezone=zoned) if value.microsecond == 0 else TIMESTAMP(timezone=zoned)
        return literal(value, kind)
    return bound_text(value)


def encode_value(value: Any) -> Any:
    """A cursor value as JSON, tagged where JSON has no type of its own or, for SQLite
    text that is not UTF-8, no way to hold it (``sqlite_bytes``)."""
    if isinstance(value, str):
        return {"undecoded": to_hex(value)} if holds_undecoded(value) else value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    return value


_DECODERS: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal,
    "undecoded": from_hex,
}


def decode_value(value: Any) -> Any:
    """The inverse of ``encode_value``: the value exactly as the driver returned it."""
    if isinstance(value, dict):
        ((tag, text),) = value.items()
        return _DECODERS[tag](text)
    return value

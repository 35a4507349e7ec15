"""The contract every source plug-in keeps.

A source reads candidate records in chunks. Each chunk carries the validation outcome
of its records and the source's *progress* after it. The agent journals the valid
records, the rejects and the progress into the outbox in one SQLite transaction, and
only then calls ``commit`` so the source can mark its rows or files as taken.

If the agent dies between the journal and ``commit``, the source hands the same
records out again after restart; the outbox drops them as duplicates (same element,
key, version and content), so every record is journaled exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from schemas.catalog import SchemaCatalog
from schemas.record_check import RecordCheck
from schemas.records import slot_setters

__all__ = ["Chunk", "Origin", "Source", "SourceContext", "SourceFactory"]


@dataclass(frozen=True, slots=True, init=False)
class Origin:
    """Where one candidate record came from, for reports and for marking it taken."""

    source: str          # the source's name in the agent config
    locator: str         # "EX_SBXX#1234" or "inbox/2026-11-20.xml"
    line: int | None = None

    def __init__(self, source: str, locator: str, line: int | None = None) -> None:
        # One per record read: slot setters rather than frozen dataclass's own __init__.
        _set_source(self, source)
        _set_locator(self, locator)
        _set_line(self, line)


_set_source, _set_locator, _set_line = slot_setters(Origin)


@dataclass(frozen=True)
class Chunk:
    """A page of validated candidates plus the source state to persist with them.

    ``progress`` is a JSON-serialisable dict (cursor position, changelog SEQ, file
    name and sha256); it is stored in the outbox in the same transaction as the
    records and handed back to ``read`` after a restart.
    """

    checks: tuple[tuple[Origin, RecordCheck], ...]
    progress: Mapping[str, Any] = field(default_factory=dict)
    file_issues: tuple[Any, ...] = ()  # document-level Issues (drop-folder files)


@dataclass(frozen=True)
class SourceContext:
    """What every source needs from the agent that runs it."""

    node_id: str
    node_division: str     # records must lie within it (schemas.divisions.within)
    catalog: SchemaCatalog
    lang: str = "zh"       # of reject reasons written back (SYNC_MSG, error.json) and logs


class SourceFactory(Protocol):
    """Builds a source from one ``[[sources]]`` table of the agent's TOML config.

    Raises ``schemas.errors.ConfigError`` naming the offending key for bad options.
    """

    def __call__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> Source:
        ...


@runtime_checkable
class Source(Protocol):
    """A pluggable reader of candidate records."""

    name: str

    def read(self, state: Mapping[str, Any]) -> Iterator[Chunk]:
        """Yield chunks starting after ``state`` (the last journaled ``progress``)."""
        ...

    def commit(self, chunk: Chunk) -> None:
        """Mark the chunk's records as taken at the source (flags, file moves).

        Called only after the chunk is durably journaled; must be idempotent.
        """
        ...

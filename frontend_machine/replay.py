"""The agent side of replay (design §2, §8): failed batches and corrected source rejects.

- ``requeue_failed``: batches a level answered ``failed`` go back to ``pending``, so the
  publisher sends them again (same batch ID: a level that stored it meanwhile answers
  ``stored`` again, unchanged).
- ``replay_folder``: files in ``error/`` that now validate clean move back to ``inbox/``
  (their report is removed); the outbox drops the records it already holds as
  duplicates, so only the corrected ones travel. Files still invalid stay, with why.
- ``replay_database``: rows with ``SYNC_FLAG=2`` that now pass ``check_row`` go back
  to ``SYNC_FLAG=0`` (flag strategy). Changelog sources re-read a row when it is
  corrected (the update trigger logs it); cursor sources have no flag to reset.

Every function takes ``dry_run``: then it only says what it would do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy import exc as sa_exc

from adapters.sources.database import source_engine, source_url
from adapters.sources.db_options import parse_options
from adapters.sources.db_tables import (
    REJECTED,
    ElementTable,
    check_row,
    element_tables,
    in_batches,
)
from adapters.sources.db_tables import reject_message as db_reject_message
from adapters.sources.folder_files import REPORT_SUFFIX, free_path, is_candidate
from adapters.sources.folder_options import FolderOptions
from frontend_machine.outbox import Outbox
from frontend_machine.outbox_batches import BatchState
from schemas.audit import validate_file
from schemas.audit_report import format_issue
from schemas.catalog import SchemaCatalog
from schemas.errors import RetriableError
from schemas.times import BEIJING

__all__ = ["Action", "replay_database", "replay_folder", "requeue_failed"]

NEW = 0


@dataclass(frozen=True)
class Action:
    """One thing replay did (or would do): ``done`` says whether it went back in."""

    kind: str          # batch | file | row | source
    subject: str       # batch ID, file name, TABLE#ROW_ID, source name
    done: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "done": self.done,
                "detail": self.detail}


# -- failed batches ------------------------------------------------------------------------


def requeue_failed(outbox: Outbox, batch_ids: Sequence[str], *, all_failed: bool = False,
                   dry_run: bool = False) -> list[Action]:
    """Failed → pending for the named batches (or every failed one)."""
    if all_failed:
        batch_ids = [b.batch_id for b in outbox.batches([BatchState.FAILED.value])]
    actions: list[Action] = []
    for batch_id in batch_ids:
        info = outbox.batch(batch_id)
        if info is None:
            actions.append(Action("batch", batch_id, False, "not in the outbox"))
        elif info.state is not BatchState.FAILED:
            actions.append(Action("batch", batch_id, False, f"state is {info.state.value}, "
                                                            "not failed: nothing to do"))
        elif outbox.payloads_gone(batch_id):
            actions.append(Action("batch", batch_id, False, "its records' payloads are gone:"
                                                            " it cannot be sent again"))
        else:
            if not dry_run:
                outbox.requeue([batch_id])
            actions.append(Action("batch", batch_id, True, f"requeued ({info.last_error})"))
    return actions


# -- drop folders ---------------------------------------------------------------------------


def replay_folder(outbox: Outbox, source: str, options: Mapping[str, Any], node_division: str,
                  *, dry_run: bool = False, lang: str = "zh") -> list[Action]:
    """Move files of ``error/`` that now validate clean back to ``inbox/``.

    Clean as the agent judges: within ``node_division`` too, else a file refused for
    records outside the node would go back to the inbox only to fail again.
    """
    parsed = FolderOptions.parse(options)
    error, inbox = parsed.path / "error", parsed.path / "inbox"
    if not error.is_dir():
        return []
    actions = []
    for path in sorted(p for p in error.iterdir() if is_candidate(p.name) and p.is_file()):
        result = validate_file(path, node_division=node_division)
        if not result.valid:
            first = result.issues[0] if result.issues else None
            why = format_issue(first, lang) if first else (result.unreadable or "invalid")
            actions.append(Action("file", path.name, False,
                                  f"still invalid ({len(result.issues)} issue(s)): {why}"))
            continue
        target = free_path(inbox, path.name)
        if not dry_run:
            inbox.mkdir(exist_ok=True)
            os.rename(path, target)
            path.with_name(path.name + REPORT_SUFFIX).unlink(missing_ok=True)
            outbox.mark_rejects_replayed(source, [path.name])
        actions.append(Action("file", path.name, True, f"valid now → inbox/{target.name}"))
    return actions


# -- database flag sources ------------------------------------------------------------------


def replay_database(outbox: Outbox, source: str, options: Mapping[str, Any],
                    catalog: SchemaCatalog, node_division: str, *, dry_run: bool = False,
                    lang: str = "zh", now: datetime | None = None) -> list[Action]:
    """``SYNC_FLAG`` 2 → 0 for rejected rows that now validate."""
    parsed = parse_options(options, catalog)
    if parsed.strategy != "flag":
        why = ("the update trigger logs a corrected row and the agent re-reads it"
               if parsed.strategy == "changelog" else
               "cursor sources keep no reject flag; a corrected row with a newer GXSJ is "
               "read again")
        return [Action("source", source, False, f"{parsed.strategy} strategy: {why}")]
    url = source_url(parsed)
    engine = source_engine(parsed)  # as the source reads: undecodable text is a reject
    latest = (now or datetime.now(BEIJING)) + timedelta(days=1)
    try:
        actions: list[Action] = []
        for table in element_tables(parsed, engine.dialect.name, catalog).values():
            actions.extend(_replay_table(engine, table, catalog, node_division, latest,
                                         dry_run, lang))
    except sa_exc.SQLAlchemyError as exc:
        raise RetriableError(f"source {source!r}: cannot reset rejected rows at "
                             f"{url.render_as_string(hide_password=True)}: {exc}") from exc
    finally:
        engine.dispose()
    if not dry_run:
        outbox.mark_rejects_replayed(source, [a.subject for a in actions if a.done])
    return actions


def _replay_table(engine: Engine, table: ElementTable, catalog: SchemaCatalog,
                  division: str, latest: datetime, dry_run: bool, lang: str) -> list[Action]:
    assert table.row_id is not None
    flag = table.controls["SYNC_FLAG"]
    query = (select(table.row_id, *(c for _, c in table.fields)).where(flag == REJECTED)
             .order_by(table.row_id))
    actions: list[Action] = []
    fixed: list[int] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            subject = f"{table.name}#{row[0]}"
            check = check_row(table, row[1:], catalog, division, latest)
            if check.valid:
                fixed.append(int(row[0]))
                actions.append(Action("row", subject, True, "valid now → SYNC_FLAG 0"))
            else:
                actions.append(Action("row", subject, False, "still invalid: "
                                      + db_reject_message(check, lang)))
    if fixed and not dry_run:
        with engine.begin() as conn:
            for batch in in_batches(fixed):
                conn.execute(update(table.table)
                             .where(table.row_id.in_(batch))
                             .where(flag == REJECTED)
                             .values({flag: NEW, table.controls["SYNC_MSG"]: None}))
    return actions

"""The agent side of replay (design §2, §8): failed batches and corrected source rejects.

- ``requeue_batches``: batches a level answered ``failed``, and batches ``sent`` that
  some level never answered (its receipt was lost), go back to ``pending``, so the
  publisher sends them again (same batch ID and payloads: a level that stored it
  meanwhile knows the resend and answers ``stored`` again, unchanged). A batch whose
  payloads are gone cannot be rebuilt and stays as it is.
- ``replay_folder``: files in ``error/`` that now validate clean move back to ``inbox/``
  (their report is removed); the outbox drops the records it already holds as
  duplicates, so only the corrected ones travel. Files still invalid stay, with why.
- ``replay_database``: rows with ``SYNC_FLAG=2`` that now pass ``check_row`` go back
  to ``SYNC_FLAG=0`` (flag strategy). Changelog sources re-read a row when it is
  corrected (the update trigger logs it); cursor sources have no flag to reset.

Every function takes ``dry_run``: then it only says what it would do; and ``lang``: the
language of the actions' details (Chinese by default, English with ``"en"``). A file
the system refuses to move, or a database that cannot be reached, is an action that
``failed``; what was done before it is still reported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy import exc as sa_exc

from adapters.db_connect import driver_detail, shown_url
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
from frontend_machine.outbox_batches import BatchInfo, BatchState
from frontend_machine.report import levels_named, status_name
from schemas.audit import validate_file
from schemas.audit_report import format_issue
from schemas.catalog import SchemaCatalog
from schemas.messages import said
from schemas.times import BEIJING

__all__ = ["Action", "replay_database", "replay_folder", "requeue_batches", "state_name"]

NEW = 0

_TEXT: dict[str, tuple[str, str]] = {
    "not-in-outbox": ("发件箱中没有该批次", "not in the outbox"),
    "nothing-to-do": (
        "状态为“{state}”：无需处理（只有失败或已发送未收齐回执的批次可重新发送）",
        "state is {state}: nothing to do (only failed batches, and sent ones still waiting "
        "for a receipt, are sent again)",
    ),
    "payloads-gone": (
        "批次记录的报文内容已清除，无法重新发送",
        "its records' payloads are gone: it cannot be sent again",
    ),
    "requeued-failed": ("已重新排队（{error}）", "requeued ({error})"),
    "failed-at": ("{levels}答复失败", "failed at {levels}"),
    "requeued-sent": (
        "已重新排队，将再次发送：尚未收到{levels}的回执",
        "requeued to be sent again: no receipt yet from {levels}",
    ),
    "still-invalid-file": (
        "仍不合规（{count} 个问题）：{why}",
        "still invalid ({count} issue(s)): {why}",
    ),
    "invalid": ("不合规", "invalid"),
    "file-valid-now": ("已合规 → inbox/{name}", "valid now → inbox/{name}"),
    "file-not-moved": (
        "已合规，但无法移回 inbox/：{error}；请检查该文件及所在目录的权限和磁盘空间",
        "valid now, but it cannot be moved back to inbox/: {error}; check the permissions "
        "and free space of the file and its folders",
    ),
    "changelog": (
        "changelog 策略：行更正后由更新触发器记录，代理会重新读取",
        "changelog strategy: the update trigger logs a corrected row and the agent re-reads it",
    ),
    "cursor": (
        "cursor 策略：不保存拒收标记；更正后 GXSJ 更新的行会被重新读取",
        "cursor strategy: no reject flag is kept; a corrected row with a newer GXSJ is read "
        "again",
    ),
    "row-valid-now": ("已合规 → SYNC_FLAG 0", "valid now → SYNC_FLAG 0"),
    "row-still-invalid": ("仍不合规：{why}", "still invalid: {why}"),
    "database-failed": (
        "无法重置拒收行（{url}）：{error}",
        "cannot reset rejected rows at {url}: {error}",
    ),
}


def _say(message_id: str, lang: str = "zh", **args: object) -> str:
    return said(_TEXT, message_id, lang, **args)


def state_name(state: BatchState, lang: str) -> str:
    return status_name(state.value, lang)


@dataclass(frozen=True)
class Action:
    """One thing replay did (or would do): ``done`` says whether it went back in,
    ``failed`` that an error stopped it (not a record that is still invalid)."""

    kind: str          # batch | file | row | source
    subject: str       # batch ID, file name, TABLE#ROW_ID, source name
    done: bool
    detail: str
    failed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "done": self.done,
                "failed": self.failed, "detail": self.detail}


# -- failed and unanswered batches -----------------------------------------------------------


def requeue_batches(outbox: Outbox, batch_ids: Sequence[str], *, all_failed: bool = False,
                    dry_run: bool = False, lang: str = "zh") -> list[Action]:
    """Failed or sent → pending for the named batches; ``all_failed``: every failed one.

    Only named batches are taken from ``sent``: one may be merely on its way, and a
    resend of it costs the levels a duplicate each.
    """
    if all_failed:
        batch_ids = [b.batch_id for b in outbox.batches([BatchState.FAILED.value])]
    actions: list[Action] = []
    for batch_id in batch_ids:
        info = outbox.batch(batch_id)
        if info is None:
            actions.append(Action("batch", batch_id, False, _say("not-in-outbox", lang)))
        elif info.state not in (BatchState.FAILED, BatchState.SENT):
            actions.append(Action("batch", batch_id, False, _say(
                "nothing-to-do", lang, state=state_name(info.state, lang))))
        elif outbox.payloads_gone(batch_id):
            actions.append(Action("batch", batch_id, False, _say("payloads-gone", lang)))
        else:
            detail = _requeued(outbox, info, lang)  # before requeue forgets the failures
            if not dry_run:
                outbox.requeue([batch_id])
            actions.append(Action("batch", batch_id, True, detail))
    return actions


def _requeued(outbox: Outbox, info: BatchInfo, lang: str) -> str:
    """What went back in and why, in ``lang``: the levels that answered ``failed`` (the
    outbox's own "failed at …" is English, for heartbeats), else the error kept."""
    receipts = outbox.receipts_of(info.batch_id)
    if info.state is BatchState.FAILED:
        failed = [r["level"] for r in receipts if r["status"] == "failed"]
        error = (_say("failed-at", lang, levels=levels_named(failed, lang)) if failed
                 else info.last_error)
        return _say("requeued-failed", lang, error=error)
    stored = {r["level"] for r in receipts if r["status"] == "stored"}
    silent = [level for level in outbox.levels if level not in stored]
    return _say("requeued-sent", lang, levels=levels_named(silent, lang))


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
            why = (format_issue(first, lang) if first
                   else (result.unreadable or _say("invalid", lang)))
            actions.append(Action("file", path.name, False, _say(
                "still-invalid-file", lang, count=len(result.issues), why=why)))
            continue
        target = free_path(inbox, path.name)
        if not dry_run:
            try:
                inbox.mkdir(exist_ok=True)
                os.rename(path, target)
            except OSError as exc:
                actions.append(Action("file", path.name, False, _say(
                    "file-not-moved", lang, error=exc.strerror or exc), failed=True))
                continue
            path.with_name(path.name + REPORT_SUFFIX).unlink(missing_ok=True)
            outbox.mark_rejects_replayed(source, [path.name])
        actions.append(Action("file", path.name, True,
                              _say("file-valid-now", lang, name=target.name)))
    return actions


# -- database flag sources ------------------------------------------------------------------


def replay_database(outbox: Outbox, source: str, options: Mapping[str, Any],
                    catalog: SchemaCatalog, node_division: str, *, dry_run: bool = False,
                    lang: str = "zh", now: datetime | None = None) -> list[Action]:
    """``SYNC_FLAG`` 2 → 0 for rejected rows that now validate."""
    parsed = parse_options(options, catalog)
    if parsed.strategy != "flag":
        return [Action("source", source, False, _say(parsed.strategy, lang))]
    url = source_url(parsed)
    engine = source_engine(parsed)  # as the source reads: undecodable text is a reject
    latest = (now or datetime.now(BEIJING)) + timedelta(days=1)
    actions: list[Action] = []
    try:
        for table in element_tables(parsed, engine.dialect.name, catalog).values():
            actions.extend(_replay_table(engine, table, catalog, node_division, latest,
                                         dry_run, lang))
    except sa_exc.SQLAlchemyError as exc:
        # Each table is reset in its own transaction: the tables before are reset, and
        # their rows' rejects must still be noted as replayed below.
        actions.append(Action("source", source, False, _say(
            "database-failed", lang, url=shown_url(url),
            error=driver_detail(exc)), failed=True))
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
                actions.append(Action("row", subject, True, _say("row-valid-now", lang)))
            else:
                actions.append(Action("row", subject, False, _say(
                    "row-still-invalid", lang, why=db_reject_message(check, lang))))
    if fixed and not dry_run:
        with engine.begin() as conn:
            for batch in in_batches(fixed):
                conn.execute(update(table.table)
                             .where(table.row_id.in_(batch))
                             .where(flag == REJECTED)
                             .values({flag: NEW, table.controls["SYNC_MSG"]: None}))
    return actions

"""The lines of ``exgate batches list|show|replay`` in the reader's language.

A batch in the list, a failed batch shown in full (never its body), each replay result
with what to do next, and the receipts a replay could not send with what each node's
operator runs. Chinese by default, English with ``--lang en``; the JSON of the same
commands is built in ``gateway.replay_command``.
"""

from __future__ import annotations

import json

from gateway.cli_support import echo, say
from gateway.replay import BatchRow, FailedRow, Preview, ReceiptNote, ReplayResult, Text
from schemas.messages import Localized, columns
from schemas.refusals import next_step, reason_name

__all__ = ["list_header", "list_line", "print_shown", "report_unsent", "result_line",
           "state_name", "text_in"]

_DETAIL_WIDTH = 160


def text_in(text: Text | None, lang: str) -> str:
    """A sentence made in both languages, in ``lang``; text the store kept, as written."""
    return text.pick(lang) if isinstance(text, Localized) else text or ""


_STATES = {"stored": "已入库", "failed": "失败", "replayed": "已重放"}


def state_name(state: str | None, lang: str) -> str:
    """A batch's state (``stored``, ``failed``, ``replayed``) in ``lang``; "-" for none."""
    if state is None:
        return "-"
    return state if lang == "en" else _STATES.get(state, state)


# The columns of ``batches list``: (zh, en) names and widths in terminal cells, negative
# for a column aligned right; the last, a failed batch's reason, is as wide as it is.
_LIST_COLUMNS = (("时间", "time", 19), ("批次号", "batch ID", 32), ("节点", "node", 16),
                 ("状态", "state", 8), ("记录数", "records", -7),
                 ("原因：详情", "reason: detail", 0))


def list_header(lang: str) -> str:
    """The line above the rows naming each column; the rows below it stay as they are."""
    return _columns([say(lang, zh, en) for zh, en, _ in _LIST_COLUMNS])


def list_line(row: BatchRow, lang: str) -> str:
    records = "-" if row.records is None else str(row.records)
    why = (text_in(reason_name(row.reason), lang) + say(lang, "：", ": ")
           + _short(text_in(row.detail, lang)) if row.reason else "")
    return _columns([f"{row.at:%Y-%m-%d %H:%M:%S}", row.batch_id, row.node_id or "?",
                     state_name(row.state, lang), records, why])


def _columns(cells: list[str]) -> str:
    return columns(cells, [width for _, _, width in _LIST_COLUMNS])


def _short(text: str, width: int = _DETAIL_WIDTH) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def print_shown(row: FailedRow, seen: Preview, lang: str) -> None:
    """The same as ``batches show --json`` (``replay_command._show_json``), for people."""
    node, replayed = row.node_id or "?", row.replayed_at or "-"
    echo(say(lang, f"\n失败记录 #{row.failed_id}  节点 {node}  接收于 {row.received_at}  "
                   f"重放于 {replayed}",
             f"\nfailed #{row.failed_id}  node {node}  received {row.received_at}  "
             f"replayed {replayed}"))
    reason = reason_name(row.reason)
    echo(say(lang, f"  原因：{reason.zh}：{row.detail}", f"  reason: {reason.en}: {row.detail}"))
    if step := _next_step_line(row.reason, lang):
        echo(step)
    echo(say(lang, f"  路由键：{row.routing_key}  消息服务器用户（user_id）：{row.user_id}",
             f"  routing key: {row.routing_key}  user_id: {row.user_id}"))
    headers = json.dumps(row.safe_headers(), ensure_ascii=False, default=str)
    echo(say(lang, f"  消息头：{headers}", f"  headers: {headers}"))
    echo(say(lang, f"  报文：{len(row.body)} 字节（已加密，不显示），sha256 "
                   f"{row.body_sha256[:16]}…",
             f"  body: {len(row.body)} bytes (sealed, not shown), sha256 "
             f"{row.body_sha256[:16]}…"))
    if not seen.opened:
        why = text_in(seen.why_not, lang)
        echo(say(lang, f"  无法解密预览：{why}", f"  cannot open for preview: {why}"))
        return
    echo("  HEAD: " + json.dumps(seen.head, ensure_ascii=False))
    echo(say(lang, f"  记录 {seen.records} 条，前 {len(seen.first)} 条：",
             f"  {seen.records} records, first {len(seen.first)}:"))
    for element, fields in seen.first:
        echo(f"    {element}: " + json.dumps(fields, ensure_ascii=False))
    for issue in seen.issues:
        echo(say(lang, f"  校验问题：{issue}", f"  validation issue: {issue}"))


def report_unsent(unsent: list[tuple[str, ReceiptNote]], lang: str) -> None:
    """Each receipt not sent, and per node what its operator runs to get fresh ones."""
    if not unsent:
        return
    echo(say(lang, f"提示：{len(unsent)} 个回执未能发送到节点（已记录在库，节点尚不知道本级的"
                   "处理结果）：",
             f"note: {len(unsent)} receipts not sent to their nodes (kept in the store; "
             "the nodes do not know this level's outcome yet):"), err=True)
    by_node: dict[str, list[str]] = {}
    for batch_id, note in unsent:
        by_node.setdefault(note.to, []).append(batch_id)
        error = text_in(note.error, lang)
        echo(say(lang, f"  {batch_id} → 节点 {note.to}：{error}",
                 f"  {batch_id} → node {note.to}: {error}"), err=True)
    for node_id, ids in by_node.items():
        command = f"exgate agent replay {' '.join(ids)}"
        echo(say(lang, f"  请在节点 {node_id} 的前置机上运行 {command}：重发这些批次，并收取新的"
                       "回执",
                 f"  on node {node_id}'s front-end machine run {command}: it resends the "
                 "batches and gets a fresh receipt for each"), err=True)


def result_line(r: ReplayResult, lang: str) -> str:
    would = r.dry_run
    if r.status == "stored":
        counts = (f"stored {r.stored}, duplicates {r.duplicates}, conflicts {r.conflicts}"
                  if lang == "en" else
                  f"新入库 {r.stored}，重复 {r.duplicates}，冲突 {r.conflicts}")
        verb = say(lang, "将入库" if would else "已入库", "would store" if would else "stored")
        note = say(lang, f"（{text_in(r.detail, lang)}）", f" ({text_in(r.detail, lang)})") \
            if r.detail else ""
        return f"{r.batch_id}: {verb}: {counts}{note}"
    if r.status == "skipped":
        detail = text_in(r.detail, lang)
        return f"{r.batch_id}: " + say(lang, f"此前已重放（{detail}），未做修改",
                                       f"replayed before ({detail}), unchanged")
    verb = say(lang, "仍将失败" if would else "仍失败",
               "would still fail" if would else "still failing")
    why = text_in(reason_name(r.reason), lang) if r.reason else "-"
    return (f"{r.batch_id}: {verb}: {why}: {_short(text_in(r.detail, lang))}\n"
            f"{_next_step_line(r.reason or '', lang)}").rstrip()


def _next_step_line(reason: str, lang: str) -> str:
    step = next_step(reason)
    return "" if step is None else say(lang, f"  处理：{step.zh}", f"  next: {step.en}")

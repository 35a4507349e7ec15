"""``exgate batches list|show|replay``: the operators' view of a level's batches.

Exit codes: 0 ok (every replayed batch landed), 1 some batch still fails or is not
found, 2 configuration error or store unreachable.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from adapters.stores.sql import SqlStore
from gateway.cli_support import echo, gateway_config_path, parse_moment, say
from gateway.config import GatewayConfig, load_config
from gateway.registry import Registry
from gateway.replay import (
    BatchRow,
    FailedRow,
    Replayer,
    ReplayResult,
    failed_rows,
    list_batches,
    preview,
)
from gateway.replay_receipts import BrokerReceipts
from schemas.errors import ExgateError

__all__ = ["run_batches_list", "run_batches_replay", "run_batches_show"]

EXIT_OK, EXIT_SOME_FAIL, EXIT_CONFIG = 0, 1, 2
_DETAIL_WIDTH = 160


@dataclass
class _Level:
    config: GatewayConfig
    store: SqlStore
    registry: Registry


@contextmanager
def _open_level(config_path: Path | None) -> Iterator[_Level]:
    config = load_config(gateway_config_path(config_path))
    store = SqlStore(config.store_url)
    try:
        yield _Level(config, store, Registry(config.registry_path))
    finally:
        store.close()


def _fail(exc: ExgateError, lang: str) -> int:
    echo(say(lang, f"错误：{exc}", f"error: {exc}"), err=True)
    return EXIT_CONFIG


# -- list ----------------------------------------------------------------------------------


def run_batches_list(config_path: Path | None, failed: bool, node_id: str | None,
                     since: str | None, as_json: bool, limit: int, lang: str) -> int:
    try:
        moment = parse_moment(since)
        with _open_level(config_path) as level:
            rows = list_batches(level.store, failed_only=failed, node_id=node_id,
                                since=moment, limit=limit)
    except ExgateError as exc:
        return _fail(exc, lang)
    if as_json:
        click.echo(json.dumps({"batches": [r.to_json() for r in rows]}, ensure_ascii=False,
                              indent=2))
        return EXIT_OK
    for row in rows:
        echo(_list_line(row, lang))
    outstanding = sum(1 for r in rows if r.state == "failed")
    echo(say(lang, f"共 {len(rows)} 个批次，其中待重放失败批次 {outstanding} 个",
                   f"{len(rows)} batches, {outstanding} failed and not yet replayed"))
    return EXIT_OK


_STATES = {"stored": "已入库", "failed": "失败", "replayed": "已重放"}


def _list_line(row: BatchRow, lang: str) -> str:
    state = row.state if lang == "en" else _STATES.get(row.state, row.state)
    records = "-" if row.records is None else str(row.records)
    why = f"  {row.reason}: {_short(row.detail)}" if row.reason else ""
    return (f"{row.at:%Y-%m-%d %H:%M:%S}  {row.batch_id:<32}  {row.node_id or '?':<16}  "
            f"{state:<8}  {records:>6}{why}")


def _short(text: str | None, width: int = _DETAIL_WIDTH) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# -- show ----------------------------------------------------------------------------------


def run_batches_show(config_path: Path | None, batch_id: str, as_json: bool,
                     lang: str) -> int:
    try:
        with _open_level(config_path) as level:
            rows = failed_rows(level.store, [batch_id], outstanding=False)
            state = level.store.batch_state(batch_id)
            shown = [_show(row, level.registry) for row in rows]
    except ExgateError as exc:
        return _fail(exc, lang)
    if not rows and state is None:
        echo(say(lang, f"未找到批次 {batch_id}", f"batch {batch_id} not found"),
                   err=True)
        return EXIT_SOME_FAIL
    if as_json:
        click.echo(json.dumps({"batch_id": batch_id, "state": state, "failed": shown},
                              ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    echo(say(lang, f"批次 {batch_id}：状态 {state}", f"batch {batch_id}: state {state}"))
    for item in shown:
        _print_shown(item, lang)
    return EXIT_OK


def _show(row: FailedRow, registry: Registry) -> dict[str, Any]:
    """Everything an operator may see: never the body, keys or passwords."""
    seen = preview(row, registry)
    return {
        "failed_id": row.failed_id, "node_id": row.node_id, "reason": row.reason,
        "detail": row.detail, "received_at": str(row.received_at),
        "replayed_at": None if row.replayed_at is None else str(row.replayed_at),
        "routing_key": row.routing_key, "user_id": row.user_id,
        "headers": row.safe_headers(), "body_bytes": len(row.body),
        "body_sha256": row.body_sha256,
        "payload": {"opened": seen.opened, "why_not": seen.why_not, "head": seen.head,
                    "records": seen.records, "issues": list(seen.issues),
                    "first_records": [{"element": e, "fields": f} for e, f in seen.first]},
    }


def _print_shown(item: dict[str, Any], lang: str) -> None:
    echo(say(lang, f"\n失败记录 #{item['failed_id']}  节点 {item['node_id']}  接收于 "
                   f"{item['received_at']}  重放于 {item['replayed_at'] or '-'}",
             f"\nfailed #{item['failed_id']}  node {item['node_id']}  received "
             f"{item['received_at']}  replayed {item['replayed_at'] or '-'}"))
    echo(say(lang, f"  原因：{item['reason']}：{item['detail']}",
             f"  reason: {item['reason']}: {item['detail']}"))
    echo(f"  routing key: {item['routing_key']}  user_id: {item['user_id']}")
    echo("  headers: " + json.dumps(item["headers"], ensure_ascii=False, default=str))
    echo(say(lang, f"  报文：{item['body_bytes']} 字节（已加密，不显示），sha256 "
                   f"{item['body_sha256'][:16]}…",
             f"  body: {item['body_bytes']} bytes (sealed, not shown), sha256 "
             f"{item['body_sha256'][:16]}…"))
    payload = item["payload"]
    if not payload["opened"]:
        echo(say(lang, f"  无法解密预览：{payload['why_not']}",
                 f"  cannot open for preview: {payload['why_not']}"))
        return
    echo("  HEAD: " + json.dumps(payload["head"], ensure_ascii=False))
    echo(say(lang, f"  记录 {payload['records']} 条，前 {len(payload['first_records'])} 条：",
             f"  {payload['records']} records, first {len(payload['first_records'])}:"))
    for record in payload["first_records"]:
        echo(f"    {record['element']}: " + json.dumps(record["fields"], ensure_ascii=False))
    for issue in payload["issues"]:
        echo(say(lang, f"  校验问题：{issue}", f"  validation issue: {issue}"))


# -- replay --------------------------------------------------------------------------------


def run_batches_replay(config_path: Path | None, batch_ids: Sequence[str], all_failed: bool,
                       dry_run: bool, receipts: bool, as_json: bool, lang: str) -> int:
    if bool(batch_ids) == all_failed:
        echo(say(lang, "请给出批次号，或使用 --all-failed（二者选一）",
                       "give batch IDs or --all-failed (one of them)"), err=True)
        return EXIT_CONFIG
    _quiet_pipeline_log()
    try:
        with _open_level(config_path) as level:
            rows = failed_rows(level.store, batch_ids, outstanding=all_failed)
            missing = sorted(set(batch_ids) - {r.batch_id for r in rows})
            results, problems = _replay_rows(level, rows, dry_run, receipts, as_json)
    except ExgateError as exc:
        return _fail(exc, lang)
    for problem in problems:  # the replay counts all the same: the receipt is in ST_RECEIPT
        echo(say(lang, f"提示：回执未能发送到节点（已记录在库）：{problem}",
                       f"note: receipt not sent to the node (kept in the store): {problem}"),
                   err=True)
    return _report(results, missing, dry_run, as_json, lang)


def _quiet_pipeline_log() -> None:
    """Each batch gets its own line below; the pipeline's WARNINGs would repeat it."""
    root = logging.getLogger()
    if not root.handlers:
        logging.getLogger("exgate").addHandler(logging.NullHandler())


def _replay_rows(level: _Level, rows: list[FailedRow], dry_run: bool, receipts: bool,
                 quiet: bool) -> tuple[list[ReplayResult], list[str]]:
    sender = BrokerReceipts(level.config.broker_url) if receipts and not dry_run else None
    replayer = Replayer(level.config.division, level.registry, level.store, dry_run, sender)
    results: list[ReplayResult] = []
    try:
        with _progress(len(rows), not quiet and sys.stdout.isatty()) as progress:
            for row in rows:
                results.append(replayer.replay(row))
                if progress is not None:
                    progress.advance(progress.task_ids[0])
    finally:
        if sender is not None:
            sender.close()
    return results, [] if sender is None else sender.problems


def _progress(total: int, show: bool) -> AbstractContextManager[Progress | None]:
    if not show or total < 2:
        return nullcontext()
    progress = Progress(TextColumn("重放 replaying"), BarColumn(), MofNCompleteColumn(),
                        console=Console(stderr=True), transient=True)
    progress.add_task("replay", total=total)
    return progress


def _report(results: list[ReplayResult], missing: list[str], dry_run: bool, as_json: bool,
            lang: str) -> int:
    landed = sum(r.landed for r in results)
    failing = len(results) - landed
    code = EXIT_OK if failing == 0 and not missing else EXIT_SOME_FAIL
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "results": [r.to_json() for r in results],
                               "not_found": missing, "landed": landed, "failing": failing},
                              ensure_ascii=False, indent=2))
        return code
    for result in results:
        echo(_result_line(result, lang))
    for batch_id in missing:
        echo(say(lang, f"{batch_id}: 未找到待重放的失败批次",
                       f"{batch_id}: no failed batch to replay"))
    prefix = say(lang, "（演练，未做任何修改）", "(dry run, nothing changed) ") if dry_run else ""
    echo(prefix + say(lang, f"重放 {len(results)} 个：成功 {landed}，仍失败 {failing}",
                            f"replayed {len(results)}: {landed} landed, {failing} still "
                            "failing"))
    return code


def _result_line(r: ReplayResult, lang: str) -> str:
    would = r.dry_run
    if r.status == "stored":
        counts = (f"stored {r.stored}, duplicates {r.duplicates}, conflicts {r.conflicts}"
                  if lang == "en" else
                  f"新入库 {r.stored}，重复 {r.duplicates}，冲突 {r.conflicts}")
        verb = say(lang, "将入库" if would else "已入库", "would store" if would else "stored")
        note = f" ({r.detail})" if r.detail else ""
        return f"{r.batch_id}: {verb}: {counts}{note}"
    if r.status == "skipped":
        return f"{r.batch_id}: " + say(lang, f"此前已重放（{r.detail}），未做修改",
                                       f"replayed before ({r.detail}), unchanged")
    verb = say(lang, "仍将失败" if would else "仍失败",
               "would still fail" if would else "still failing")
    return f"{r.batch_id}: {verb}: {r.reason}: {_short(r.detail)}"


"""``exgate batches list|show|replay``: the operators' view of a level's batches.

Exit codes: 0 ok (every replayed batch landed), 1 some batch still fails or is not
found, 2 configuration error or store unreachable (also when it stays busy or away in
the middle of a replay: the batches not tried yet are listed). A receipt the replay
could not send to its node leaves the code as it is: the batch landed, receipts are
best effort; each one not sent is listed, in the text and the JSON, with what the
node's operator runs to get a fresh one.

Text is in Chinese by default, English with ``--lang en``; JSON is the same in both.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from adapters.stores.sql import SqlStore
from gateway.cli_support import echo, gateway_config_path, parse_moment, say
from gateway.config import GatewayConfig, load_config
from gateway.conflicts import list_conflicts
from gateway.registry import Registry
from gateway.replay import (
    FailedRow,
    Preview,
    ReceiptNote,
    Replayer,
    ReplayResult,
    english,
    failed_rows,
    list_batches,
    preview,
    stored_batch,
)
from gateway.replay_receipts import BrokerReceipts
from gateway.replay_text import (
    list_header,
    list_line,
    print_shown,
    report_unsent,
    result_line,
    state_name,
    text_in,
)
from schemas.errors import ExgateError, RetriableError

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_SOME_FAIL", "fail_with", "open_level",
           "run_batches_list", "run_batches_replay", "run_batches_show"]

EXIT_OK, EXIT_SOME_FAIL, EXIT_CONFIG = 0, 1, 2


@dataclass
class _Level:
    config: GatewayConfig
    store: SqlStore
    registry: Registry


@contextmanager
def open_level(config_path: Path | None) -> Iterator[_Level]:
    """The level's config, store (never created) and registry; ``exgate conflicts`` too."""
    config = load_config(gateway_config_path(config_path))
    store = SqlStore(config.store_url, create=False)  # a mistyped path: not a new store
    try:
        yield _Level(config, store, Registry(config.registry_path))
    finally:
        store.close()


def fail_with(exc: ExgateError, lang: str) -> int:
    """Say the error on stderr; the exit code of a config error or a store away."""
    detail = exc.message(lang)
    echo(say(lang, f"错误：{detail}", f"error: {detail}"), err=True)
    return EXIT_CONFIG


# -- list ----------------------------------------------------------------------------------


def run_batches_list(config_path: Path | None, failed: bool, node_id: str | None,
                     since: str | None, as_json: bool, limit: int, lang: str) -> int:
    try:
        moment = parse_moment(since)
        with open_level(config_path) as level:
            rows = list_batches(level.store, failed_only=failed, node_id=node_id,
                                since=moment, limit=limit)
            # Counted over every batch, not the newest ``limit`` shown: an old failed
            # batch must not vanish from the summary.
            outstanding = len(failed_rows(level.store, node_id=node_id, since=moment))
    except ExgateError as exc:
        return fail_with(exc, lang)
    if as_json:
        click.echo(json.dumps({"batches": [r.to_json() for r in rows]}, ensure_ascii=False,
                              indent=2))
        return EXIT_OK
    if rows:
        echo(list_header(lang))
    for row in rows:
        echo(list_line(row, lang))
    echo(say(lang, f"显示 {len(rows)} 个批次；待重放失败批次共 {outstanding} 个",
                   f"{len(rows)} batches shown; {outstanding} failed and not yet replayed "
                   "in all"))
    return EXIT_OK


# -- show ----------------------------------------------------------------------------------


def run_batches_show(config_path: Path | None, batch_id: str, as_json: bool,
                     lang: str) -> int:
    try:
        with open_level(config_path) as level:
            rows = failed_rows(level.store, [batch_id], outstanding=False)
            stored = stored_batch(level.store, batch_id)
            conflicts = list_conflicts(level.store, batch_id=batch_id, include_resolved=True,
                                       limit=0) if stored else []
            shown = [(row, preview(row, level.registry)) for row in rows]
    except ExgateError as exc:
        return fail_with(exc, lang)
    state = "stored" if stored else "failed" if any(r.replayed_at is None for r in rows) \
        else None
    if not rows and state is None:
        echo(say(lang, f"未找到批次 {batch_id}", f"batch {batch_id} not found"),
                   err=True)
        return EXIT_SOME_FAIL
    if as_json:
        click.echo(json.dumps({"batch_id": batch_id, "state": state,
                               "stored": None if stored is None else stored.to_json(),
                               "conflicts": [c.to_json() for c in conflicts],
                               "failed": [_show_json(row, seen) for row, seen in shown]},
                              ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    echo(say(lang, f"批次 {batch_id}：状态 {state_name(state, lang)}",
                   f"batch {batch_id}: state {state_name(state, lang)}"))
    if stored is not None:
        echo(say(lang, f"  入库于 {stored.at:%Y-%m-%d %H:%M:%S}，记录 {stored.records} 条："
                       f"{text_in(stored.detail, lang)}",
                 f"  stored {stored.at:%Y-%m-%d %H:%M:%S}, {stored.records} records: "
                 f"{text_in(stored.detail, lang)}"))
    for c in conflicts:
        show = f"exgate conflicts show {c.conflict_id}"
        state_zh, state_en = (f"，待人工处理（{show}）", f"; for a person to resolve ({show})") \
            if c.resolved_at is None else ("，已处理", "; resolved")
        echo(say(lang, f"  冲突：{c.element} 业务键 {c.key_text} 版本 {c.version}：内容与已入库的"
                       f"不同，已入库内容保留{state_zh}",
                 f"  conflict: {c.element} key {c.key_text} version {c.version}: other "
                 f"content than the stored one, which is kept{state_en}"))
    for row, seen in shown:
        print_shown(row, seen, lang)
    return EXIT_OK


def _show_json(row: FailedRow, seen: Preview) -> dict[str, Any]:
    """Everything an operator may see: never the body, keys or passwords."""
    return {
        "failed_id": row.failed_id, "node_id": row.node_id, "reason": row.reason,
        "detail": row.detail, "received_at": str(row.received_at),
        "replayed_at": None if row.replayed_at is None else str(row.replayed_at),
        "routing_key": row.routing_key, "user_id": row.user_id,
        "headers": row.safe_headers(), "body_bytes": len(row.body),
        "body_sha256": row.body_sha256,
        "payload": {"opened": seen.opened, "why_not": english(seen.why_not),
                    "head": seen.head, "records": seen.records, "issues": list(seen.issues),
                    "first_records": [{"element": e, "fields": f} for e, f in seen.first]},
    }


# -- replay --------------------------------------------------------------------------------


@dataclass
class _Run:
    """A replay run: each batch's result, and where it stopped if the store went away."""

    results: list[ReplayResult] = field(default_factory=list)
    stopped: RetriableError | None = None
    not_tried: list[str] = field(default_factory=list)

    @property
    def unsent(self) -> list[tuple[str, ReceiptNote]]:
        return [(r.batch_id, r.receipt) for r in self.results
                if r.receipt is not None and not r.receipt.sent]


def run_batches_replay(config_path: Path | None, batch_ids: Sequence[str], all_failed: bool,
                       dry_run: bool, receipts: bool, as_json: bool, lang: str) -> int:
    if bool(batch_ids) == all_failed:
        echo(say(lang, "请给出批次号，或使用 --all-failed（二者选一）",
                       "give batch IDs or --all-failed (one of them)"), err=True)
        return EXIT_CONFIG
    _quiet_pipeline_log()
    try:
        with open_level(config_path) as level:
            rows = failed_rows(level.store, batch_ids, outstanding=all_failed)
            missing = sorted(set(batch_ids) - {r.batch_id for r in rows})
            run = _replay_rows(level, rows, dry_run, receipts, as_json, lang)
    except ExgateError as exc:
        return fail_with(exc, lang)
    return _report(run, missing, dry_run, as_json, lang)


def _quiet_pipeline_log() -> None:
    """Each batch gets its own line below; the pipeline's WARNINGs would repeat it."""
    root = logging.getLogger()
    if not root.handlers:
        logging.getLogger("exgate").addHandler(logging.NullHandler())


def _replay_rows(level: _Level, rows: list[FailedRow], dry_run: bool, receipts: bool,
                 quiet: bool, lang: str) -> _Run:
    sender = BrokerReceipts(level.config.broker_url, lang) if receipts and not dry_run else None

    def waiting(row: FailedRow, exc: RetriableError, wait_s: float) -> None:
        why = _why(exc)
        echo(say(lang, f"监察库忙或不可达（{why}），{wait_s:g} 秒后重试批次 {row.batch_id}",
                       f"store busy or unreachable ({why}); trying batch {row.batch_id} "
                       f"again in {wait_s:g} s"), err=True)

    replayer = Replayer(level.config.division, level.registry, level.store, dry_run, sender,
                        on_wait=waiting, lang=lang)
    run = _Run()
    try:
        with _progress(len(rows), not quiet and sys.stdout.isatty(), lang) as progress:
            for done, row in enumerate(rows):
                try:
                    run.results.append(replayer.replay(row))
                except RetriableError as exc:  # away for every batch, not just this one
                    run.stopped, run.not_tried = exc, [r.batch_id for r in rows[done:]]
                    break
                if progress is not None:
                    progress.advance(progress.task_ids[0])
    finally:
        if sender is not None:
            sender.close()
    return run


def _why(exc: RetriableError) -> str:
    """The driver's own words ("database is locked"), without the store's "will retry"."""
    cause = getattr(exc.__cause__, "orig", None) or exc.__cause__ or exc
    lines = str(cause).strip().splitlines()
    return lines[0][:300] if lines else type(cause).__name__


def _progress(total: int, show: bool, lang: str) -> AbstractContextManager[Progress | None]:
    if not show or total < 2:
        return nullcontext()
    progress = Progress(TextColumn(say(lang, "重放", "replaying")), BarColumn(),
                        MofNCompleteColumn(),
                        console=Console(stderr=True), transient=True)
    progress.add_task("replay", total=total)
    return progress


def _report(run: _Run, missing: list[str], dry_run: bool, as_json: bool, lang: str) -> int:
    results = run.results
    landed = sum(r.landed for r in results)
    failing = len(results) - landed
    code = EXIT_CONFIG if run.stopped else \
        EXIT_OK if failing == 0 and not missing else EXIT_SOME_FAIL
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "results": [r.to_json() for r in results],
                               "not_found": missing, "landed": landed, "failing": failing,
                               "receipts_not_sent": [b for b, _ in run.unsent],
                               "stopped": None if run.stopped is None else str(run.stopped),
                               "not_tried": run.not_tried},
                              ensure_ascii=False, indent=2))
        return code
    for result in results:
        echo(result_line(result, lang))
    for batch_id in missing:
        echo(say(lang, f"{batch_id}: 未找到待重放的失败批次",
                       f"{batch_id}: no failed batch to replay"))
    prefix = say(lang, "（演练，未做任何修改）", "(dry run, nothing changed) ") if dry_run else ""
    echo(prefix + say(lang, f"重放 {len(results)} 个：成功 {landed}，仍失败 {failing}",
                            f"replayed {len(results)}: {landed} landed, {failing} still "
                            "failing"))
    report_unsent(run.unsent, lang)
    if run.stopped is not None:
        why, left = _why(run.stopped), ", ".join(run.not_tried)
        echo(say(lang, f"错误：监察库仍然忙或不可达（{why}），重放已停止；{len(run.not_tried)} "
                       f"个批次未处理（{left}），请稍后再次运行",
                 f"error: the store stays busy or unreachable ({why}): the replay stopped "
                 f"with {len(run.not_tried)} batches not tried ({left}); run it again later"),
             err=True)
    return code

"""``exgate agent batches`` and ``exgate agent replay``: the agent-side operator view.

Exit codes: ``agent batches`` 0, 2 config error; ``agent replay`` 0 when everything
asked for went back in, 1 when something is still invalid or not found or a source
failed, 2 config error (also of one source: the others are replayed all the same).
Each source is replayed on its own: one that fails is reported beside what the others
did. ``lang`` None: the config's ``[agent] lang``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from frontend_machine.config import AgentConfig, config_lang, load_config
from frontend_machine.outbox import ALL_LEVELS, Outbox
from frontend_machine.outbox_batches import BatchInfo, BatchState
from frontend_machine.replay import (
    Action,
    replay_database,
    replay_folder,
    requeue_batches,
    state_name,
)
from frontend_machine.report import level_name, reason_said, status_name
from schemas.catalog import load_catalog
from schemas.divisions import Level, level_of
from schemas.errors import ConfigError, ExgateError, message_of
from schemas.messages import columns
from schemas.times import BEIJING

__all__ = ["DEFAULT_AGENT_CONFIG", "agent_config_path", "run_agent_batches",
           "run_agent_replay"]

DEFAULT_AGENT_CONFIG = Path("/etc/exgate/agent.toml")
EXIT_OK, EXIT_SOME, EXIT_CONFIG = 0, 1, 2
_LEVELS = {Level.PROVINCE: ALL_LEVELS[:1], Level.CITY: ALL_LEVELS[:2],
           Level.COUNTY: ALL_LEVELS}
_OPEN_STATES = (BatchState.PENDING.value, BatchState.SENT.value, BatchState.FAILED.value)


def agent_config_path(given: Path | None) -> Path:
    if given is not None:
        return given
    env = os.environ.get("EXGATE_AGENT_CONFIG")
    return Path(env) if env else DEFAULT_AGENT_CONFIG


def _say(lang: str, zh: str, en: str) -> str:
    return en if lang == "en" else zh


@contextmanager
def _open(config_path: Path | None) -> Iterator[tuple[AgentConfig, Outbox]]:
    config = load_config(agent_config_path(config_path))
    # create=False: a mistyped path must not report an empty new outbox as all clear.
    with Outbox(config.outbox.path, levels=_LEVELS[level_of(config.node.division)],
                create=False) as box:
        yield config, box


def _fail(exc: ExgateError, config_path: Path | None, lang: str | None) -> int:
    """The config may be what failed, so without ``--lang`` this speaks what its
    ``[agent] lang`` asks for if it can be read at all, else Chinese."""
    lang = config_lang(agent_config_path(config_path), lang)
    detail = exc.message(lang)
    click.echo(_say(lang, f"错误：{detail}", f"error: {detail}"), err=True)
    return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_SOME


# -- agent batches ---------------------------------------------------------------------------


def run_agent_batches(config_path: Path | None, show_all: bool, limit: int, as_json: bool,
                      lang: str | None) -> int:
    try:
        with _open(config_path) as (config, box):
            lang = lang or config.agent.lang
            states = () if show_all else _OPEN_STATES
            items = [(info, box.receipts_of(info.batch_id))
                     for info in box.batches(states, limit)]
            levels = box.levels
            rejects = box.open_rejects()
    except ExgateError as exc:
        return _fail(exc, config_path, lang)
    if as_json:
        click.echo(json.dumps({"node": config.node.id, "levels": list(levels),
                               "batches": [_batch_json(i, r) for i, r in items],
                               "open_rejects": rejects},
                              ensure_ascii=False, indent=2))
        return EXIT_OK
    if items:
        click.echo(_batch_header(lang))
    for info, receipts in items:
        click.echo(_batch_line(info, receipts, levels, lang))
        for receipt in receipts:
            if receipt["status"] == "failed":
                level = level_name(receipt["level"], lang)
                for reason in receipt["reasons"]:
                    click.echo(f"    {level}{_say(lang, '：', ': ')}"
                               f"{reason_said(reason, lang)}")
    failed = sum(1 for info, _ in items if info.state is BatchState.FAILED)
    click.echo(_say(lang, f"共 {len(items)} 个批次，失败 {failed} 个；源端拒收记录 "
                          f"{rejects} 条（exgate agent replay --rejects）",
                    f"{len(items)} batches, {failed} failed; {rejects} source "
                    "rejects (exgate agent replay --rejects)"))
    return EXIT_OK


def _when(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _batch_json(info: BatchInfo, receipts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"batch_id": info.batch_id, "state": info.state.value,
            "created_at": _when(info.created_at), "sent_at": _when(info.sent_at),
            "records": info.record_count, "attempts": info.attempts,
            "last_error": info.last_error,
            "receipts": {r["level"]: {"status": r["status"], "stored": r["stored_count"],
                                      "reasons": r["reasons"],
                                      "at": _when(r["received_at"])} for r in receipts}}


# The columns of ``agent batches``: (zh, en) names and widths in terminal cells, negative
# for a column aligned right (a batch ID is 28 characters: ``outbox._new_batch_id``).
_BATCH_COLUMNS = (("创建时间", "created", 19), ("批次号", "batch ID", 28), ("状态", "state", 7),
                  ("记录数", "records", -7), ("各级回执", "receipts by level", 0))


def _batch_header(lang: str) -> str:
    """The line above the rows naming each column; the rows below it stay as they are."""
    return columns([_say(lang, zh, en) for zh, en, _ in _BATCH_COLUMNS],
                   [width for _, _, width in _BATCH_COLUMNS])


def _batch_line(info: BatchInfo, receipts: list[dict[str, Any]], levels: Sequence[str],
                lang: str) -> str:
    by_level = {r["level"]: status_name(r["status"], lang) for r in receipts}
    marks = " ".join(f"{level_name(level, lang)}={by_level.get(level, '-')}"
                     for level in levels)
    return columns([_when(info.created_at) or "-", info.batch_id, state_name(info.state, lang),
                    str(info.record_count), marks],
                   [width for _, _, width in _BATCH_COLUMNS])


# -- agent replay ----------------------------------------------------------------------------


def run_agent_replay(config_path: Path | None, batch_ids: Sequence[str], all_failed: bool,
                     rejects: bool, dry_run: bool, as_json: bool, lang: str | None) -> int:
    if not (batch_ids or all_failed or rejects):
        click.echo(_say(lang or "zh", "请给出批次号，或 --all-failed、--rejects",
                        "give batch IDs, --all-failed or --rejects"), err=True)
        return EXIT_CONFIG
    try:
        with _open(config_path) as (config, box):
            lang = lang or config.agent.lang
            actions: list[Action] = []
            if batch_ids or all_failed:
                actions += requeue_batches(box, batch_ids, all_failed=all_failed,
                                           dry_run=dry_run, lang=lang)
            misconfigured = rejects and _replay_sources(config, box, dry_run, lang, actions)
    except ExgateError as exc:
        return _fail(exc, config_path, lang)
    code = _report(actions, dry_run, as_json, lang)
    return EXIT_CONFIG if misconfigured else code


def _replay_sources(config: AgentConfig, box: Outbox, dry_run: bool, lang: str,
                    actions: list[Action]) -> bool:
    """Append each source's actions to ``actions``; returns whether a source's config
    is wrong.

    A source that fails becomes a failed action and the others go on: what was moved or
    reset before must be reported, or the operator cannot tell what changed.
    """
    misconfigured = False
    catalog = load_catalog()
    for source in config.sources:
        try:
            if source.kind == "folder":
                actions += replay_folder(box, source.name, source.options,
                                         config.node.division, dry_run=dry_run, lang=lang)
            elif source.kind == "db":
                actions += replay_database(box, source.name, source.options, catalog,
                                           config.node.division, dry_run=dry_run, lang=lang)
        except ConfigError as exc:
            misconfigured = True
            detail = config.source_error(source.name, exc).message(lang)
            actions.append(Action("source", source.name, False, _say(
                lang, f"配置错误：{detail}", f"configuration error: {detail}"), failed=True))
        except (ExgateError, OSError) as exc:
            detail = message_of(exc, lang)
            actions.append(Action("source", source.name, False,
                                  _say(lang, f"处理失败：{detail}", f"failed: {detail}"),
                                  failed=True))
    return misconfigured


_KINDS_ZH = {"batch": "批次", "file": "文件", "row": "行", "source": "数据源"}


def _report(actions: list[Action], dry_run: bool, as_json: bool, lang: str) -> int:
    # A source's note (a strategy with nothing to reset) is neither done nor stuck.
    stuck = [a for a in actions if not a.done and (a.kind != "source" or a.failed)]
    code = EXIT_SOME if stuck else EXIT_OK
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "actions": [a.to_json() for a in actions],
                               "done": sum(a.done for a in actions), "not_done": len(stuck)},
                              ensure_ascii=False, indent=2))
        return code
    for action in actions:
        mark = _say(lang, "✓ 将处理" if dry_run else "✓", "✓ would" if dry_run else "✓") \
            if action.done else "✗"
        kind = action.kind if lang == "en" else _KINDS_ZH[action.kind]
        click.echo(f"{mark} {kind} {action.subject}: {action.detail}")
    done = sum(a.done for a in actions)
    prefix = _say(lang, "（演练，未做任何修改）", "(dry run, nothing changed) ") if dry_run else ""
    click.echo(prefix + _say(lang, f"重新送入 {done} 项，未处理 {len(stuck)} 项",
                             f"{done} sent back in, {len(stuck)} not"))
    return code

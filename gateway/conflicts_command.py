"""``exgate conflicts list|show|resolve``: records that came again with a stored key and
version but other content, for a person to look at and settle (``gateway.conflicts``).

Exit codes: 0 ok, 1 a conflict asked for is not there, 2 configuration error, an empty
or too long ``--note`` or ``--by``, or store unreachable. Text is in Chinese by default,
English with ``--lang en``; JSON is the same in both.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click

from gateway.cli_support import echo, say
from gateway.conflicts import (
    ConflictEntry,
    conflict_detail,
    list_conflicts,
    resolution_words,
    resolve,
)
from gateway.replay_command import EXIT_OK, EXIT_SOME_FAIL, fail_with, open_level
from schemas.errors import ConfigError, ExgateError
from schemas.messages import one_line

__all__ = ["run_conflicts_list", "run_conflicts_resolve", "run_conflicts_show"]

_ABSENT = "—"


def run_conflicts_list(config_path: Path | None, node_id: str | None, include_resolved: bool,
                       limit: int, as_json: bool, lang: str) -> int:
    try:
        with open_level(config_path) as level:
            entries = list_conflicts(level.store, node_id=node_id,
                                     include_resolved=include_resolved, limit=limit)
    except ExgateError as exc:
        return fail_with(exc, lang)
    if as_json:
        click.echo(json.dumps({"conflicts": [e.to_json() for e in entries]},
                              ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries:
        echo(say(lang, "没有待处理的冲突。", "No conflicts awaiting a person.")
             if not include_resolved else say(lang, "没有冲突。", "No conflicts."))
        return EXIT_OK
    for entry in entries:
        echo(_line(entry, lang))
    echo(say(lang, "用 exgate conflicts show ID 查看不同之处；处理后用 exgate conflicts resolve ID "
                   "--note 依据 标记为已处理。",
             "See what differs with exgate conflicts show ID; once settled, mark it with "
             "exgate conflicts resolve ID --note WHY."))
    return EXIT_OK


def run_conflicts_show(config_path: Path | None, conflict_id: int, as_json: bool,
                       lang: str) -> int:
    try:
        with open_level(config_path) as level:
            found = conflict_detail(level.store, conflict_id)
    except ExgateError as exc:
        return fail_with(exc, lang)
    if found is None:
        echo(say(lang, f"未找到冲突 {conflict_id}", f"conflict {conflict_id} not found"),
             err=True)
        return EXIT_SOME_FAIL
    entry, differences = found
    if as_json:
        click.echo(json.dumps({**entry.to_json(), "differences": [
            {"field": d.field, "stored": d.stored, "incoming": d.incoming}
            for d in differences]}, ensure_ascii=False, indent=2))
        return EXIT_OK
    echo(_line(entry, lang))
    echo(say(lang, "已入库的版本保留不变；如它有误，请源系统以新的数据版本号（SJBBH）"
                   "重新发送正确内容。",
             "The stored version stays as it is; if it is wrong, the source system sends the "
             "right content as a new version (SJBBH)."))
    for d in differences:
        stored, incoming = _value(d.stored), _value(d.incoming)
        echo(say(lang, f"  {d.field}：已入库 {stored}，新到 {incoming}",
                 f"  {d.field}: stored {stored}, incoming {incoming}"))
    return EXIT_OK


def run_conflicts_resolve(config_path: Path | None, conflict_ids: Sequence[int],
                          by: str | None, note: str, as_json: bool, lang: str) -> int:
    try:
        # The words first: an empty note is said as such, whatever the store.
        resolver, note = resolution_words(by if by is not None else _login_name(), note)
        with open_level(config_path) as level:
            outcome = resolve(level.store, conflict_ids, resolver, note)
    except ExgateError as exc:
        return fail_with(exc, lang)
    code = EXIT_SOME_FAIL if outcome.unknown else EXIT_OK
    if as_json:
        click.echo(json.dumps({"resolved": outcome.resolved, "already": outcome.already,
                               "unknown": outcome.unknown, "resolved_by": outcome.by,
                               "resolution_note": outcome.note},
                              ensure_ascii=False, indent=2))
        return code
    for ids, zh, en in ((outcome.resolved, "已标记为已处理", "marked resolved"),
                        (outcome.already, "此前已处理", "already resolved"),
                        (outcome.unknown, "未找到", "not found")):
        if ids:
            shown = ", ".join(str(i) for i in ids)
            echo(say(lang, f"{zh}：{shown}", f"{en}: {shown}"), err=ids is outcome.unknown)
    return code


def _value(text: str | None) -> str:
    """A field's value on its difference's one line: a stored line break would otherwise
    start what reads as the next field."""
    return one_line(text) if text else _ABSENT


def _login_name() -> str:
    """Who runs the command, for ``--by`` left out: under sudo, the person who ran sudo
    (``SUDO_USER``), not the account the command runs as."""
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        return sudo_user
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:  # no login name in the environment or passwd
        raise ConfigError(f"cannot tell who you are ({exc}): give --by NAME",
                          zh=f"无法确定当前用户（{exc}）：请用 --by 姓名 指明") from exc


def _line(entry: ConflictEntry, lang: str) -> str:
    state = say(lang, "待处理", "open") if entry.resolved_at is None else \
        _resolution(entry, entry.resolved_at, lang)
    return say(lang,
               f"[{entry.conflict_id}] 节点 {entry.node_id} {entry.element} 业务键 "
               f"{entry.key_text} 版本 {entry.version}：批次 {entry.batch_id}，发现于 "
               f"{entry.detected_at:%Y-%m-%d %H:%M:%S}，{state}",
               f"[{entry.conflict_id}] node {entry.node_id} {entry.element} key "
               f"{entry.key_text} version {entry.version}: batch {entry.batch_id}, found "
               f"{entry.detected_at:%Y-%m-%d %H:%M:%S}, {state}")


def _resolution(entry: ConflictEntry, at: datetime, lang: str) -> str:
    """When, and (from revision 0005 on) by whom and why, a conflict was resolved."""
    when = f"{at:%Y-%m-%d %H:%M:%S}"
    if entry.resolved_by is None:
        return say(lang, f"已处理（{when}）", f"resolved {when}")
    return say(lang, f"已处理（{when}，{entry.resolved_by}：{entry.resolution_note}）",
               f"resolved {when} by {entry.resolved_by}: {entry.resolution_note}")

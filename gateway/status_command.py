"""``exgate status``: the sync status of every node of a level, as a tree or as JSON.

The tree (rich; colours on a terminal, plain text when piped) reads province → city →
county → node, each line with its light; a node line carries its last contact, source
lag, pending batches, failures and element coverage with the elements missing (named
when few, by code when more, counted past six). ``--json`` prints the stable shape
documented in ``gateway.status_json``. A degraded report (unreadable registry files)
says so under the tree, file by file; it still exits 0, as the JSON carries it too.
When the level's gateway runs with a dashboard, what it holds while the store refuses
writes is asked there (``gateway.status_live``) and shown under the tree, or as
``store_writes`` in the JSON.

The store must exist: a mistyped SQLite path is reported, never created, and exits 2
like a configuration error. A store that cannot be read exits 1 with a hint by the kind
of failure (the database away, exgate's tables not there, anything else). With
``--json``, either prints ``{"schema": 1, "error": "store-not-found" |
"store-unavailable" | "store-not-migrated", "detail": "…"}`` on stdout too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from adapters.stores.sql import SqlStore
from adapters.stores.sql_engine import StoreNotFound
from gateway.cli_support import error_detail, printable
from gateway.config import load_config
from gateway.holds import HoldState
from gateway.status import Group, NodeStatus, StatusReport
from gateway.status_json import JSON_SCHEMA, iso, report_text
from gateway.status_live import held_writes
from gateway.status_source import StatusSource
from gateway.status_text import division_label, duration, missing_elements, reason_label, t
from schemas.errors import ConfigError, ExgateError, RetriableError
from schemas.refusals import reason_name

__all__ = ["render_tree", "run_status"]

STYLES = {"green": "bold green", "yellow": "bold yellow", "red": "bold red", "off": "dim"}
MAX_FAILED_SHOWN = 20
Elements = tuple[tuple[str, str], ...]    # (code, Chinese label): StatusReport.elements


def run_status(config_path: Path, as_json: bool, lang: str,
               console: Console | None = None) -> int:
    """0 printed, 1 store unreadable, 2 config error."""
    console = console or Console()
    errors = Console(stderr=True)
    try:
        config = load_config(config_path)
        store = SqlStore(config.store_url, create=False)
    except StoreNotFound as exc:
        _unreadable(exc, NOT_FOUND, as_json, lang, console, errors)
        return 2
    except ConfigError as exc:
        errors.print(f"exgate status: {error_detail(exc, lang)}", markup=False, soft_wrap=True,
                     highlight=False)
        return 2
    try:
        report = StatusSource(store, config.division, config.status,
                              registry_path=config.registry_path).report()
    except ExgateError as exc:
        _unreadable(exc, store_failure(exc), as_json, lang, console, errors)
        return 1
    finally:
        store.close()
    holds = held_writes(config.dashboard_listen, config.division)
    if as_json:
        console.out(report_text(report, indent=2, holds=holds), highlight=False)
        return 0
    console.print(render_tree(report, lang))
    if holds is not None and holds.since is not None:
        console.print(_held(holds, lang))
    if report.degraded:
        console.print(_degraded(report, lang))
    if report.failed:
        console.print(_failed_table(report, lang))
    return 0


def _held(holds: HoldState, lang: str) -> Text:
    """The dashboard's banner: the level's gateway holds what the store refuses."""
    assert holds.since is not None
    style = STYLES["red" if holds.alarming else "yellow"]
    return Text.assemble(
        (t("store_refuses_writes", lang, since=iso(holds.since), n=holds.held), style),
        "\n", t("store_refuses_writes_nodes", lang))


def _unreadable(exc: ExgateError, kind: StoreFailure, as_json: bool, lang: str,
                console: Console, errors: Console) -> None:
    """Why the store could not be read, with the hint its kind of failure calls for.

    On stderr for people; with ``--json`` also on stdout, as ``/status.json`` says it,
    so a script reading stdout learns the status is missing rather than nothing.
    """
    detail = _one_shot(error_detail(exc, lang))
    hint = t(kind.hint, lang) if kind.hint is not None else ""
    errors.print(f"exgate status: {detail}{hint}", markup=False,
                 soft_wrap=True, highlight=False)
    if as_json:
        console.out(json.dumps({"schema": JSON_SCHEMA, "error": kind.code,
                                "detail": _one_shot(error_detail(exc, "en"))},
                               ensure_ascii=False, indent=2), highlight=False)


@dataclass(frozen=True)
class StoreFailure:
    code: str           # the JSON's "error"
    hint: str | None    # the status_text key of what to check, when the error says none


NOT_FOUND = StoreFailure("store-not-found", None)  # it names [store] url to check
UNREACHABLE = StoreFailure("store-unavailable", "hint_store_unreachable")
NOT_MIGRATED = StoreFailure("store-not-migrated", "hint_store_not_migrated")
BROKEN = StoreFailure("store-unavailable", None)

# A table or column the query names is not there: SQLite's words, PostgreSQL's SQLSTATEs
# (undefined table, undefined column), MySQL/MariaDB's and Oracle's words.
_NO_TABLE_STATES = ("42P01", "42703")
_NO_TABLE_WORDS = ("no such table", "no such column", "doesn't exist", "Unknown column",
                   "ORA-00942", "ORA-00904")


def store_failure(exc: ExgateError) -> StoreFailure:
    """What kind of failure a store read met: away, not migrated, or something else."""
    if isinstance(exc, RetriableError):
        return UNREACHABLE
    cause = getattr(exc.__cause__, "orig", None) or exc.__cause__
    if cause is not None and (getattr(cause, "sqlstate", None) in _NO_TABLE_STATES
                              or any(w in str(cause) for w in _NO_TABLE_WORDS)):
        return NOT_MIGRATED
    return BROKEN


def _one_shot(message: str) -> str:
    # The store's errors are worded for the gateway, which retries; this command does not.
    return message.removesuffix("; will retry")


def render_tree(report: StatusReport, lang: str) -> Tree:
    counts = {k: report.counts.get(k, 0) for k in ("green", "yellow", "red", "off")}
    title = Text.assemble(
        _dot(report.light.value), f" {t('title', lang)} · {t('level', lang)} {report.level} · ",
        t("summary", lang, total=len(report.nodes), **counts),
        f" · {t('generated', lang)} {iso(report.generated_at)}")
    tree = Tree(title)
    if not report.nodes:
        tree.add(t("no_nodes", lang))
    for group in report.tree:
        _add_group(tree, group, report.elements, lang)
    return tree


def _add_group(parent: Tree, group: Group, elements: Elements, lang: str) -> None:
    branch = parent.add(Text.assemble(_dot(group.light.value), " ",
                                      division_label(group.division, group.kind, lang)))
    for child in group.children:
        _add_group(branch, child, elements, lang)
    for node in group.nodes:
        branch.add(_node_line(node, elements, lang))


def _node_line(node: NodeStatus, elements: Elements, lang: str) -> Text:
    line = Text.assemble(_dot(node.light.value), " ", (node.node_id, "bold"), "  ")
    line.append(f"{t('contact_age', lang)} {duration(node.contact_age_s, lang)} · "
                f"{t('source_lag', lang)} {duration(node.source_lag_s, lang)} · "
                f"{t('pending', lang)} {_count(node.pending_batches)} · "
                f"{t('failed', lang)} {node.failed_batches} · "
                + (f"{t('conflicts', lang)} {node.conflicts} · " if node.conflicts else "") +
                f"{t('records_today', lang)} {node.records_today} · "
                f"{t('coverage', lang)} {node.covered}/{len(node.coverage)}"
                + _missing(node, elements, lang))
    if node.reasons:
        line.append("  " + ", ".join(reason_label(r, lang) for r in node.reasons),
                    STYLES[node.light.value])
    if node.last_error:
        line.append(f"\n   {t('last_error', lang)}: {printable(node.last_error[:200])}", "dim")
    return line


def _missing(node: NodeStatus, elements: Elements, lang: str) -> str:
    """Which elements a node lacks, when it has some: none at all says ``0/14`` alone."""
    if not node.covered or not node.missing:
        return ""
    return t("coverage_missing", lang, items=missing_elements(node.missing, elements, lang))


def _degraded(report: StatusReport, lang: str) -> Text:
    text = Text(t("degraded", lang, n=len(report.registry_errors)), STYLES["red"])
    for bad in report.registry_errors:
        text.append(f"\n   {printable(f'{bad.file}: {bad.reason_in(lang)}')}", "red")
    return text


def _failed_table(report: StatusReport, lang: str) -> Table:
    table = Table(title=t("failed_batches", lang), title_justify="left")
    shown = report.failed[:MAX_FAILED_SHOWN]
    # Whole IDs on one line: operators copy them into `exgate batches replay` and
    # `--node`. The reason column gives up the width; only an ID wider than the whole
    # terminal is folded, never cut.
    _whole_column(table, t("batch_id", lang), (printable(f.batch_id) for f in shown))
    _whole_column(table, t("node", lang), (printable(f.node_id or "?") for f in shown))
    table.add_column(t("reason", lang), overflow="fold", ratio=1, min_width=8)
    table.add_column(t("received_at", lang), min_width=10)   # date above time if narrow
    for failed in shown:
        # Text, not str: the IDs and the detail come from the message, and a str cell
        # would be parsed as rich markup (a stray "[/x]" raises, "[red]" restyles).
        table.add_row(Text(printable(failed.batch_id)), Text(printable(failed.node_id or "?")),
                      Text(printable(f"{reason_name(failed.reason).pick(lang)}: "
                                     f"{failed.detail[:120]}")),
                      failed.received_at.strftime("%Y-%m-%d %H:%M:%S"))
    more = report.failed_totals.refusals - MAX_FAILED_SHOWN
    if more > 0:
        table.caption = t("more_failed", lang, n=more)
    return table


def _whole_column(table: Table, header: str, values: Iterable[str]) -> None:
    """A column as wide as its widest value, on one line, never shortened with "…"."""
    table.add_column(header, no_wrap=True, overflow="fold",
                     min_width=max((cell_len(v) for v in values), default=0))


def _dot(light: str) -> tuple[str, str]:
    return ("●", STYLES.get(light, ""))


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)

"""``exgate status``: the sync status of every node of a level, as a tree or as JSON.

The tree (rich; colours on a terminal, plain text when piped) reads province → city →
county → node, each line with its light; a node line carries its last contact, source
lag, pending batches, failures and element coverage. ``--json`` prints the stable shape
documented in ``gateway.status_json``. A degraded report (unreadable registry files)
says so under the tree, file by file; it still exits 0, as the JSON carries it too.

The store must exist: a mistyped SQLite path is reported, never created.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from adapters.stores.sql import SqlStore
from gateway.cli_support import error_detail, printable
from gateway.config import load_config
from gateway.status import Group, NodeStatus, StatusReport
from gateway.status_json import iso, report_text
from gateway.status_source import StatusSource
from gateway.status_text import division_label, duration, reason_label, t
from schemas.errors import ConfigError, ExgateError

__all__ = ["render_tree", "run_status"]

STYLES = {"green": "bold green", "yellow": "bold yellow", "red": "bold red", "off": "dim"}
MAX_FAILED_SHOWN = 20


def run_status(config_path: Path, as_json: bool, lang: str,
               console: Console | None = None) -> int:
    """0 printed, 1 store unreadable, 2 config error."""
    console = console or Console()
    errors = Console(stderr=True)
    try:
        config = load_config(config_path)
        store = SqlStore(config.store_url, create=False)
    except ConfigError as exc:
        errors.print(f"exgate status: {error_detail(exc, lang)}", markup=False, soft_wrap=True,
                     highlight=False)
        return 2
    try:
        report = StatusSource(store, config.division, config.status,
                              registry_path=config.registry_path).report()
    except ExgateError as exc:
        hint = (" (has `exgate gateway run` migrated this store?)" if lang == "en" else
                "（此监察库是否已由 `exgate gateway run` 建好表？）")
        errors.print(f"exgate status: {error_detail(exc, lang)}{hint}",
                     markup=False, soft_wrap=True, highlight=False)
        return 1
    finally:
        store.close()
    if as_json:
        console.out(report_text(report, indent=2), highlight=False)
        return 0
    console.print(render_tree(report, lang))
    if report.degraded:
        console.print(_degraded(report, lang))
    if report.failed:
        console.print(_failed_table(report, lang))
    return 0


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
        _add_group(tree, group, lang)
    return tree


def _add_group(parent: Tree, group: Group, lang: str) -> None:
    branch = parent.add(Text.assemble(_dot(group.light.value), " ",
                                      division_label(group.division, group.kind, lang)))
    for child in group.children:
        _add_group(branch, child, lang)
    for node in group.nodes:
        branch.add(_node_line(node, lang))


def _node_line(node: NodeStatus, lang: str) -> Text:
    line = Text.assemble(_dot(node.light.value), " ", (node.node_id, "bold"), "  ")
    line.append(f"{t('contact_age', lang)} {duration(node.contact_age_s, lang)} · "
                f"{t('source_lag', lang)} {duration(node.source_lag_s, lang)} · "
                f"{t('pending', lang)} {_count(node.pending_batches)} · "
                f"{t('failed', lang)} {node.failed_batches} · "
                f"{t('records_today', lang)} {node.records_today} · "
                f"{t('coverage', lang)} {node.covered}/{len(node.coverage)}")
    if node.reasons:
        line.append("  " + ", ".join(reason_label(r, lang) for r in node.reasons),
                    STYLES[node.light.value])
    if node.last_error:
        line.append(f"\n   {t('last_error', lang)}: {printable(node.last_error[:200])}", "dim")
    return line


def _degraded(report: StatusReport, lang: str) -> Text:
    text = Text(t("degraded", lang, n=len(report.registry_errors)), STYLES["red"])
    for bad in report.registry_errors:
        text.append(f"\n   {printable(f'{bad.file}: {bad.reason_in(lang)}')}", "red")
    return text


def _failed_table(report: StatusReport, lang: str) -> Table:
    table = Table(title=t("failed_batches", lang), title_justify="left")
    for key in ("batch_id", "node", "reason", "received_at"):
        table.add_column(t(key, lang))
    for failed in report.failed[:MAX_FAILED_SHOWN]:
        # Text, not str: the IDs and the detail come from the message, and a str cell
        # would be parsed as rich markup (a stray "[/x]" raises, "[red]" restyles).
        table.add_row(Text(printable(failed.batch_id)), Text(printable(failed.node_id or "?")),
                      Text(printable(f"{failed.reason}: {failed.detail[:120]}")),
                      failed.received_at.strftime("%Y-%m-%d %H:%M:%S"))
    more = report.failed_totals.refusals - MAX_FAILED_SHOWN
    if more > 0:
        table.caption = t("more_failed", lang, n=more)
    return table


def _dot(light: str) -> tuple[str, str]:
    return ("●", STYLES.get(light, ""))


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)

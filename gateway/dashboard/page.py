"""The dashboard page: server-rendered HTML of one ``StatusReport``, no inline script or style.

Every value a test or a script may read carries a stable id or data attribute:

- ``#overall[data-light]``; tree groups ``li.group[data-kind][data-division][data-light]``
  and nodes ``li.tree-node[data-node][data-light]``;
- node rows ``tr#node-<id>[data-light][data-pending][data-failed][data-lag]``;
- coverage cells ``#coverage td[data-node][data-element][data-covered][data-last]``, and
  each node's count ``td[data-covered-count][data-missing]`` (the codes missing, spaced;
  their names in its title);
- failed batches ``#failed-batches tr[data-batch][data-node][data-reason]``, and
  ``#failed-more[data-more]`` when the table holds fewer than the level's total;
- a degraded report's banner ``#degraded[data-files]`` with ``li[data-file]`` per
  unreadable registry file;
- inside ``gateway run``, while its consumer has held deliveries through failures for
  ``gateway.holds.HOLD_ALERT_S``, the banner ``#store-writes[data-held][data-since]``;
- the chart ``#throughput-chart`` (``data-drawn="1"`` once drawn) fed by the JSON in
  ``#throughput-data``.

``render_trouble`` is the small page shown instead when there is no report to show
(``#trouble[data-reason]``): it says so in the reader's language and reloads itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from html import escape

from gateway.holds import HoldState
from gateway.status import Group, NodeStatus, StatusReport
from gateway.status_json import iso
from gateway.status_text import (
    division_label,
    duration,
    element_label,
    light_label,
    missing_elements,
    reason_label,
    t,
)
from schemas.refusals import next_step, reason_name
from schemas.times import BEIJING

__all__ = ["MAX_FAILED_ROWS", "TROUBLES", "render_page", "render_trouble"]

MAX_FAILED_ROWS = 100
_FRESH = timedelta(days=1)       # coverage cell shades: arrived within a day / a week
_RECENT = timedelta(days=7)
# render_trouble's reasons: the data-reason, and the status_text key that explains it.
TROUBLES = {"store-unavailable": "store_down", "internal-error": "internal_error"}


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def render_page(report: StatusReport, lang: str, refresh_s: int,
                holds: HoldState | None = None) -> str:
    """The page; ``holds``: what the consumer beside the dashboard holds, if any."""
    other = "en" if lang != "en" else "zh"
    return f"""{_head(report.level, lang, refresh_s, "uPlot.min.css", "dashboard.css")}
{_header(report, lang, other, refresh_s)}
<main>
{_held(holds, lang)}{_degraded(report, lang)}<div class="grid">
<section class="card" id="tree-card"><h2>{_e(t('tree', lang))}</h2>{_tree(report, lang)}</section>
<section class="card" id="chart-card">
<h2>{_e(t('throughput', lang, n=len(report.throughput)))}</h2>
<div id="throughput-chart" data-drawn="0"></div>
</section>
</div>
<section class="card"><h2>{_e(t('detail', lang))}</h2>{_detail(report, lang)}</section>
<section class="card"><h2>{_e(t('coverage', lang))}</h2>{_coverage(report, lang)}</section>
<section class="card"><h2>{_e(t('failed_batches', lang))}</h2>{_failed(report, lang)}</section>
</main>
{_chart_data(report, lang)}
<script src="/static/uPlot.iife.min.js"></script>
<script src="/static/dashboard.js"></script>
</body>
</html>
"""


def _header(report: StatusReport, lang: str, other: str, refresh_s: int) -> str:
    counts = "".join(
        f'<span class="chip {k}" data-count="{k}">{_e(light_label(k, lang))} '
        f'<b>{report.counts.get(k, 0)}</b></span>' for k in ("green", "yellow", "red", "off"))
    level = division_label(report.level, "level", lang)
    return f"""<header>
<div class="brand"><span class="light big {report.light.value}" id="overall"
 data-light="{report.light.value}" title="{_e(light_label(report.light.value, lang))}"></span>
<div><h1>{_e(t('title', lang))}</h1>
<div class="sub">{_e(t('level', lang))} <b id="level">{_e(level)}</b> ·
{_e(t('generated', lang))} <time id="generated">{_e(_clock(report.generated_at))}</time> ·
{_e(t('refresh_every', lang, n=refresh_s))}</div></div></div>
<div class="chips">{counts}</div>
<nav><a href="/?lang={other}" id="lang-switch">{_e(t('language', lang))}</a>
<a href="/status.json">{_e(t('json', lang))}</a>
<a href="/metrics">{_e(t('metrics', lang))}</a></nav>
</header>"""


def _degraded(report: StatusReport, lang: str) -> str:
    if not report.degraded:
        return ""
    files = "".join(f'<li class="mono" data-file="{_e(bad.file)}">{_e(bad.file)}: '
                    f'{_e(bad.reason_in(lang))}</li>' for bad in report.registry_errors)
    return (f'<section class="banner" id="degraded" role="alert" '
            f'data-files="{len(report.registry_errors)}"><strong>'
            f'{_e(t("degraded", lang, n=len(report.registry_errors)))}</strong>'
            f'<ul>{files}</ul></section>\n')


def _held(holds: HoldState | None, lang: str) -> str:
    """The level's banner while the store refuses to keep what the consumer holds."""
    if holds is None or not holds.alarming or holds.since is None:
        return ""
    since = _clock(holds.since)
    return (f'<section class="banner" id="store-writes" role="alert" '
            f'data-held="{holds.held}" data-since="{_e(iso(holds.since))}"><strong>'
            f'{_e(t("store_refuses_writes", lang, since=since, n=holds.held))}</strong>'
            f'<p>{_e(t("store_refuses_writes_nodes", lang))}</p></section>\n')


def _dot(light: str, lang: str) -> str:
    return f'<span class="light {light}" title="{_e(light_label(light, lang))}"></span>'


def _tree(report: StatusReport, lang: str) -> str:
    if not report.tree:
        return f'<p class="empty">{_e(t("no_nodes", lang))}</p>'
    return f'<ul class="tree" id="tree">{"".join(_group(g, lang) for g in report.tree)}</ul>'


def _group(group: Group, lang: str) -> str:
    inner = "".join(_group(child, lang) for child in group.children)
    inner += "".join(_tree_node(node, lang) for node in group.nodes)
    label = division_label(group.division, group.kind, lang)
    return (f'<li class="group {group.kind}" data-kind="{group.kind}" '
            f'data-division="{_e(group.division)}" data-light="{group.light.value}">'
            f'<div class="row">{_dot(group.light.value, lang)}<span class="name">{_e(label)}'
            f'</span></div><ul>{inner}</ul></li>')


def _tree_node(node: NodeStatus, lang: str) -> str:
    reasons = "".join(f'<span class="reason {node.light.value}">{_e(reason_label(r, lang))}'
                      f'</span>' for r in node.reasons[:3])
    return (f'<li class="tree-node" id="tree-{_e(node.node_id)}" data-node="{_e(node.node_id)}"'
            f' data-light="{node.light.value}"><div class="row">{_dot(node.light.value, lang)}'
            f'<a class="name mono" href="#node-{_e(node.node_id)}">{_e(node.node_id)}</a>'
            f'<span class="muted">{_e(duration(node.contact_age_s, lang))}</span>{reasons}'
            f'</div></li>')


def _detail(report: StatusReport, lang: str) -> str:
    heads = ("node", "division", "light", "last_heartbeat", "source_lag", "pending",
             "oldest_pending", "records_today", "records_week", "records_total", "failed",
             "conflicts", "last_error")
    rows = "".join(_detail_row(node, lang) for node in report.nodes)
    return _table("nodes", heads, rows, lang)


def _detail_row(node: NodeStatus, lang: str) -> str:
    reasons = ", ".join(reason_label(r, lang) for r in node.reasons) or light_label(
        node.light.value, lang)
    beat = (f'{_e(_clock(node.last_heartbeat))}<div class="muted">'
            f'{_e(duration(node.contact_age_s, lang))}</div>') if node.last_heartbeat else \
        f'<span class="muted">{_e(t("never", lang))}</span>'
    lag_class = " warn" if node.lag_growing else ""
    return (f'<tr id="node-{_e(node.node_id)}" data-node="{_e(node.node_id)}" '
            f'data-light="{node.light.value}" data-pending="{_e(node.pending_batches)}" '
            f'data-failed="{node.failed_batches}" data-lag="{_e(node.source_lag_s)}">'
            f'<td class="mono strong nowrap">{_e(node.node_id)}</td>'
            f'<td class="nowrap">{_e(division_label(node.division, "node", lang))}</td>'
            f'<td class="nowrap">{_dot(node.light.value, lang)} {_e(reasons)}</td>'
            f'<td class="nowrap">{beat}</td>'
            f'<td class="num{lag_class}">{_e(duration(node.source_lag_s, lang))}</td>'
            f'<td class="num">{_e(_count(node.pending_batches))}</td>'
            f'<td class="num">{_e(duration(node.oldest_pending_age_s, lang))}</td>'
            f'<td class="num">{node.records_today:,}</td>'
            f'<td class="num">{node.records_week:,}</td>'
            f'<td class="num">{node.records_total:,}</td>'
            f'<td class="num{" bad" if node.failed_batches else ""}">{node.failed_batches}</td>'
            f'<td class="num{" warn" if node.conflicts else ""}" '
            f'data-conflicts="{node.conflicts}">{node.conflicts}</td>'
            f'{_error_cell(node.last_error)}</tr>')


def _error_cell(error: str | None) -> str:
    if not error:
        return '<td class="muted">—</td>'
    return f'<td class="error" title="{_e(error)}">{_e(error[:300])}</td>'


def _coverage(report: StatusReport, lang: str) -> str:
    names = [(code, element_label(code, label, lang)) for code, label in report.elements]
    heads = "".join(f'<th class="element" data-element="{_e(code)}" title="{_e(name)}">'
                    f'<div class="code">{_e(code)}</div><div class="label">{_e(name)}</div>'
                    f'</th>' for code, name in names)
    rows = "".join(_coverage_row(node, report, lang) for node in report.nodes)
    return (f'<div class="scroll"><table id="coverage" class="matrix"><thead><tr>'
            f'<th>{_e(t("node", lang))}</th>{heads}<th>{_e(t("covered", lang))}</th></tr>'
            f'</thead><tbody>{rows}</tbody></table></div>')


def _coverage_row(node: NodeStatus, report: StatusReport, lang: str) -> str:
    now, cells = report.generated_at, []
    for cell in node.coverage:
        if cell.last_at is None:
            cells.append(f'<td class="cell none" data-node="{_e(node.node_id)}" '
                         f'data-element="{cell.element}" data-covered="0" data-last="" '
                         f'data-records="0" title="{_e(t("never", lang))}">—</td>')
            continue
        age = now - cell.last_at
        shade = "fresh" if age <= _FRESH else "recent" if age <= _RECENT else "old"
        cells.append(f'<td class="cell {shade}" data-node="{_e(node.node_id)}" '
                     f'data-element="{cell.element}" data-covered="1" '
                     f'data-last="{_e(iso(cell.last_at))}" data-records="{cell.records}" '
                     f'title="{_e(_clock(cell.last_at))} · {cell.records:,}">✓</td>')
    return (f'<tr data-node="{_e(node.node_id)}"><th class="mono">{_dot(node.light.value, lang)}'
            f' {_e(node.node_id)}</th>{"".join(cells)}<td class="num strong" '
            f'data-covered-count="{node.covered}"{_missing(node, report, lang)}>'
            f'{node.covered}/{len(node.coverage)}</td></tr>')


def _missing(node: NodeStatus, report: StatusReport, lang: str) -> str:
    """The count cell's attributes naming the elements missing: every one, with its name,
    where the pointer rests; their codes for scripts."""
    if not node.missing:
        return ' data-missing=""'
    names = missing_elements(node.missing, report.elements, lang, whole=True)
    return (f' data-missing="{_e(" ".join(node.missing))}" '
            f'title="{_e(t("missing_title", lang, items=names))}"')


def _next_step(reason: str, lang: str) -> str:
    """The operator's next step for ``reason``, shown when the pointer rests on it."""
    step = next_step(reason)
    return "" if step is None else step.pick(lang)


def _failed(report: StatusReport, lang: str) -> str:
    if not report.failed:
        return f'<p class="empty" id="failed-batches-empty">{_e(t("no_failed", lang))}</p>'
    rows = "".join(
        f'<tr data-batch="{_e(f.batch_id)}" data-node="{_e(f.node_id)}" '
        f'data-reason="{_e(f.reason)}"><td class="mono">{_e(f.batch_id)}</td>'
        f'<td class="mono">{_e(f.node_id or "?")}</td><td><span class="tag" '
        f'title="{_e(_next_step(f.reason, lang))}">{_e(reason_name(f.reason).pick(lang))}'
        f'</span> {_e(f.detail)}</td><td class="nowrap">{_e(_clock(f.received_at))}</td></tr>'
        for f in report.failed[:MAX_FAILED_ROWS])
    # The report lists at most a few hundred; its total counts every one.
    more = report.failed_totals.refusals - min(len(report.failed), MAX_FAILED_ROWS)
    note = f'<p class="muted" id="failed-more" data-more="{more}">' \
        f'{_e(t("more_failed", lang, n=more))}</p>' if more > 0 else ""
    return _table("failed-batches", ("batch_id", "node", "reason", "received_at"), rows,
                  lang) + note


def _head(subtitle: str, lang: str, refresh_s: int, *stylesheets: str) -> str:
    """The document up to ``<body>``: a page that reloads itself every ``refresh_s``."""
    links = "\n".join(f'<link rel="stylesheet" href="/static/{name}">' for name in stylesheets)
    return f"""<!DOCTYPE html>
<html lang="{'en' if lang == 'en' else 'zh-CN'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{int(refresh_s)}">
<title>{_e(t('title', lang))} · {_e(subtitle)}</title>
<link rel="icon" href="data:,">
{links}
</head>
<body data-lang="{_e(lang)}">"""


def render_trouble(reason: str, lang: str, refresh_s: int) -> str:
    """The page instead of the status (``reason`` one of ``TROUBLES``), reloading itself.

    It names no host, user or database: the wallboard may face a room, the log does not.
    """
    other = "en" if lang != "en" else "zh"
    return f"""{_head(t('unavailable', lang), lang, refresh_s, "dashboard.css")}
<main><section class="card trouble" id="trouble" data-reason="{_e(reason)}">
<h1>{_e(t('title', lang))}</h1>
<p class="banner">{_e(t(TROUBLES[reason], lang))}</p>
<p class="muted">{_e(t('retrying', lang, n=int(refresh_s)))}</p>
<nav><a href="/?lang={other}" id="lang-switch">{_e(t('language', lang))}</a></nav>
</section></main>
</body>
</html>
"""


def _table(table_id: str, heads: Iterable[str], rows: str, lang: str) -> str:
    cells = "".join(f"<th>{_e(t(h, lang))}</th>" for h in heads)
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{cells}</tr></thead>'
            f'<tbody>{rows}</tbody></table></div>')


def _chart_data(report: StatusReport, lang: str) -> str:
    data = {
        "t": [int(p.start.replace(tzinfo=BEIJING).timestamp()) for p in report.throughput],
        "records": [p.records for p in report.throughput],
        "failed": [p.failed for p in report.throughput],
        "labels": {"time": t("hour", lang), "records": t("records", lang),
                   "failed": t("refused", lang)},
    }
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="throughput-data">{text}</script>'


def _clock(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"

"""Words of the sync-status views, in Chinese (default) and English.

Shared by ``exgate status`` and the web dashboard so both say the same thing. Element
labels come from the schema catalogue; the English element names are the project's
(domain brief), falling back to the code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import cache

from schemas.divisions import Level, level_of
from schemas.messages import said

__all__ = ["LANGS", "division_label", "element_label", "light_label", "missing_elements",
           "reason_label", "t"]

LANGS = ("zh", "en")

_TEXT: dict[str, tuple[str, str]] = {
    "title": ("数据交换同步状态", "Data exchange sync status"),
    "level": ("本级", "Level"),
    "generated": ("更新于", "Updated"),
    "refresh_every": ("每 {n} 秒自动刷新", "refreshes every {n} s"),
    "tree": ("节点树", "Node tree"),
    "nodes": ("节点", "Nodes"),
    "node": ("节点", "Node"),
    "division": ("区划", "Division"),
    "light": ("状态", "Light"),
    "reasons": ("原因", "Reasons"),
    "last_heartbeat": ("最后心跳", "Last heartbeat"),
    "contact_age": ("距上次联系", "Since last contact"),
    "source_lag": ("源数据延迟", "Source lag"),
    "pending": ("未完成批次", "Pending"),  # unsent, or sent and missing a level's receipt
    "unbatched": ("未成批记录", "Unbatched records"),
    "oldest_pending": ("最早待发", "Oldest pending"),
    "records_today": ("今日入库", "Today"),
    "records_week": ("本周入库", "This week"),
    "records_total": ("累计入库", "Total"),
    "batches_total": ("批次", "Batches"),
    "failed": ("失败批次", "Failed"),
    "conflicts": ("冲突记录", "Conflicts"),
    "last_error": ("最近错误", "Last error"),
    "version": ("版本", "Version"),
    "coverage": ("要素覆盖", "Element coverage"),
    "covered": ("已覆盖", "Covered"),
    "coverage_missing": ("（缺 {items}）", " (missing {items})"),
    "missing_more": ("{codes} 等 {n} 项", "{n}: {codes} …"),
    "missing_title": ("缺：{items}", "Missing: {items}"),
    "never": ("从未", "never"),
    "none": ("无", "none"),
    "detail": ("节点详情", "Node detail"),
    "throughput": ("吞吐量（近 {n} 小时，每小时入库记录）",
                   "Throughput (records stored per hour, last {n} hours)"),
    "records": ("入库记录", "Records stored"),
    "hour": ("时段", "Hour"),
    "refused": ("失败批次", "Failed batches"),
    "batches": ("批次", "Batches"),
    "failed_batches": ("失败批次（未重放）", "Failed batches (not replayed)"),
    "batch_id": ("批次号", "Batch ID"),
    "reason": ("原因", "Reason"),
    "received_at": ("接收时间", "Received"),
    "no_failed": ("没有未重放的失败批次。", "No failed batches awaiting replay."),
    "no_nodes": ("本级尚无节点。", "No nodes at this level yet."),
    "degraded": ("状态不完整：{n} 个节点登记文件无法读取，其中的节点未按登记簿显示",
                 "Incomplete status: {n} node registry file(s) unreadable; their nodes are "
                 "not shown as registered"),
    "more_failed": ("另有 {n} 条未列出", "{n} more not listed"),
    "store_refuses_writes": (
        "监察库写入失败，自 {since} 起批次与心跳暂存（当前 {n} 条）",
        "The store refuses writes since {since}: batches and heartbeats are held ({n} now)"),
    "store_refuses_writes_nodes": (
        "恢复前节点的心跳会显示迟到，并非节点故障；详情见网关日志。",
        "Until it recovers, nodes' heartbeats look late through no fault of theirs; the "
        "gateway's log has the details."),
    "unavailable": ("暂不可用", "unavailable"),
    "store_down": ("暂时无法读取本级监察库。", "The level's store cannot be read right now."),
    "internal_error": ("生成状态页时出错。", "The status page could not be built."),
    "hint_store_unreachable": ("（请检查监察库所在的数据库服务是否在运行、网络是否可达）",
                               " (is the store's database server running and reachable?)"),
    "hint_store_not_migrated": ("（此监察库是否已由 `exgate gateway run` 建好表？）",
                                " (has `exgate gateway run` migrated this store?)"),
    "retrying": ("每 {n} 秒自动重试，详情见网关日志。",
                 "Retrying every {n} s; the gateway's log has the details."),
    "summary": ("共 {total} 个节点：正常 {green}，关注 {yellow}，告警 {red}，停用 {off}",
                "{total} nodes: {green} healthy, {yellow} warning, {red} alert, {off} disabled"),
    "city_itself": ("市本级", "city level"),
    "province_itself": ("省本级", "province level"),
    "seconds": ("{n} 秒", "{n} s"),
    "minutes": ("{n} 分钟", "{n} min"),
    "hours": ("{n} 小时", "{n} h"),
    "days": ("{n} 天", "{n} d"),
    "metrics": ("Prometheus 指标", "Prometheus metrics"),
    "json": ("JSON", "JSON"),
    "language": ("English", "中文"),
}

# The domain brief's names; the Chinese labels are the schema catalogue's.
_ELEMENTS_EN = {
    "JGXX": "Organization", "SXXX": "Approval item", "SBXX": "Application",
    "SBCL": "Materials", "YSL": "Pre-acceptance", "SL": "Acceptance",
    "SPGC": "Process step", "BZGZ": "Supplement notice", "BZSL": "Supplement received",
    "TBCXSQ": "Special procedure start", "TBCXJG": "Special procedure end",
    "BJ": "Completion", "SF": "Fee", "LQDJ": "Result pick-up",
}

_LIGHTS = {"green": ("正常", "healthy"), "yellow": ("关注", "warning"),
           "red": ("告警", "alert"), "off": ("停用", "disabled")}

_REASONS = {
    "never-seen": ("从未上报", "never seen"),
    "silent": ("长时间无心跳", "silent"),
    "heartbeat-late": ("心跳迟到", "heartbeat late"),
    "lag-critical": ("源数据严重滞后", "source lag critical"),
    "lag-high": ("源数据滞后", "source lag high"),
    "lag-growing": ("滞后持续增长", "lag growing"),
    "pending-stale": ("待发批次积压过久", "pending batches stale"),
    "pending-old": ("待发批次积压", "pending batches old"),
    "failing": ("批次持续失败", "batches failing"),
    "failed-batches": ("有失败批次", "failed batches"),
    "agent-error": ("代理报告错误", "agent reports an error"),
    "disabled": ("已停用", "disabled"),
}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def t(key: str, lang: str, **values: object) -> str:
    """The UI text ``key`` in ``lang`` with ``{placeholders}`` filled."""
    return said(_TEXT, key, lang, **values)


def element_label(code: str, label: str, lang: str) -> str:
    """An element's name: the catalogue's ``label`` in Chinese, the project's in English."""
    return _ELEMENTS_EN.get(code, code) if lang == "en" else label


# A node's missing elements, compactly: up to so many named beside their codes, up to so
# many by code alone; past that the first few codes and how many in all.
_MISSING_NAMED = 3
_MISSING_CODES = 6


def missing_elements(codes: Sequence[str], elements: Iterable[tuple[str, str]], lang: str,
                     *, whole: bool = False) -> str:
    """The elements ``codes`` in a line's room: ``SF 收费、LQDJ 结果领取``, ``SF、LQDJ、BJ、SL``
    or ``JGXX、SXXX、SBXX、SBCL、YSL 等 13 项``; ``whole``: each one with its name.

    ``elements``: (code, Chinese label) of the catalogue, as ``StatusReport.elements``.
    """
    comma = ", " if lang == "en" else "、"
    if whole or len(codes) <= _MISSING_NAMED:
        labels = dict(elements)
        return comma.join(f"{code} {element_label(code, labels.get(code, code), lang)}"
                          for code in codes)
    if len(codes) <= _MISSING_CODES:
        return comma.join(codes)
    return t("missing_more", lang, codes=comma.join(codes[:_MISSING_CODES - 1]), n=len(codes))


def light_label(light: str, lang: str) -> str:
    return _pick(_LIGHTS.get(light, (light, light)), lang)


def reason_label(reason: str, lang: str) -> str:
    return _pick(_REASONS.get(reason, (reason, reason)), lang)


@cache
def _division_names() -> dict[str, str]:
    # The generator's table of real GB/T 2260 names: partial, so codes always show too.
    from schemas.samples.places import PROVINCES

    names: dict[str, str] = {}
    for province in PROVINCES.values():
        names[province.code] = province.name
        for city in province.cities:
            names[city.code] = city.name
            names.update(dict(city.counties))
    return names


def division_label(code: str, kind: str, lang: str) -> str:
    """``芙蓉区 430102``; a city node's county slot reads ``市本级`` (``city level``)."""
    if kind == "county" and level_of(code) is Level.CITY:
        return f"{t('city_itself', lang)} {code}"
    if kind in ("county", "city") and level_of(code) is Level.PROVINCE:
        return f"{t('province_itself', lang)} {code}"
    name = _division_names().get(code)
    return f"{name} {code}" if name else code


def duration(seconds: float | None, lang: str) -> str:
    """A short human duration: ``45 秒``, ``12 分钟``, ``3 小时``, ``2 天``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 120:
        return t("seconds", lang, n=int(seconds))
    if seconds < 7200:
        return t("minutes", lang, n=int(seconds // 60))
    if seconds < 172800:
        return t("hours", lang, n=int(seconds // 3600))
    return t("days", lang, n=int(seconds // 86400))

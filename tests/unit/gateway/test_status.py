"""The sync-status model on plain rows: lights, their reasons, the roll-up, the JSON shape."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.stores.status_rows import (
    CoverageRow,
    FailedCount,
    FailedRow,
    HeartbeatRow,
    NodeRow,
    NodeTotalsRow,
    RecentBatch,
    StatusRows,
)
from gateway.dashboard.page import MAX_FAILED_ROWS, render_page
from gateway.metrics import metrics_registry, render_metrics
from gateway.registry import UnreadableEntry
from gateway.status import FailedTotals, StatusReport, build_report, merge_nodes, supervises
from gateway.status_json import report_json, report_text
from gateway.status_rules import Light, StatusThresholds, worst
from gateway.status_source import element_labels
from gateway.status_text import LANGS, duration, element_label

NOW = datetime(2026, 11, 20, 10, 30, 0)
LIMITS = StatusThresholds()
ELEMENTS = element_labels()


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def beats(node_id: str, *ages: float, lag: float = 10.0, **extra: object) -> list[HeartbeatRow]:
    return [HeartbeatRow(node_id, ago(age), lag, **extra) for age in ages]  # type: ignore[arg-type]


def report(nodes: Sequence[NodeRow], heartbeats: Sequence[HeartbeatRow] = (), *,
           totals: Sequence[NodeTotalsRow] = (), coverage: Sequence[CoverageRow] = (),
           failed: Sequence[FailedRow] = (), level: str = "430100", **rows: object
           ) -> StatusReport:
    data = StatusRows(NOW, nodes, heartbeats, coverage, totals, failed, **rows)  # type: ignore[arg-type]
    return build_report(data, level=level, elements=ELEMENTS, thresholds=LIMITS)


def light_of(result: StatusReport, node_id: str) -> tuple[Light, tuple[str, ...]]:
    node = result.node(node_id)
    assert node is not None
    return node.light, node.reasons


FURONG = NodeRow("furong-01", "430102")


# -- heartbeats -------------------------------------------------------------------------------


def test_a_node_beating_on_time_is_green() -> None:
    assert light_of(report([FURONG], beats("furong-01", 90, 60, 30)), "furong-01") \
        == (Light.GREEN, ())


def test_a_node_that_stops_beating_turns_yellow_then_red() -> None:
    late = report([FURONG], beats("furong-01", 240, 210, LIMITS.heartbeat_late_s + 1))
    assert light_of(late, "furong-01") == (Light.YELLOW, ("heartbeat-late",))
    silent = report([FURONG], beats("furong-01", LIMITS.silent_s + 1))
    assert light_of(silent, "furong-01") == (Light.RED, ("silent",))


def test_a_node_never_heard_of_is_red_and_a_disabled_one_is_off() -> None:
    result = report([FURONG, NodeRow("old-01", "430102", status="disabled")])
    assert light_of(result, "furong-01") == (Light.RED, ("never-seen",))
    assert light_of(result, "old-01") == (Light.OFF, ("disabled",))


def test_a_batch_counts_as_contact_through_last_seen_but_a_replayed_one_does_not() -> None:
    # The live pipeline moves LAST_SEEN_AT for each batch; STORED_AT alone may be an
    # operator's replay of an old batch.
    seen = report([replace(FURONG, last_seen_at=ago(20))])
    assert light_of(seen, "furong-01")[0] is Light.GREEN
    replayed = [NodeTotalsRow("furong-01", batches=1, last_stored_at=ago(20))]
    assert light_of(report([FURONG], totals=replayed), "furong-01") == \
        (Light.RED, ("never-seen",))


def held_burst(node_id: str, sent_ages: Sequence[float], stored_age: float
               ) -> list[HeartbeatRow]:
    """Beats the gateway held through a store outage: stored together, in any order."""
    return [HeartbeatRow(node_id, ago(stored_age), 10.0,
                         {"pending_batches": i, "unbatched_records": 0}, sent_at=ago(age))
            for i, age in enumerate(sent_ages)]


def test_contact_counts_from_when_the_agent_sent_a_beat_not_when_it_was_stored() -> None:
    # Held beats sent 124, 272, 154 and 94 s ago, all stored 35 s ago; the node's last
    # seen time is that storing time too.
    burst = held_burst("furong-01", (124, 272, 154, 94), stored_age=35)
    result = report([replace(FURONG, last_seen_at=ago(35))], burst)
    node = result.node("furong-01")
    assert node is not None
    assert node.last_heartbeat == node.last_contact == ago(94)
    assert node.contact_age_s == 94.0 and node.pending_batches == 3
    slow = report([replace(FURONG, last_seen_at=ago(35))],
                  held_burst("furong-01", (200, LIMITS.heartbeat_late_s + 30), stored_age=35))
    assert light_of(slow, "furong-01") == (Light.YELLOW, ("heartbeat-late",))


def test_an_agent_clock_ahead_never_makes_a_beat_fresher_than_its_arrival() -> None:
    ahead = [HeartbeatRow("furong-01", ago(300), 10.0, sent_at=ago(-600))]
    node = report([FURONG], ahead).node("furong-01")
    assert node is not None and node.contact_age_s == 300.0
    assert light_of(report([FURONG], ahead), "furong-01")[1] == ("heartbeat-late",)


def test_a_beat_without_a_sending_time_counts_from_its_arrival() -> None:
    old_agent = [HeartbeatRow("furong-01", ago(50), 10.0)]
    node = report([replace(FURONG, last_seen_at=ago(50))], old_agent).node("furong-01")
    assert node is not None and node.contact_age_s == 50.0


def test_a_batch_after_the_last_stored_beat_still_counts_as_contact() -> None:
    burst = held_burst("furong-01", (400, 300), stored_age=250)
    node = report([replace(FURONG, last_seen_at=ago(20))], burst).node("furong-01")
    assert node is not None and node.contact_age_s == 20.0


# -- lag and outbox ---------------------------------------------------------------------------


def test_a_growing_lag_turns_yellow() -> None:
    growing = [HeartbeatRow("furong-01", ago(age), lag) for age, lag in
               ((900, 30.0), (600, 250.0), (300, 480.0), (10, 700.0))]
    assert light_of(report([FURONG], growing), "furong-01") == (Light.YELLOW, ("lag-growing",))
    falling = list(reversed([replace(b, received_at=growing[i].received_at)
                             for i, b in enumerate(reversed(growing))]))
    assert light_of(report([FURONG], falling), "furong-01")[0] is Light.GREEN


def test_a_high_lag_is_yellow_and_a_critical_one_red() -> None:
    high = report([FURONG], beats("furong-01", 10, lag=LIMITS.lag_yellow_s))
    assert light_of(high, "furong-01") == (Light.YELLOW, ("lag-high",))
    critical = report([FURONG], beats("furong-01", 10, lag=LIMITS.lag_red_s + 1))
    assert light_of(critical, "furong-01") == (Light.RED, ("lag-critical",))


def test_old_pending_batches_turn_yellow_then_red() -> None:
    def with_pending(age: float) -> StatusReport:
        outbox = {"pending_batches": 4, "unbatched_records": 0, "oldest_pending_age_s": age}
        return report([FURONG], beats("furong-01", 10, outbox=outbox))

    assert light_of(with_pending(60), "furong-01")[0] is Light.GREEN
    assert light_of(with_pending(LIMITS.pending_yellow_s), "furong-01") \
        == (Light.YELLOW, ("pending-old",))
    assert light_of(with_pending(LIMITS.pending_red_s), "furong-01") \
        == (Light.RED, ("pending-stale",))
    assert with_pending(60).nodes[0].pending_batches == 4


def test_an_error_the_agent_reports_is_yellow() -> None:
    result = report([FURONG], beats("furong-01", 10, last_error="source database away"))
    assert light_of(result, "furong-01") == (Light.YELLOW, ("agent-error",))
    assert result.nodes[0].last_error == "source database away"


# -- failed batches ---------------------------------------------------------------------------


def failed_totals(count: int, failed_at: datetime, stored_at: datetime | None
                  ) -> list[NodeTotalsRow]:
    return [NodeTotalsRow("furong-01", batches=5, last_stored_at=stored_at, failed=count,
                          last_failed_at=failed_at if count else None)]


def test_a_failed_batch_is_yellow_and_red_when_it_is_the_newest_or_they_pile_up() -> None:
    healthy = beats("furong-01", 10)
    one_old = report([FURONG], healthy, totals=failed_totals(1, ago(3600), ago(60)))
    assert light_of(one_old, "furong-01") == (Light.YELLOW, ("failed-batches",))
    newest = report([FURONG], healthy, totals=failed_totals(1, ago(30), ago(3600)))
    assert light_of(newest, "furong-01") == (Light.RED, ("failing",))
    many = report([FURONG], healthy,
                  totals=failed_totals(LIMITS.failed_red_count, ago(3600), ago(60)))
    assert light_of(many, "furong-01") == (Light.RED, ("failing",))


def test_a_replayed_batch_no_longer_counts() -> None:
    # The query counts rows with REPLAYED_AT NULL: once replayed the count is 0 again.
    replayed = report([FURONG], beats("furong-01", 10), totals=failed_totals(0, ago(30), ago(5)))
    assert light_of(replayed, "furong-01") == (Light.GREEN, ())
    assert replayed.nodes[0].failed_batches == 0


def test_failed_batches_are_listed_with_their_reasons_for_this_level_only() -> None:
    rows = [FailedRow("B1", "furong-01", "bad-signature", "签名错误", ago(60)),
            FailedRow("B2", None, "unknown-node", "未登记节点", ago(50)),
            FailedRow("B3", "zhuzhou-01", "bad-signature", "x", ago(40))]
    nodes = [FURONG, NodeRow("zhuzhou-01", "430202")]
    result = report(nodes, beats("furong-01", 10), failed=rows)
    assert [f.batch_id for f in result.failed] == ["B1", "B2"]
    assert result.failed[0].reason == "bad-signature"


# -- roll-up, level and nodes -----------------------------------------------------------------


def test_lights_roll_up_county_city_province_worst_child_wins() -> None:
    nodes = [FURONG, NodeRow("furong-02", "430102"), NodeRow("tianxin-01", "430103"),
             NodeRow("city-01", "430100"), NodeRow("old-01", "430104", status="disabled")]
    hb = [*beats("furong-01", 10), *beats("furong-02", LIMITS.heartbeat_late_s + 5),
          *beats("tianxin-01", 10), *beats("city-01", 10)]
    result = report(nodes, hb)
    (province,) = result.tree
    (city,) = province.children
    counties = {g.division: g.light for g in city.children}
    assert counties == {"430100": Light.GREEN, "430102": Light.YELLOW,
                        "430103": Light.GREEN, "430104": Light.OFF}
    assert (city.light, province.light, result.light) == (Light.YELLOW,) * 3
    assert dict(result.counts) == {"green": 3, "yellow": 1, "red": 0, "off": 1}
    silent = report(nodes, [b for b in hb if b.node_id != "tianxin-01"])
    assert silent.light is Light.RED


def test_worst_ignores_off_unless_nothing_else() -> None:
    assert worst([Light.OFF, Light.GREEN]) is Light.GREEN
    assert worst([Light.OFF]) is Light.OFF
    assert worst([]) is Light.OFF


@pytest.mark.parametrize(("level", "division", "expected"), [
    ("430000", "430102", True), ("430100", "430102", True), ("430100", "430100", True),
    ("430102", "430102", True), ("430102", "430103", False), ("430100", "430202", False),
    ("430102", "430100", False), ("430000", "440100", False)])
def test_a_level_supervises_its_own_divisions(level: str, division: str, expected: bool) -> None:
    assert supervises(level, division) is expected


def test_the_registry_adds_nodes_and_its_status_wins() -> None:
    store = [NodeRow("a", "430102", "active", ago(5))]
    registry = [NodeRow("a", "430102", "disabled"), NodeRow("b", "430103")]
    merged = merge_nodes(store, registry)
    assert merged == [NodeRow("a", "430102", "disabled", ago(5)), NodeRow("b", "430103")]


# -- coverage, totals, throughput, JSON -------------------------------------------------------


def test_coverage_lists_every_element_with_its_last_arrival() -> None:
    coverage = [CoverageRow("furong-01", "SBXX", ago(9000), ago(60), 120),
                CoverageRow("furong-01", "SL", ago(9000), ago(600), 80)]
    result = report([FURONG], beats("furong-01", 10), coverage=coverage)
    node = result.nodes[0]
    assert [c.element for c in node.coverage] == [code for code, _ in ELEMENTS]
    assert len(node.coverage) == 14 and node.covered == 2
    cells = {c.element: c for c in node.coverage}
    assert cells["SBXX"].last_at == ago(60) and cells["SBXX"].records == 120
    assert cells["JGXX"].last_at is None
    assert node.records_total == 200


def test_throughput_buckets_per_hour_ending_with_the_current_one() -> None:
    batches = [RecentBatch("furong-01", NOW.replace(minute=5), 30),
               RecentBatch("furong-01", NOW.replace(minute=10), 20),
               RecentBatch("furong-01", NOW - timedelta(hours=3), 7),
               RecentBatch("furong-01", NOW - timedelta(hours=30), 999)]
    result = report([FURONG], beats("furong-01", 10), recent_batches=batches,
                    recent_failures=[NOW - timedelta(hours=3)])
    points = result.throughput
    assert len(points) == LIMITS.throughput_hours
    assert points[-1].start == NOW.replace(minute=0) and points[-1].records == 50
    assert (points[-4].records, points[-4].batches, points[-4].failed) == (7, 1, 1)
    assert sum(p.records for p in points) == 57


def test_the_json_shape_is_stable() -> None:
    coverage = [CoverageRow("furong-01", "SBXX", ago(9000), ago(60), 12)]
    result = report([FURONG], beats("furong-01", 10), coverage=coverage,
                    totals=[NodeTotalsRow("furong-01", 3, 12, 12, ago(60))])
    data = report_json(result)
    assert set(data) == {"schema", "generated_at", "level", "light", "degraded",
                         "registry_errors", "counts", "thresholds", "elements", "tree", "nodes",
                         "failed_batches", "failed_batches_total", "throughput"}
    assert (data["degraded"], data["registry_errors"]) == (False, [])
    assert data["generated_at"] == "2026-11-20T10:30:00+08:00"
    assert [e["code"] for e in data["elements"]] == [code for code, _ in ELEMENTS]
    assert data["tree"][0]["children"][0]["children"][0] == {
        "kind": "county", "division": "430102", "light": "green", "nodes": ["furong-01"]}
    node = data["nodes"][0]
    assert node["path"] == ["430000", "430100", "430102"]
    assert node["records"] == {"today": 12, "week": 12, "total": 12}
    assert node["coverage"]["SBXX"] == {"last_at": "2026-11-20T10:29:00+08:00", "records": 12}
    assert node["coverage"]["JGXX"] == {"last_at": None, "records": 0}
    assert node["missing_elements"] == [code for code, _ in ELEMENTS if code != "SBXX"]
    assert set(node["outbox"]) == {"pending_batches", "unbatched_records",
                                   "oldest_pending_age_s"}


def test_the_page_escapes_what_agents_and_messages_control() -> None:
    evil = '<script>alert(1)</script>"\'><img src=x onerror=alert(2)>'
    node = NodeRow(f"n{evil}", "430102")
    result = report([node], beats(node.node_id, 10, last_error=evil),
                    failed=[FailedRow(f"B{evil}", node.node_id, f"r{evil}", evil, ago(60))])
    page = render_page(result, "en", 30)
    assert "<script>alert" not in page and "<img" not in page and "onerror=alert(2)>" not in page
    assert page.count("&lt;script&gt;alert(1)") >= 4   # node id, last error, batch, detail


def test_the_page_names_the_elements_a_node_lacks_on_its_count() -> None:
    # The count said 13/14; which element was missing took a scan along the row.
    coverage = [CoverageRow("furong-01", code, ago(9000), ago(60), 1)
                for code, _ in ELEMENTS if code != "SF"]
    coverage += [CoverageRow("furong-02", "SF", ago(9000), ago(60), 1)]
    odd = [(code, '<i>"收费"</i>' if code == "SF" else label) for code, label in ELEMENTS]
    result = build_report(StatusRows(NOW, [FURONG, NodeRow("furong-02", "430102")],
                                     beats("furong-01", 10), coverage), level="430100",
                          elements=odd, thresholds=LIMITS)
    page = render_page(result, "zh", 30)
    assert ('data-covered-count="13" data-missing="SF" '
            'title="缺：SF &lt;i&gt;&quot;收费&quot;&lt;/i&gt;">13/14</td>') in page
    assert "<i>" not in page
    whole = ", ".join(f"{code} {element_label(code, label, 'en')}"
                      for code, label in ELEMENTS if code != "SF")
    missing = " ".join(code for code, _ in ELEMENTS if code != "SF")
    assert (f'data-covered-count="1" data-missing="{missing}" title="Missing: {whole}">'
            '1/14</td>') in render_page(result, "en", 30)
    every = [*coverage[:13], CoverageRow("furong-01", "SF", ago(9000), ago(60), 1)]
    full = build_report(StatusRows(NOW, [FURONG], beats("furong-01", 10), every),
                        level="430100", elements=ELEMENTS, thresholds=LIMITS)
    assert 'data-covered-count="14" data-missing="">14/14</td>' in render_page(full, "en", 30)


# -- what a node or the store may hold that the views must survive -----------------------------


def strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in the JSON")
    return json.loads(text, parse_constant=refuse)


def test_heartbeat_figures_no_agent_can_mean_show_as_unknown_in_every_view() -> None:
    # 1e999 parses as infinity; an integer of 400 digits fits no float.
    outbox = {"pending_batches": float("inf"), "unbatched_records": 10 ** 400,
              "oldest_pending_age_s": float("nan")}
    bad = [HeartbeatRow("furong-01", ago(age), lag, outbox)
           for age, lag in ((90, float("-inf")), (30, float("inf")))]
    result = report([FURONG, NodeRow("furong-02", "430102")],
                    bad + beats("furong-02", 30, lag=1e13) + beats("furong-02", 20))
    node = result.node("furong-01")
    assert node is not None
    assert (node.source_lag_s, node.pending_batches, node.unbatched_records,
            node.oldest_pending_age_s, node.lag_growing) == (None, None, None, None, False)
    assert light_of(result, "furong-01") == (Light.GREEN, ())
    data = strict(report_text(result))
    assert isinstance(data, dict) and data["nodes"][0]["source_lag_s"] is None
    for lang in LANGS:
        assert 'id="node-furong-01"' in render_page(result, lang, 30)
    assert b"furong-01" in render_metrics(metrics_registry(lambda: result, result.level))


def test_a_duration_that_is_not_finite_shows_as_unknown() -> None:
    assert duration(float("inf"), "zh") == duration(float("nan"), "en") == "—"


def test_the_page_and_the_json_count_every_failed_batch_not_only_those_listed() -> None:
    listed = [FailedRow(f"b{i:04d}", None, "bad-signature", "x", ago(i)) for i in range(500)]
    counts = [FailedCount(None, 1000, 1000), FailedCount("furong-01", 3, 2),
              FailedCount("elsewhere-01", 5, 5)]      # a node of no division of this level
    result = report([FURONG], failed=listed, failed_counts=counts)
    assert result.failed_totals == FailedTotals(refusals=1003, of_nodes=2, of_no_node=1000)
    page = render_page(result, "zh", 30)
    assert page.count("data-batch=") == MAX_FAILED_ROWS
    assert 'data-more="903"' in page and "另有 903 条未列出" in page
    assert "903 more not listed" in render_page(result, "en", 30)
    data = report_json(result)
    assert (len(data["failed_batches"]), data["failed_batches_total"]) == (500, 1003)


def test_every_failed_batch_listed_leaves_no_note() -> None:
    listed = [FailedRow("b1", "furong-01", "bad-signature", "x", ago(5))]
    result = report([FURONG], failed=listed, failed_counts=[FailedCount("furong-01", 1, 1)])
    assert 'id="failed-more"' not in render_page(result, "zh", 30)


@pytest.mark.parametrize(("lang", "words", "a", "b"), [
    ("zh", "状态不完整：2 个节点登记文件无法读取", "无法读取节点登记：bad", "不是节点登记"),
    ("en", "Incomplete status: 2 node registry", "cannot read node entry: bad",
     "not a node entry")])
def test_a_degraded_report_says_so_in_a_banner_naming_each_file(
        lang: str, words: str, a: str, b: str) -> None:
    errors = (UnreadableEntry(Path("/srv/registry/a.json"), "cannot read node entry: bad",
                              "无法读取节点登记：bad"),
              UnreadableEntry(Path("/srv/registry/<b>.json"), "not a node entry", "不是节点登记"))
    result = replace(report([FURONG]), registry_errors=errors)
    page = render_page(result, lang, 30)
    assert 'id="degraded"' in page and 'data-files="2"' in page and words in page
    assert f"/srv/registry/a.json: {a}" in page
    assert f"/srv/registry/&lt;b&gt;.json: {b}" in page
    assert 'id="degraded"' not in render_page(report([FURONG]), lang, 30)


def test_the_english_page_names_the_elements_in_english() -> None:
    result = report([FURONG])
    english, chinese = render_page(result, "en", 30), render_page(result, "zh", 30)
    assert '<div class="label">Organization</div>' in english
    assert '<div class="label">机构信息</div>' in chinese
    assert not any(label in english for _, label in ELEMENTS)
    assert all(element_label(code, label, "en") != code for code, label in ELEMENTS)

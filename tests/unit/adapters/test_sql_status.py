"""The sync-status queries and ST_COVERAGE on a real SQLite store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from rich.console import Console

from adapters.stores.base import FailedBatch, Heartbeat, NodeInfo
from adapters.stores.sql import MIGRATIONS, SqlStore
from adapters.stores.sql_status import (
    MAX_FAILED_LISTED,
    check_store,
    day_start,
    read_status_rows,
    week_start,
)
from adapters.stores.sql_values import now_beijing
from adapters.stores.status_rows import FailedCount
from cli import main
from gateway.status import FailedTotals, StatusReport, build_report
from gateway.status_command import run_status
from gateway.status_rules import Light, StatusThresholds
from gateway.status_source import element_labels
from schemas.errors import ExgateError
from tests.unit.adapters.status_store import FAILED_BATCH, PLANS, fill_store


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def status(store: SqlStore) -> StatusReport:
    rows = read_status_rows(store, heartbeat_window_s=1800, throughput_hours=24)
    return build_report(rows, level="430100", elements=element_labels(),
                        thresholds=StatusThresholds())


def coverage(store: SqlStore) -> set[tuple[str, str, int]]:
    c = store.schema.coverage
    with store.engine.connect() as conn:
        return {(r[0], r[1], int(r[2])) for r in conn.execute(
            sa.select(c.c.NODE_ID, c.c.ELEMENT, c.c.RECORDS))}


def alembic(store: SqlStore, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_the_filled_store_shows_the_expected_lights(store: SqlStore) -> None:
    fill_store(store)
    result = status(store)
    assert {n.node_id: n.light.value for n in result.nodes} == \
        {p.node_id: p.expected for p in PLANS}
    assert {n.node_id: n.covered for n in result.nodes} == \
        {p.node_id: len(p.elements) for p in PLANS}
    assert {n.node_id: n.batches_total for n in result.nodes} == \
        {p.node_id: len(p.batch_hours_ago) for p in PLANS}
    assert [f.batch_id for f in result.failed] == [FAILED_BATCH]
    assert result.light is Light.RED
    assert sum(p.batches for p in result.throughput) == sum(
        1 for p in PLANS for hours in p.batch_hours_ago if hours < 24)


def test_a_replayed_batch_turns_the_node_green_again(store: SqlStore) -> None:
    fill_store(store)
    assert status(store).node("tianxin-01").light is Light.YELLOW  # type: ignore[union-attr]
    f = store.schema.failed
    with store.engine.begin() as conn:
        conn.execute(sa.update(f).where(f.c["BATCH_ID"] == FAILED_BATCH)
                     .values(REPLAYED_AT=now_beijing()))
    after = status(store)
    assert after.node("tianxin-01").light is Light.GREEN  # type: ignore[union-attr]
    assert after.failed == ()


def test_a_batch_refused_on_every_resend_counts_once(store: SqlStore) -> None:
    for body in (b"first", b"second", b"third"):
        store.record_failed(FailedBatch("B1", "n1", "node-disabled", "node n1 is disabled",
                                        body, "430000.430100.430102.n1", {}, "u-n1",
                                        now_beijing()))
    rows = read_status_rows(store, heartbeat_window_s=1800, throughput_hours=24)
    assert [(t.node_id, t.failed) for t in rows.totals] == [("n1", 1)]


def test_each_refused_message_without_a_batch_id_counts_on_its_own(store: SqlStore) -> None:
    # Filed as batch "-": five different messages, not one batch refused five times.
    for i in range(5):
        store.record_failed(FailedBatch("-", "n3", "missing-batch-id", "no message_id",
                                        b"body %d" % i, "430000.430100.430102.n3", {},
                                        "u-n3", now_beijing()))
    for body in (b"first", b"second"):
        store.record_failed(FailedBatch("B1", "n3", "node-disabled", "node n3 is disabled",
                                        body, "430000.430100.430102.n3", {}, "u-n3",
                                        now_beijing()))
    rows = read_status_rows(store, heartbeat_window_s=1800, throughput_hours=24)
    assert [(t.node_id, t.failed) for t in rows.totals] == [("n3", 6)]


def test_failed_batches_are_counted_past_the_listed_ones_with_and_without_a_node(
        store: SqlStore) -> None:
    now = now_beijing()
    for i in range(MAX_FAILED_LISTED + 100):   # nobody vouched for these: no node
        store.record_failed(FailedBatch(f"X{i:04d}", None, "bad-signature", "x", b"x",
                                        "430000.430100.430102.n9", {}, None,
                                        now - timedelta(seconds=i)))
    for body in (b"first", b"second"):
        store.record_failed(FailedBatch("B1", "n1", "node-disabled", "node n1 is disabled",
                                        body, "430000.430100.430102.n1", {}, "u-n1", now))
    store.mirror_node(NodeInfo("n1", "430102", "u-n1", "active", (1,)))
    rows = read_status_rows(store, heartbeat_window_s=1800, throughput_hours=24)
    assert len(rows.failed) == MAX_FAILED_LISTED
    assert sorted(rows.failed_counts, key=lambda c: c.node_id or "") == [
        FailedCount(None, MAX_FAILED_LISTED + 100, MAX_FAILED_LISTED + 100),
        FailedCount("n1", 2, 1)]
    assert status(store).failed_totals == FailedTotals(MAX_FAILED_LISTED + 102, 1,
                                                       MAX_FAILED_LISTED + 100)


def test_the_store_check_reads_one_row_and_fails_on_a_store_without_tables(
        store: SqlStore, tmp_path: Path) -> None:
    check_store(store)
    empty = SqlStore(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(ExgateError, match="cannot reach the store"):
            check_store(empty)
    finally:
        empty.close()


def test_coverage_moves_in_the_batch_transaction_and_counts_stored_records(
        store: SqlStore) -> None:
    fill_store(store)
    found = coverage(store)
    assert ("furong-01", "SBXX", 7) in found        # seven batches, one new case each
    assert ("furong-02", "JGXX", 0) in found        # sent, but a duplicate of furong-01's
    assert not any(node == "furong-02" and element == "SF" for node, element, _ in found)


def test_the_migration_fills_coverage_from_the_element_tables(store: SqlStore) -> None:
    fill_store(store)
    before = coverage(store)
    alembic(store, "downgrade", "0001")
    alembic(store, "upgrade", "head")
    after = coverage(store)
    assert {row for row in before if row[2]} == after   # duplicates-only rows are not rebuilt


def test_a_silent_nodes_last_heartbeat_is_still_shown(store: SqlStore) -> None:
    fill_store(store)
    node = status(store).node("tianxin-02")
    assert node is not None and node.last_heartbeat is not None
    assert node.source_lag_s == 900.0 and "silent" in node.reasons


def held_beats(store: SqlStore, node_id: str, sent_ages: tuple[float, ...],
               stored_age: float) -> datetime:
    """Beats held through a store outage, stored together in scrambled order; ``now``."""
    now = now_beijing()
    store.mirror_node(NodeInfo(node_id, "430102", f"u-{node_id}", "active", (1,)))
    for i, age in enumerate(sent_ages):
        store.record_heartbeat(Heartbeat(
            node_id, "430102", now - timedelta(seconds=age),
            now - timedelta(seconds=stored_age, microseconds=-i), "0.1.0",
            {"pending_batches": i, "unbatched_records": 0}, 10.0, None))
    return now


def test_held_heartbeats_count_from_their_sending_time_live_or_silent(store: SqlStore) -> None:
    # The last stored (154 s) is not the last sent (94 s, pending 1).
    now = held_beats(store, "furong-09", (124, 94, 272, 154), stored_age=35)
    for window_s in (1800, 10):      # the recent beats, then a silent node's last ones
        rows = read_status_rows(store, heartbeat_window_s=window_s, throughput_hours=24,
                                now=now)
        node = build_report(rows, level="430100", elements=element_labels(),
                            thresholds=StatusThresholds()).node("furong-09")
        assert node is not None
        assert node.last_heartbeat == now - timedelta(seconds=94)
        assert node.contact_age_s == 94.0 and node.pending_batches == 1


def test_today_and_this_week_start_at_beijing_midnight() -> None:
    wednesday = datetime(2026, 11, 18, 15, 42, 7)
    assert day_start(wednesday) == datetime(2026, 11, 18)
    assert week_start(wednesday) == datetime(2026, 11, 16)
    assert week_start(datetime(2026, 11, 16, 0, 0, 1)) == datetime(2026, 11, 16)


def test_records_today_come_from_todays_batches(store: SqlStore) -> None:
    fill_store(store)
    b = store.schema.batch
    with store.engine.begin() as conn:   # one batch now, every other one a fortnight ago
        conn.execute(sa.update(b).values(STORED_AT=now_beijing() - timedelta(days=14)))
        conn.execute(sa.update(b).where(b.c["BATCH_ID"] == "furong-01-b000")
                     .values(STORED_AT=now_beijing()))
    node = status(store).node("furong-01")
    assert node is not None
    assert node.records_today == node.records_week == 12
    assert node.records_total == sum(c.records for c in node.coverage) > 12


def test_exgate_status_prints_message_text_verbatim_never_as_markup(store: SqlStore,
                                                                      tmp_path: Path) -> None:
    # The batch ID, node ID and detail of a refused message come from whoever published
    # it: rich markup in them must neither crash `exgate status` nor restyle its output.
    hostile = "node '[/bold]' is not in the registry [red]x[/red]"
    store.mirror_node(NodeInfo("[bold]n9", "430102", "n9", "active", (1,)))
    store.record_failed(FailedBatch(
        "B[/x]", "[bold]n9", "unknown-node", hostile, b"sealed", "430000.430100.430102.n9",
        {}, None, now_beijing()))
    text = status_text(tmp_path)
    assert "B[/x]" in text and "[bold]n9" in text and hostile in text


def status_text(tmp_path: Path) -> str:
    """What ``exgate status`` prints in English for the store in ``tmp_path``."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'[level]\ndivision = "430100"\n[broker]\nurl = "amqp://g@127.0.0.1/"\n'
                      f'[store]\nurl = "sqlite:///{tmp_path / "store.db"}"\n'
                      f'[registry]\npath = "registry"\n', encoding="utf-8")
    console = Console(record=True, width=400, color_system=None)
    assert run_status(config, False, "en", console=console) == 0
    return console.export_text()


def test_control_codes_from_messages_never_reach_the_terminal(store: SqlStore,
                                                              tmp_path: Path) -> None:
    # An ESC sequence in a refused message's detail could rewrite an operator's screen.
    store.mirror_node(NodeInfo("n9", "430102", "n9", "active", (1,)))
    store.record_failed(FailedBatch(
        "B\x1b[2J", "n9", "unknown-node", "node \x1b]0;pwned\x07 unknown", b"sealed",
        "430000.430100.430102.n9", {}, None, now_beijing()))
    text = status_text(tmp_path)
    assert "\x1b" not in text and "\x07" not in text
    assert "B\\x1b[2J" in text and "\\x1b]0;pwned\\x07" in text
    listing = CliRunner().invoke(main, ["batches", "list", "--failed", "-c", str(tmp_path / "gateway.toml")])
    assert "\x1b" not in listing.output and "B\\x1b[2J" in listing.output

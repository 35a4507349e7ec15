"""The SQL store's conformance suite against a real PostgreSQL (``pg_url``)."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
import sqlalchemy as sa

from adapters.stores.sql import SqlStore
from gateway.conflicts import list_conflicts
from schemas.times import BEIJING
from tests.unit.adapters.test_sql_rows import (  # noqa: F401 - collected here again
    test_a_batch_of_new_duplicate_and_conflicting_rows_is_told_apart,
    test_the_insert_first_path_is_one_transaction_with_the_batch,
)
from tests.unit.adapters.test_sql_store import (  # noqa: F401 - collected here again
    test_store_a_missing_table_is_fatal_not_an_outage,
    test_store_batch_is_one_transaction,
    test_store_keeps_a_failed_batch_whose_ids_overflow_the_columns,
    test_store_keeps_a_heartbeat_whose_texts_overflow_the_columns,
    test_store_keeps_every_version_and_latest_picks_the_highest,
    test_store_keeps_failed_batches_once_per_body,
    test_store_keeps_the_largest_amounts_the_xsd_accepts_exactly,
    test_store_keeps_the_protocol,
    test_store_latest_works_for_composite_keys,
    test_store_migration_equals_the_metadata,
    test_store_nodes_receipts_and_heartbeats,
    test_store_prunes_at_most_the_limit_per_call,
    test_store_prunes_old_heartbeats_but_each_nodes_latest,
    test_store_refuses_a_batch_id_reused_for_other_content,
    test_store_same_key_and_version_other_content_is_a_kept_conflict,
    test_store_same_key_and_version_same_content_is_a_duplicate,
    test_store_storing_a_batch_settles_its_earlier_refusals,
    test_store_writes_a_batch_and_ignores_its_redelivery,
)
from tests.unit.gateway.test_conflicts import (  # noqa: F401 - collected here again
    conflicted,
    test_a_conflict_names_the_fields_that_differ,
    test_a_resolution_another_operator_made_meanwhile_is_kept,
    test_a_resolution_needs_who_and_why_that_fit,
    test_resolving_takes_it_out_of_the_count_and_changes_no_record,
)


@pytest.fixture
def store(pg_store: SqlStore) -> SqlStore:
    return pg_store


def test_postgres_names_fold_to_plain_sql(store: SqlStore) -> None:
    assert store.engine.dialect.name == "postgresql"
    with store.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM ST_SBXX").scalar_one()
    assert count == 0


def test_two_operators_resolving_one_conflict_at_once_keep_the_first(
        conflicted: SqlStore) -> None:  # noqa: F811 - the fixture imported above
    # Another operator's resolve holds the row, uncommitted, while this one runs: this
    # one's UPDATE waits for it, then must find the conflict resolved, not overwrite it.
    store = conflicted
    [entry] = list_conflicts(store)
    at = datetime(2026, 11, 24, 9, 0, tzinfo=BEIJING)
    c = store.schema.conflict
    outcome: list[set[int]] = []
    with store.engine.connect() as other:
        other.execute(sa.update(c).where(c.c["CONFLICT_ID"] == entry.conflict_id)
                      .values(RESOLVED_AT=at.replace(tzinfo=None), RESOLVED_BY="王五",
                              RESOLUTION_NOTE="first"))
        second = threading.Thread(target=lambda: outcome.append(store.resolve_conflicts(
            [entry.conflict_id], at, "赵六", "second")))
        second.start()
        _until_waiting_for_a_lock(store)
        other.commit()
        second.join(60)
    assert outcome == [set()]
    [kept] = list_conflicts(store, include_resolved=True)
    assert (kept.resolved_by, kept.resolution_note) == ("王五", "first")


def _until_waiting_for_a_lock(store: SqlStore) -> None:
    """Until some session of the database waits for a row lock (a hang guard only)."""
    waiting = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock'")
    for _ in range(600):
        with store.engine.connect() as conn:
            if conn.execute(waiting).scalar_one():
                return
        time.sleep(0.05)
    raise AssertionError("the second resolve never waited for the first")

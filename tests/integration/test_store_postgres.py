"""The SQL store's conformance suite against a real PostgreSQL (``pg_url``)."""

from __future__ import annotations

import pytest

from adapters.stores.sql import SqlStore
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

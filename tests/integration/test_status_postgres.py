"""The sync-status queries and the coverage migration against a real PostgreSQL."""

from __future__ import annotations

import pytest

from adapters.stores.sql import SqlStore
from tests.unit.adapters.test_sql_status import (  # noqa: F401 - collected here again
    test_a_replayed_batch_turns_the_node_green_again,
    test_a_silent_nodes_last_heartbeat_is_still_shown,
    test_coverage_moves_in_the_batch_transaction_and_counts_stored_records,
    test_held_heartbeats_count_from_their_sending_time_live_or_silent,
    test_records_today_come_from_todays_batches,
    test_the_filled_store_shows_the_expected_lights,
    test_the_migration_fills_coverage_from_the_element_tables,
)


@pytest.fixture
def store(pg_store: SqlStore) -> SqlStore:
    return pg_store

"""The source lag the agent reports in its heartbeats."""

from __future__ import annotations

from frontend_machine.agent import CatchUp


def test_lag_counts_from_start_until_the_first_caught_up_pass() -> None:
    lag = CatchUp()
    assert lag.lag(now=30.0, started=10.0) == 20.0
    lag.note_pass(taken=5, failed=False, now=30.0)  # a backlog: still behind
    assert lag.lag(now=40.0, started=10.0) == 30.0
    lag.note_pass(taken=0, failed=False, now=50.0)
    assert lag.lag(now=55.0, started=10.0) == 0.0


def test_a_failing_source_makes_the_lag_grow_from_the_last_caught_up_pass() -> None:
    lag = CatchUp()
    lag.note_pass(taken=0, failed=False, now=100.0)
    lag.note_pass(taken=0, failed=True, now=160.0)
    assert lag.lag(now=400.0, started=0.0) == 300.0

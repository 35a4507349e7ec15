"""The hold state: deliveries held through failures, and since when (no clock waits)."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.holds import HOLD_ALERT_S, QUIET_S, Holds, HoldState

START = datetime(2026, 11, 24, 11, 0, 0)


class Clocks:
    """A monotonic and a Beijing clock that move only when told."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def monotonic(self) -> float:
        return self.seconds

    def beijing(self) -> datetime:
        return START + timedelta(seconds=self.seconds - 1000.0)


def holds_with(clocks: Clocks) -> Holds:
    return Holds(clock=clocks.beijing, monotonic=clocks.monotonic)


def test_nothing_held_is_no_trouble() -> None:
    assert Holds().state() == HoldState() and not HoldState().alarming


def test_the_trouble_runs_from_the_first_failure_until_a_delivery_goes_through() -> None:
    clocks = Clocks()
    holds = holds_with(clocks)
    first, second = object(), object()
    holds.failed(first)
    clocks.seconds += 10
    holds.failed(second)
    holds.failed(first)                         # a retry: still one hold
    clocks.seconds += HOLD_ALERT_S
    state = holds.state()
    assert (state.held, state.since, state.age_s) == (2, START, 10 + HOLD_ALERT_S)
    assert state.alarming
    holds.ended(first, through=True)            # the store took one: the other waits on
    assert holds.state().since == START + timedelta(seconds=10)
    holds.ended(second, through=True)
    assert holds.state() == HoldState()


def test_a_delivery_handed_back_to_the_queue_keeps_the_trouble_going() -> None:
    clocks = Clocks()
    holds = holds_with(clocks)
    before = object()
    holds.failed(before)
    clocks.seconds += 1200
    holds.failed(before)                        # the last retry, backoff at most 30 s
    holds.ended(before, through=False)          # hold_seconds over: requeued
    assert holds.state().since == START         # redelivered at once, it fails again
    again = object()
    holds.failed(again)
    clocks.seconds += 5
    assert (holds.state().held, holds.state().since) == (1, START)


def test_a_trouble_nothing_failed_in_for_a_while_is_forgotten() -> None:
    clocks = Clocks()
    holds = holds_with(clocks)
    token = object()
    holds.failed(token)
    holds.ended(token, through=False)           # another process took it, say
    clocks.seconds += QUIET_S
    assert holds.state() == HoldState()

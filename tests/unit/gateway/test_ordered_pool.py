"""One key's tasks run one at a time in submission order; different keys in parallel."""

from __future__ import annotations

import random
import threading
import time

from gateway.ordered_pool import OrderedPool

_HANG_GUARD_S = 30.0  # far beyond any wait here: a deadlock fails instead of hanging


def test_a_keys_tasks_run_one_at_a_time_in_the_order_submitted() -> None:
    pool = OrderedPool(4, "test")
    ran: dict[str, list[int]] = {"a": [], "b": []}
    running = {"a": 0, "b": 0}
    overlaps: list[str] = []
    lock = threading.Lock()
    finished = threading.Semaphore(0)
    rng = random.Random(7)

    def task(key: str, number: int, pause: float) -> None:
        with lock:
            running[key] += 1
            if running[key] > 1:
                overlaps.append(key)
        time.sleep(pause)  # varied, so that unordered execution would show
        with lock:
            running[key] -= 1
            ran[key].append(number)
        finished.release()

    for number in range(40):
        for key in ("a", "b"):
            pause = rng.uniform(0, 0.004)
            pool.submit(key, lambda k=key, n=number, p=pause: task(k, n, p))
    for _ in range(80):
        assert finished.acquire(timeout=_HANG_GUARD_S)
    pool.shutdown()
    assert overlaps == []
    assert ran == {"a": list(range(40)), "b": list(range(40))}


def test_different_keys_run_in_parallel() -> None:
    pool = OrderedPool(2, "test")
    both = threading.Barrier(2, timeout=_HANG_GUARD_S)
    met: list[str] = []

    def meet(key: str) -> None:
        both.wait()  # breaks (and the test fails) unless the other key runs meanwhile
        met.append(key)

    pool.submit("a", lambda: meet("a"))
    pool.submit("b", lambda: meet("b"))
    pool.shutdown()
    assert sorted(met) == ["a", "b"]


def test_a_failing_task_does_not_stop_its_keys_next_one() -> None:
    pool = OrderedPool(1, "test")
    ran: list[str] = []

    def fail() -> None:
        ran.append("first")
        raise RuntimeError("a worker's own error")

    pool.submit("a", fail)
    pool.submit("a", lambda: ran.append("second"))
    done = threading.Event()
    pool.submit("a", done.set)
    assert done.wait(_HANG_GUARD_S)
    pool.shutdown()
    assert ran == ["first", "second"]


def test_shutdown_waits_for_the_running_task_and_drops_the_queued_ones() -> None:
    pool = OrderedPool(1, "test")
    started, release = threading.Event(), threading.Event()
    stopped = threading.Event()
    ran: list[str] = []

    def running() -> None:
        started.set()
        release.wait(_HANG_GUARD_S)
        ran.append("running, shutdown returned" if stopped.is_set() else "running")

    pool.submit("a", running)
    pool.submit("a", lambda: ran.append("queued"))
    assert started.wait(_HANG_GUARD_S)

    def stop() -> None:
        pool.shutdown()
        stopped.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    # Released only once shutdown has emptied the key's queue (the dropped one's).
    deadline = time.monotonic() + _HANG_GUARD_S
    while pool._queued["a"]:
        assert time.monotonic() < deadline, "shutdown never emptied the queue"
        time.sleep(0.01)
    release.set()
    stopper.join(_HANG_GUARD_S)
    assert not stopper.is_alive()
    assert ran == ["running"]

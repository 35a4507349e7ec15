"""``free_ports`` never hands out one port twice in a process, even across threads.

Brokers started in parallel each ask for their ports before any of them binds one; the
random picks are narrowed to a pool of ten here, and each probe of a port yields to the
other thread as a real bind does, so without the lock a repeat would be all but certain.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway import loopback
from schemas.errors import ConfigError

POOL = tuple(range(20000, 20010))


class _SmallPool(random.Random):
    """Picks only from ``POOL``, whatever range is asked for."""

    def randint(self, a: int, b: int) -> int:
        return self.choice(POOL)


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback, "_rng", _SmallPool(7))
    monkeypatch.setattr(loopback, "_handed_out", set())
    monkeypatch.setattr(loopback, "port_is_free", lambda port: True)


@pytest.mark.usefixtures("small_pool")
def test_ports_handed_out_are_not_handed_out_again() -> None:
    first, second = loopback.free_ports(5), loopback.free_ports(5)
    assert len(set(first)) == len(set(second)) == 5
    assert set(first) | set(second) == set(POOL)
    with pytest.raises(ConfigError, match="found no 1 free ports"):
        loopback.free_ports(1)


@pytest.mark.usefixtures("small_pool")
def test_callers_in_parallel_threads_get_disjoint_ports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_probe(port: int) -> bool:
        time.sleep(0.002)  # like a real bind: the other thread runs meanwhile
        return True

    monkeypatch.setattr(loopback, "port_is_free", slow_probe)
    start = threading.Barrier(2)

    def pick() -> list[int]:
        start.wait(timeout=60)
        return loopback.free_ports(5)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(pick) for _ in range(2)]
    first, second = (f.result(timeout=60) for f in futures)
    assert set(first) | set(second) == set(POOL)


def test_real_ports_are_distinct_and_free() -> None:
    ports = loopback.free_ports(3) + loopback.free_ports(3)
    assert len(set(ports)) == 6
    assert all(loopback.port_is_free(port) for port in ports)

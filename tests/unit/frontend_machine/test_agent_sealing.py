"""The agent seals full batches chunk by chunk, so publishing starts while it still reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.sources.base import Chunk
from frontend_machine.agent import Agent
from frontend_machine.config import AgentConfig, AgentSettings, NodeConfig, OutboxConfig
from frontend_machine.outbox import Outbox, OutboxBroken
from tests.unit.frontend_machine.test_outbox import record, valid


class ChunkedSource:
    """Hands out ``chunks`` chunks of ``size`` records; notes the outbox's pending batches
    each time the agent asks for the next chunk."""

    name = "src"

    def __init__(self, outbox: Outbox, chunks: int, size: int) -> None:
        self.outbox, self.chunks, self.size = outbox, chunks, size
        self.pending_seen: list[int] = []

    def read(self, state: Mapping[str, Any]) -> Iterator[Chunk]:
        for n in range(self.chunks):
            self.pending_seen.append(self.outbox.depth().pending_batches)
            keys = range(n * self.size, (n + 1) * self.size)
            yield Chunk(valid(*(record(f"K{k:05d}") for k in keys)), {"chunk": n})

    def commit(self, chunk: Chunk) -> None:
        pass


def agent_with(tmp_path: Path, source_of: Any, max_records: int) -> tuple[Agent, list[int]]:
    outbox = Outbox(tmp_path / "outbox.db")
    config = AgentConfig(tmp_path / "agent.toml", NodeConfig("n1", "430102"),
                         OutboxConfig(tmp_path / "outbox.db", batch_max_records=max_records,
                                      batch_linger_seconds=3600), ())
    woken: list[int] = []
    agent = Agent(config, outbox, [source_of(outbox)])
    agent.on_sealed = lambda: woken.append(outbox.depth().pending_batches)
    return agent, woken


def test_full_batches_are_sealed_and_announced_after_every_chunk(tmp_path: Path) -> None:
    source: ChunkedSource | None = None

    def make(outbox: Outbox) -> ChunkedSource:
        nonlocal source
        source = ChunkedSource(outbox, chunks=3, size=25)
        return source

    agent, woken = agent_with(tmp_path, make, max_records=10)
    assert agent.poll_all() == 3
    assert source is not None
    assert source.pending_seen == [0, 2, 5]  # 25 records → 2 full batches, 50 → 5, …
    assert woken == [2, 5, 7]
    assert agent.outbox.depth().unbatched_records == 5  # the partial one lingers
    agent.outbox.close()


def test_chunk_sealing_cuts_the_same_batches_as_one_seal_at_the_end(tmp_path: Path) -> None:
    agent, _ = agent_with(tmp_path, lambda outbox: ChunkedSource(outbox, 4, 7), max_records=10)
    agent.poll_all()
    agent.seal(flush=True)
    sizes = [b.record_count for b in agent.outbox.batches()]
    assert sizes == [10, 10, 8]
    agent.outbox.close()


class CommitFails(ChunkedSource):
    """The front-end database drops between the journal and the flag update."""

    def commit(self, chunk: Chunk) -> None:
        raise ConnectionError("the front-end database went away")


def test_batches_sealed_with_a_chunk_are_announced_even_when_the_source_commit_fails(
        tmp_path: Path) -> None:
    agent, woken = agent_with(tmp_path, lambda outbox: CommitFails(outbox, 1, 25),
                              max_records=10)
    assert agent.poll_all() == 0  # the source failed: it is retried later, the chunk re-read
    assert "went away" in (agent.last_error or "")
    assert woken == [2] and agent.tally.sealed == 2  # the publisher sends them meanwhile
    assert agent.outbox.depth().pending_batches == 2
    agent.outbox.close()


class PlainSource:
    """Three records in one chunk, or a failure of its own when ``broken``."""

    def __init__(self, name: str, broken: bool = False) -> None:
        self.name, self.broken = name, broken

    def read(self, state: Mapping[str, Any]) -> Iterator[Chunk]:
        if self.broken:
            raise RuntimeError("the legacy view is gone")
        yield Chunk(valid(*(record(f"{self.name}{k}") for k in range(3))), {"done": True})

    def commit(self, chunk: Chunk) -> None:
        pass


def test_a_broken_outbox_stops_the_agent_but_a_broken_source_does_not(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    config = AgentConfig(tmp_path / "agent.toml", NodeConfig("n1", "430102"),
                         OutboxConfig(tmp_path / "outbox.db"), ())
    agent = Agent(config, outbox, [PlainSource("bad", broken=True), PlainSource("good")])
    assert agent.poll_all() == 1  # the bad source is noted and retried later; the other ran
    assert "legacy view" in (agent.last_error or "")
    outbox._db.execute("DROP TABLE records")  # what a corrupt or hand-edited outbox does
    agent = Agent(config, outbox, [PlainSource("next")])
    with pytest.raises(OutboxBroken, match="records"):
        agent.poll_all()
    outbox.close()


def test_only_the_errors_of_sources_still_failing_are_reported(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    config = AgentConfig(tmp_path / "agent.toml", NodeConfig("n1", "430102"),
                         OutboxConfig(tmp_path / "outbox.db"), ())
    blip, down = PlainSource("blip", broken=True), PlainSource("down", broken=True)
    agent = Agent(config, outbox, [blip, down])
    agent.poll_all()
    assert agent.last_error == "blip: the legacy view is gone; down: the legacy view is gone"
    blip.broken = False
    agent._retry_at.clear()  # their backoff has passed
    assert agent.poll_all() == 1
    assert agent.last_error == "down: the legacy view is gone"
    down.broken = False
    agent._retry_at.clear()
    agent.poll_all()
    assert agent.last_error is None
    outbox.close()


def test_the_agent_wakes_when_the_trailing_batch_is_due_not_at_the_next_poll(
        tmp_path: Path) -> None:
    """A quiet trickle: the partial batch is sealed when its linger runs out, however
    long the poll period."""
    now = [1_000.0]
    outbox = Outbox(tmp_path / "outbox.db", clock=lambda: now[0])
    config = AgentConfig(tmp_path / "agent.toml", NodeConfig("n1", "430102"),
                         OutboxConfig(tmp_path / "outbox.db", batch_max_records=10,
                                      batch_linger_seconds=2.0), (),
                         agent=AgentSettings(poll_seconds=30.0))
    agent = Agent(config, outbox, [ChunkedSource(outbox, chunks=1, size=3)])
    assert agent.sleep_time() == 30.0  # nothing unbatched: the poll period
    agent.poll_all()
    now[0] += 0.5
    assert agent.sleep_time() == pytest.approx(1.5)
    now[0] += 1.49
    assert agent.sleep_time() == 0.05  # nearly due: soon, but never a busy loop
    now[0] += 5.0
    assert agent.sleep_time() == 30.0  # overdue: the seal before the sleep failed
    assert len(agent.seal()) == 1
    assert agent.sleep_time() == 30.0
    outbox.close()

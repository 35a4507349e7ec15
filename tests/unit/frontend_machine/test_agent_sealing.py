"""The agent seals full batches chunk by chunk, so publishing starts while it still reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.sources.base import Chunk
from frontend_machine.agent import Agent
from frontend_machine.config import AgentConfig, NodeConfig, OutboxConfig
from frontend_machine.outbox import Outbox
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

"""The front-end agent's loop: sources → outbox → (publisher), with back pressure.

For each source: read a chunk → journal it (records, rejects, progress and the batches
it fills: one transaction) → wake the publisher for those batches → ``source.commit``,
so a long backlog is sent while it is still being read. After the pass the
trailing partial batch is sealed once it has lingered. Every ``_UPKEEP_SECONDS``, and
before it calls the outbox over its disk budget, the agent makes room: stored batches
give up their payloads, batches stored longer ago than their retention are forgotten,
and the WAL is folded back in. Over budget all the same, it stops reading
and only seals until the receipts make room. A failing source is retried with backoff
while the others go on; an outbox that cannot be used at all (``OutboxBroken``) stops
the agent. ``agent_command.py`` runs it as ``agent once`` and ``agent run``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adapters.sources.base import Source, SourceContext
from frontend_machine.agent_lock import refuse_root_on_a_service_outbox, sole_agent
from frontend_machine.config import AgentConfig, load_config, source_factory
from frontend_machine.outbox import Outbox, OutboxBroken
from frontend_machine.publisher_settings import PublisherSettings
from frontend_machine.publishing import publisher_settings
from frontend_machine.report import Tally, say
from schemas.catalog import load_catalog
from schemas.divisions import Level, level_of
from schemas.errors import ConfigError, RetriableError, message_of

__all__ = ["Agent", "open_agent"]

log = logging.getLogger("exgate.agent")

_MAX_BACKOFF = 60.0
_UPKEEP_SECONDS = 600.0
_LEVELS = {Level.PROVINCE: ("province",), Level.CITY: ("province", "city"),
           Level.COUNTY: ("province", "city", "county")}


@dataclass
class CatchUp:
    """How far behind its sources the agent is: the "source lag" of the heartbeats.

    A pass that found nothing new and met no error means the agent is caught up (lag 0);
    otherwise the lag is the time since it last was. A source that keeps failing or a
    backlog that keeps coming shows as a growing lag on the centre's dashboard.
    """

    caught_up_at: float | None = None
    behind: bool = True

    def note_pass(self, taken: int, failed: bool, now: float) -> None:
        self.behind = bool(taken) or failed
        if not self.behind:
            self.caught_up_at = now

    def lag(self, now: float, started: float) -> float:
        if not self.behind:
            return 0.0
        return now - (self.caught_up_at if self.caught_up_at is not None else started)


@dataclass
class Agent:
    """One configured agent: its outbox and its sources, and what they did."""

    config: AgentConfig
    outbox: Outbox
    sources: list[Source]
    lang: str = "zh"
    publisher_settings: PublisherSettings | None = None  # None without [broker]
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    tally: Tally = field(default_factory=Tally)
    paused: bool = False
    catch_up: CatchUp = field(default_factory=CatchUp)
    started: float = field(default_factory=time.monotonic)
    on_sealed: Callable[[], None] = field(default=lambda: None)  # wakes the publisher
    _retry_at: dict[str, float] = field(default_factory=dict)
    _backoff: dict[str, float] = field(default_factory=dict)
    _errors: dict[str, str] = field(default_factory=dict)  # source → its current error
    _upkeep_at: float = 0.0

    @property
    def last_error(self) -> str | None:
        """The errors of the sources still failing, and a pause for the disk budget, for
        heartbeats (English, as the centre reads them); None when there is neither."""
        errors = list(self._errors.values())
        if self.paused:
            errors.append("outbox over its disk budget: reading of sources paused")
        return "; ".join(errors) or None

    def poll_all(self) -> int:
        """One pass over every source; returns the number of chunks journaled."""
        if time.monotonic() >= self._upkeep_at:
            self.make_room()
        chunks = 0
        for source in self.sources:
            if self.stop.is_set() or self._check_budget():
                break
            if time.monotonic() < self._retry_at.get(source.name, 0.0):
                continue
            chunks += self._poll_guarded(source)
        # Paused, nothing is read: that is no sign of being caught up.
        self.catch_up.note_pass(chunks, failed=bool(self._backoff) or self.paused,
                                now=time.monotonic())
        return chunks

    def make_room(self) -> None:
        """Drop stored batches' payloads, forget those past their retention and shrink
        the WAL (outbox upkeep)."""
        self._upkeep_at = time.monotonic() + _UPKEEP_SECONDS
        try:
            room = self.outbox.make_room(self.config.outbox.stored_retention_seconds)
        except RetriableError as exc:  # the next upkeep tries again; nothing was lost
            log.warning(say("upkeep-failed", self.lang, error=exc.message(self.lang)))
            return
        if room.forgotten_early:
            log.warning(say("forgotten-early", self.lang, batches=room.forgotten_early))
        if room.rejects_early:
            log.warning(say("rejects-forgotten-early", self.lang, rejects=room.rejects_early))

    def source_lag(self) -> float:
        return self.catch_up.lag(time.monotonic(), self.started)

    def seal(self, *, flush: bool = False) -> list[str]:
        """Seal what is ready (everything when ``flush``) into pending batches."""
        box = self.config.outbox
        linger = 0.0 if flush else box.batch_linger_seconds
        sealed = self.outbox.seal_batches(box.batch_max_records, box.batch_max_bytes, linger)
        self.tally.sealed += len(sealed)
        return sealed

    def waiting(self) -> int:
        return sum(getattr(source, "waiting", lambda: 0)() for source in self.sources)

    def sleep_time(self) -> float:
        """Until the next poll: the poll period, sooner when a source expects work or
        the trailing partial batch's linger runs out (it is sealed after a poll)."""
        delay = self.config.agent.poll_seconds
        linger = self.outbox.linger_left(self.config.outbox.batch_linger_seconds)
        # Due already when the loop seals before it sleeps: that seal failed (a full
        # disk), and retrying it sooner than a poll period would only flood the log.
        if linger is not None and linger > 0:
            delay = min(delay, max(linger, 0.05))
        for source in self.sources:
            hint = getattr(source, "wait_hint", lambda: None)()
            if hint is not None:
                delay = min(delay, max(hint, 0.05))
        return delay

    # -- internals ---------------------------------------------------------------------

    def _poll_guarded(self, source: Source) -> int:
        try:
            chunks = self._poll(source)
        except (ConfigError, OutboxBroken, KeyboardInterrupt):
            raise  # every source would fail alike: stop, and let the service manager see it
        except Exception as exc:  # one bad source must not stop the others
            self._failed(source.name, exc)
            return 0
        self._backoff.pop(source.name, None)
        self._errors.pop(source.name, None)
        return chunks

    def _poll(self, source: Source) -> int:
        chunks = 0
        state = self.outbox.source_state(source.name)
        limits = self.config.outbox.batch_limits
        reading = source.read(state)
        try:
            for chunk in reading:
                # Batches the chunk fills are sealed with it and published at once; the
                # rest waits for the end-of-pass seal and its linger.
                result = self.outbox.journal(source.name, chunk, seal_full=limits)
                if result.sealed:  # journaled for good, whatever the source's commit does
                    self.tally.sealed += len(result.sealed)
                    self.on_sealed()
                source.commit(chunk)
                lines = self.tally.add(source.name, chunk, result, self.lang)
                if lines:
                    log.warning(say("rejected-chunk", self.lang, source=source.name,
                                    count=len(lines), first=lines[0]),
                                extra={"source": source.name})
                chunks += 1
                if self.stop.is_set() or self._check_budget():
                    break
        finally:
            close = getattr(reading, "close", None)  # a generator: release its open file
            if close is not None:
                close()
        return chunks

    def _failed(self, name: str, exc: Exception) -> None:
        delay = min(self._backoff.get(name, 0.5) * 2, _MAX_BACKOFF)
        self._backoff[name] = delay
        self._retry_at[name] = time.monotonic() + delay
        said = message_of(exc, self.lang)
        self.tally.source(name).error = said
        self._errors[name] = f"{name}: {exc}"  # for the heartbeats: English
        message = say("source-failed", self.lang, source=name, delay=delay, error=said)
        if isinstance(exc, RetriableError):
            log.warning(message, extra={"source": name})
        else:
            log.error(message, exc_info=exc, extra={"source": name})

    def _check_budget(self) -> bool:
        """True while over budget even after making room; logs the pause and the resume
        once each."""
        over = self.outbox.over_budget()
        if over:
            self.make_room()
            over = self.outbox.over_budget()
        if over and not self.paused:
            log.warning(self._over_budget())
        elif self.paused and not over:
            log.info(say("resumed", self.lang))
        self.paused = over
        self.tally.paused = self.tally.paused or over
        return over

    def _over_budget(self) -> str:
        """Why reading pauses, and what will end it: receipts for what is on its way, or
        else the operator, for what holds the room."""
        used, budget = self.outbox.disk_bytes(), self.outbox.budget_bytes
        if not self.outbox.nothing_in_flight():
            return say("over-budget", self.lang, used=used, budget=budget)
        return say("over-budget-held", self.lang, used=used, budget=budget,
                   failed=self.outbox.depth().failed_batches,
                   rejects=self.outbox.open_rejects())


@contextmanager
def open_agent(config_path: Path, lang: str | None = None) -> Iterator[Agent]:
    """Load the config, check what publishing needs, take the outbox's agent lock, open
    the outbox and build the sources; close them all after.

    Publishing is checked first (``node.key_file`` readable, private and of this node,
    a broker login): a ConfigError there stops ``agent run`` and ``agent once`` alike
    before any source is read, so no row is marked taken and no file moved.
    """
    config = load_config(config_path)
    lang = lang or config.agent.lang
    settings = publisher_settings(config, lang) if config.broker is not None else None
    catalog = load_catalog()
    context = SourceContext(config.node.id, config.node.division, catalog, lang)
    with ExitStack() as stack:
        refuse_root_on_a_service_outbox(config.outbox.path)
        stack.enter_context(sole_agent(config.outbox.path))
        outbox = stack.enter_context(Outbox(
            config.outbox.path, levels=_LEVELS[level_of(config.node.division)],
            budget_bytes=config.outbox.budget_bytes))
        sources: list[Source] = []
        for entry in config.sources:
            try:
                source = source_factory(entry.kind)(entry.name, entry.options, context)
            except ConfigError as exc:
                raise config.source_error(entry.name, exc) from exc
            if hasattr(source, "close"):
                stack.callback(source.close)
            sources.append(source)
        yield Agent(config, outbox, sources, lang, settings)

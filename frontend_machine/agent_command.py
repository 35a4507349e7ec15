"""The agent's commands around its loop: ``agent once`` and ``agent run``.

``agent once`` polls until nothing is left to take (``_drain``), seals everything and
flushes it to the broker once; ``agent run`` loops (``_loop``) beside the publisher
thread until SIGTERM or SIGINT, which stop it after the current chunk, so nothing is
half-done that the journal and the sources' idempotent commits cannot finish after a
restart. Both log structured lines on stderr, and map a config error to exit code 2
(an ``[outbox] path`` that cannot be a journal among them, ``OutboxPathUnusable``) and
an outbox that cannot be used at all (``OutboxBroken``) to 1, for the service manager to
see.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from adapters.amqp.logs import quiet_pika
from adapters.heap import startup_frozen
from frontend_machine.agent import Agent, open_agent
from frontend_machine.config import AgentConfig, config_lang
from frontend_machine.publishing import PublisherThread, publish_once, publishing
from frontend_machine.report import say
from schemas.errors import ConfigError, ExgateError, RetriableError, wrapped
from schemas.messages import OneLineFormatter, one_line

__all__ = ["run_forever", "run_once"]

log = logging.getLogger("exgate.agent")


def run_once(config_path: Path, lang: str | None = None, out: TextIO | None = None) -> int:
    """One full poll-and-flush; prints what was taken and rejected.

    ``lang`` None: the config's ``[agent] lang``.

    Exit codes (design §8): 0 ok, 1 some records rejected (or a source failed),
    2 configuration error. A broker that is down or unreachable is no error (the batches
    wait in the outbox for the next run); a broker refusing the node's login is one (2):
    no later run gets in with the same credentials file.
    """
    def once() -> int:
        with open_agent(config_path, lang) as agent, _stop_on_signals(agent), \
                _logging(agent.config.node.id):
            for source in agent.sources:  # in the config's order, each said, even empty
                agent.tally.source(source.name)
            _drain(agent)
            try:
                agent.seal(flush=True)
            except RetriableError as exc:  # what was taken is journaled: the next run seals it
                log.warning(say("final-seal-failed", agent.lang, error=exc.message(agent.lang)))
            flushed = publish_once(agent)  # no-op without [broker]
            depth = agent.outbox.depth()
            agent.tally.pending_batches = depth.pending_batches
            agent.tally.unbatched = depth.unbatched_records
            agent.tally.waiting = agent.waiting()
            agent.tally.no_broker = agent.publisher_settings is None
            print("\n".join(agent.tally.lines(agent.lang)), file=out or sys.stdout)
            if flushed is not None and flushed.login_refused is not None:
                raise wrapped(_login_source(agent.config), flushed.login_refused)
            return 1 if agent.tally.rejected or agent.tally.failed else 0

    return _exit_code(once, config_path, lang)


def _login_source(config: AgentConfig) -> str:
    """Where a refused broker login came from: ``broker.url`` when it names the user,
    else the node's credentials file (``publishing.publisher_settings``)."""
    if config.broker is not None and urlsplit(config.broker.url).username:
        return f"{config.path} (broker.url)"
    return str(config.node.key_file or config.path)


def _exit_code(run: Callable[[], int], config_path: Path, lang: str | None) -> int:
    """``run()``, with a config error as exit code 2 and an unusable outbox as 1.

    The config may be what failed, so without ``--lang`` these two speak the language
    its ``[agent] lang`` asks for if it can be read at all, else Chinese.
    """
    try:
        return run()
    except ExgateError as exc:  # a ConfigError, or an outbox that cannot be used at all
        lang = config_lang(config_path, lang)
        config_error = isinstance(exc, ConfigError)
        print(say("config-error" if config_error else "fatal", lang, error=exc.message(lang)),
              file=sys.stderr)
        return 2 if config_error else 1


def _drain(agent: Agent) -> None:
    """Poll until a pass takes nothing and no file is still settling (bounded wait)."""
    deadline = time.monotonic() + _settle_limit(agent)
    while not agent.stop.is_set():
        if agent.poll_all():
            deadline = time.monotonic() + _settle_limit(agent)
            continue
        if agent.paused or not agent.waiting() or time.monotonic() > deadline:
            return
        agent.stop.wait(min(agent.sleep_time(), 0.5))


def _settle_limit(agent: Agent) -> float:
    stable = [getattr(s, "options", None) for s in agent.sources]
    longest = max((getattr(o, "stable_seconds", 0.0) for o in stable if o), default=0.0)
    return 3 * longest + 1.0


def run_forever(config_path: Path, lang: str | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns 0 on a clean stop, 2 on a config error.

    ``lang`` None: the config's ``[agent] lang``.
    """
    def forever() -> int:
        with open_agent(config_path, lang) as agent, _stop_on_signals(agent), \
                _logging(agent.config.node.id), publishing(agent) as publisher:
            log.info(say("started", agent.lang, node=agent.config.node.id,
                         sources=len(agent.sources), outbox=agent.config.outbox.path))
            for source in agent.sources:
                if hasattr(source, "watch"):
                    source.watch(agent.wake.set)
            if publisher is not None:
                agent.on_sealed = publisher.wake
            with startup_frozen():
                _loop(agent, publisher)
            log.info(say("stopped", agent.lang))
            return 0

    return _exit_code(forever, config_path, lang)


def _loop(agent: Agent, publisher: PublisherThread | None = None) -> None:
    while not agent.stop.is_set():
        taken = agent.poll_all()
        try:
            sealed = agent.seal()
        except RetriableError as exc:
            log.warning(say("seal-failed", agent.lang, error=exc.message(agent.lang)))
            sealed = []
        if publisher is not None:
            publisher.note_status(source_lag_s=agent.source_lag(), error=agent.last_error)
            if sealed:
                publisher.wake()  # publish now rather than at the publisher's next poll
        if taken and not agent.paused:
            continue  # more may be waiting: a backlog clears without sleeping
        agent.wake.wait(agent.sleep_time())
        agent.wake.clear()


@contextmanager
def _stop_on_signals(agent: Agent) -> Iterator[None]:
    """SIGTERM/SIGINT set the stop flag; the loop exits after the current chunk."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info(say("stopping", agent.lang))
        agent.stop.set()
        agent.wake.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _KeyValueFormatter(OneLineFormatter):
    """``time level logger message key=value …`` with node, source, file and batch; a
    file name holding a line break (the legacy writer names them) forges no line."""

    FIELDS = ("node", "source", "file", "batch")

    def __init__(self, node: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        values: dict[str, Any] = {"node": self.node}
        values.update({key: getattr(record, key) for key in self.FIELDS
                       if getattr(record, key, None) is not None})
        return text + "".join(f" {key}={one_line(str(value))}" for key, value in values.items())


@contextmanager
def _logging(node: str) -> Iterator[None]:
    """Structured lines on stderr (journald keeps them) for the run; never a secret."""
    quiet_pika()  # pika logs to the root logger, which only Python's last resort prints
    root = logging.getLogger("exgate")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter(node))
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

"""How the agent runs its publisher: settings from the config, a thread for ``agent run``,
one bounded flush for ``agent once``.

The publisher thread opens its own ``Outbox`` on the same file (a SQLite connection
belongs to one thread); WAL mode lets it work beside the agent's journaling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from adapters.sealing import load_broker_login, load_node_keys
from frontend_machine.config import AgentConfig
from frontend_machine.envelope import NodeIdentity
from frontend_machine.link import LinkSettings
from frontend_machine.outbox import Outbox
from frontend_machine.publisher import Publisher
from frontend_machine.publisher_settings import FlushResult, PublisherSettings
from frontend_machine.report import say
from schemas.errors import ConfigError, located, wrapped

if TYPE_CHECKING:
    from frontend_machine.agent import Agent

__all__ = ["PublisherThread", "publish_once", "publisher_settings", "publishing"]

log = logging.getLogger("exgate.agent.publisher")

def publisher_settings(config: AgentConfig, lang: str | None = None) -> PublisherSettings:
    """Keys and broker login from ``[node] key_file``; the URL from ``[broker] url``.

    ``lang`` (of the log lines) None: the config's ``[agent] lang``.
    """
    if config.broker is None:
        raise located(str(config.path), "no [broker] table: nothing to publish to",
                      "没有 [broker] 表：无处发送")
    if config.node.key_file is None:
        raise located(str(config.path), "key 'node.key_file' is required with [broker]; "
                      "`exgate node add ID --division CODE --out FILE` writes that file",
                      "配置了 [broker] 时必须设置配置项 'node.key_file'；该文件由 "
                      "`exgate node add ID --division CODE --out FILE` 写出")
    try:
        keys = load_node_keys(config.node.key_file)
    except ConfigError as exc:  # it names the file, not which setting gave it
        raise wrapped(f"{config.path}: node.key_file", exc,
                      where_zh=f"{config.path}：配置项 node.key_file") from exc
    if keys.node_id != config.node.id:
        raise located(str(config.node.key_file),
                      f"holds the keys of node {keys.node_id!r}, not of node {config.node.id!r} "
                      "(node.id)",
                      f"存放的是节点 {keys.node_id!r} 的密钥，而不是节点 {config.node.id!r}"
                      "（node.id）的")
    url = config.broker.url
    login = None if urlsplit(url).username else load_broker_login(config.node.key_file)
    if login is None and not urlsplit(url).username:
        raise located(str(config.path), f"broker.url has no user and {config.node.key_file} "
                      "has no [broker] login",
                      f"broker.url 中没有用户，{config.node.key_file} 中也没有 [broker] 登录信息")
    link = LinkSettings(url, config.node.id, user=login.user if login else None,
                        password=login.password if login else None,
                        lang=lang or config.agent.lang)
    identity = NodeIdentity(config.node.id, config.node.division, link.broker_user, keys)
    return PublisherSettings(link, identity)


def publish_once(agent: Agent, timeout: float = 60.0) -> FlushResult | None:
    """``agent once``: publish everything pending with confirms, bounded by ``timeout``;
    the last receipts and a heartbeat after (``Publisher.flush``)."""
    if agent.publisher_settings is None:
        return None
    publisher = Publisher(agent.outbox, agent.publisher_settings)
    publisher.note_status(source_lag_s=agent.source_lag(), error=agent.last_error)
    try:
        result = publisher.flush(timeout, agent.stop)
    finally:
        publisher.close()
    if result.login_refused is not None:
        return result  # logged by the publisher; `run_once` exits with it as exit code 2
    error = result.last_error_said or result.last_error
    # No error: the run was stopped (SIGINT, SIGTERM), or ran out of time while sending.
    said = "flushed" if not result.pending else "flush-left" if error else "flush-stopped"
    message = say(said, agent.lang, published=result.published, pending=result.pending,
                  error=error)
    (log.info if not result.pending else log.warning)(message)
    return result


class PublisherThread:
    """The publisher of ``agent run``, in its own thread with its own outbox connection."""

    def __init__(self, config: AgentConfig, outbox: Outbox, settings: PublisherSettings,
                 lang: str | None = None) -> None:
        self.settings = settings  # checked by `open_agent` before any source was read
        self._reread = partial(publisher_settings, config, lang)
        self._outbox_args = (outbox.path, outbox.levels, outbox.budget_bytes)
        self._stop = threading.Event()
        self._publisher: Publisher | None = None
        self._status: tuple[float | None, str | None] = (None, None)
        self._thread = threading.Thread(target=self._main, name="exgate-publisher",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        if self._publisher is not None:
            self._publisher.wake()

    def note_status(self, *, source_lag_s: float | None, error: str | None) -> None:
        """Kept here too, so a publisher (re)started later still reports it."""
        self._status = (source_lag_s, error)
        if self._publisher is not None:
            self._publisher.note_status(source_lag_s=source_lag_s, error=error)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _main(self) -> None:
        path, levels, budget = self._outbox_args
        while not self._stop.is_set():
            try:
                with Outbox(path, levels=levels, budget_bytes=budget) as outbox:
                    self._publisher = Publisher(outbox, self.settings, reread=self._reread)
                    lag, error = self._status
                    self._publisher.note_status(source_lag_s=lag, error=error)
                    try:
                        self._publisher.run(self._stop)
                    finally:
                        self._publisher.close()
                        self.settings = self._publisher.settings  # a login reread meanwhile
            except Exception:  # never let the thread die silently: the outbox keeps all
                log.exception(say("publisher-crashed", self.settings.lang),
                              extra={"node": self.settings.identity.node_id})
                self._stop.wait(5.0)


@contextmanager
def publishing(agent: Agent) -> Iterator[PublisherThread | None]:
    """Run the publisher thread beside the agent loop when ``[broker]`` is configured."""
    if agent.publisher_settings is None:
        yield None
        return
    thread = PublisherThread(agent.config, agent.outbox, agent.publisher_settings, agent.lang)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()

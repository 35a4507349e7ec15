"""``Publisher.flush`` (``agent once``): a refused login ends it at once, and its last
heartbeat follows the receipts; refusals in ``agent run`` are logged without a flood."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.amqp.errors import BrokerRefused, BrokerUnavailable, LoginRefused
from frontend_machine import publishing
from frontend_machine.outbox_batches import BatchState
from frontend_machine.publisher_settings import FlushResult, PublisherSettings
from schemas.errors import ConfigError
from tests.unit.frontend_machine.test_outbox import FakeClock
from tests.unit.frontend_machine.test_publisher_backoff import (
    FakeConnection,
    FakeLink,
    linked_publisher,
    publisher,
    receipt,
)

USER = "exgate-node-n1"


class Refusing:
    """A link factory the broker refuses, one error after the other from ``errors``."""

    def __init__(self, *errors: BrokerRefused) -> None:
        self.errors = list(errors)

    def __call__(self) -> Any:
        raise self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]


def test_a_refused_login_ends_the_flush_at_once(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    pub, opened = publisher(tmp_path, clock, Refusing(LoginRefused(USER, vhost=False)))
    result = pub.flush(60.0)
    assert len(opened) == 1  # no retry: the same credentials can never log in
    assert result.login_refused is not None and result.pending == 1
    assert USER in result.login_refused.message("en")
    assert "凭据文件" in result.login_refused.message("zh")


def test_a_broker_merely_down_is_tried_until_the_flush_times_out(tmp_path: Path) -> None:
    clock = FakeClock(0.0)

    def down() -> Any:
        raise BrokerUnavailable("connecting to the broker: broker unavailable")

    pub, opened = publisher(tmp_path, clock, down)
    result = pub.flush(10.0)
    assert len(opened) > 1 and result.login_refused is None and result.pending == 1


@pytest.mark.parametrize(("lang", "said"), [
    ("zh", "本次运行将在 10 秒内继续尝试连接消息服务器；按 Ctrl-C 可提前结束"),
    ("en", "this run keeps trying the broker for up to 10 s more; Ctrl-C ends it sooner")])
def test_a_flush_says_once_that_it_keeps_trying_and_stops_when_asked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, lang: str, said: str) -> None:
    """`agent once` waited out its whole minute after SIGINT or SIGTERM, saying nothing."""
    clock = FakeClock(0.0)
    stop = threading.Event()

    def down() -> Any:
        if len(opened) == 5:
            stop.set()  # as the signal handler of `agent once` does
        raise BrokerUnavailable("connecting to the broker: broker unavailable")

    pub, opened = publisher(tmp_path, clock, down, lang)
    with caplog.at_level(logging.INFO, "exgate.agent.publisher"):
        result = pub.flush(10.0, stop)
    assert len(opened) == 5 and clock.now < 10.0
    assert result.pending == 1 and result.published == 0
    waiting = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(waiting) == 1 and waiting[0].startswith(said)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_lasting_refusal_is_logged_when_new_then_ever_less_often(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, lang: str) -> None:
    clock = FakeClock(0.0)
    disabled = BrokerRefused("the provincial centre disabled this node", reply_code=320,
                             zh="省级中心已停用本节点")
    pub, opened = publisher(tmp_path, clock,
                            Refusing(disabled, LoginRefused(USER, vhost=False)), lang)
    with caplog.at_level(logging.DEBUG, "exgate.agent.publisher"):
        while clock.now < 4 * 3600:
            pub.step(0.25)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(opened) > 200  # retried all along: the centre may let the node in again
    assert len(errors) < 15  # once per change, then 1, 2, 4 … up to 60 min apart
    first, second = errors[:2]
    assert ("省级中心已停用本节点" if lang == "zh" else "disabled this node") in first
    assert USER in second
    if lang == "zh":
        assert "请向省级中心索取当前的凭据文件" in second and "密码错误" not in second
    else:
        assert "get the current credentials file from the provincial centre" in second
    assert all(USER in error for error in errors[1:])


class Recording(FakeConnection):
    """Keeps every published message; the receipts queued are delivered as the broker
    would, only once the batches were published."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.messages: list[tuple[str, bytes]] = []

    def basic_publish(self, exchange: str, routing_key: str, body: bytes, properties: Any,
                      mandatory: bool) -> None:
        self.messages.append((exchange, body))


def test_the_last_heartbeat_of_a_flush_follows_the_receipts(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    connection = Recording(clock)
    pub, batch = linked_publisher(tmp_path, clock, connection)
    box = pub.outbox
    box.mark_sent(batch)  # sent by an earlier run: this one collects its receipts
    for level in ("province", "city", "county"):
        connection.deliver(receipt(batch, level))
    result = pub.flush(60.0)
    assert box.batch(batch).state is BatchState.STORED  # type: ignore[union-attr]
    beats = [json.loads(body) for exchange, body in connection.messages
             if exchange == "exgate.status"]
    assert beats and beats[-1]["outbox"]["pending_batches"] == 0
    assert result.pending == 0 and result.login_refused is None


def test_after_a_refused_login_a_replaced_credentials_file_is_used_without_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    passwords: list[str | None] = []

    def link() -> Any:
        password = pub.settings.link.password
        passwords.append(password)
        if password != "new":
            raise LoginRefused(USER, vhost=False)
        return FakeLink(clock, refuse=False)

    pub, _ = publisher(tmp_path, clock, link)
    old = pub.settings
    rereads: list[PublisherSettings] = [old, old]  # the file unchanged twice, then replaced

    def reread() -> PublisherSettings:
        if rereads:
            return rereads.pop(0)
        return replace(old, link=replace(old.link, user=USER, password="new"))

    pub._reread = reread
    with caplog.at_level(logging.INFO, "exgate.agent.publisher"):
        while not pub.connected and clock.now < 600:
            pub.step(0.25)
    assert pub.connected and passwords[-1] == "new"
    assert passwords.count("new") == 1 and len(passwords) == 4  # tried as it was, twice
    assert pub.settings.identity.broker_user == old.identity.broker_user  # keys kept
    [reread_line] = [r.getMessage() for r in caplog.records if "凭据文件已更换" in r.getMessage()]
    assert USER in reread_line


def test_a_credentials_file_that_cannot_be_read_keeps_the_old_login_and_says_why_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    pub, opened = publisher(tmp_path, clock, Refusing(LoginRefused(USER, vhost=False)), "en")
    before = pub.settings

    def broken() -> PublisherSettings:
        raise ConfigError("credentials file: readable by others; run `chmod 600`")

    pub._reread = broken
    with caplog.at_level(logging.WARNING, "exgate.agent.publisher"):
        while len(opened) < 4:
            pub.step(0.25)
    assert pub.settings is before and not pub.connected
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "chmod 600" in warned[0]
    assert "could not be read again" in warned[0]


@pytest.mark.parametrize(("result", "said"), [
    (FlushResult(0, 3, None), "the run ended before everything was sent; 3 batch(es) stay "
                              "in the outbox for the next run"),
    (FlushResult(0, 3, "broker down", "broker down"),
     "the broker is unavailable; 3 batch(es) stay in the outbox for the next run: "
     "broker down"),
    (FlushResult(3, 0, None), "sent 3 batch(es), all confirmed by RabbitMQ; 0 still pending"),
])
def test_once_says_why_batches_stay_behind(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        result: FlushResult, said: str) -> None:
    """Stopped by a signal, it said "the broker is unavailable …: None"."""
    class Flushing:
        def __init__(self, *args: object) -> None: ...
        def note_status(self, **status: object) -> None: ...
        def flush(self, timeout: float, stop: threading.Event) -> FlushResult:
            return result
        def close(self) -> None: ...

    monkeypatch.setattr(publishing, "Publisher", Flushing)
    agent = SimpleNamespace(publisher_settings=object(), outbox=None, stop=threading.Event(),
                            lang="en", last_error=None, source_lag=lambda: None)
    with caplog.at_level(logging.INFO, "exgate"):
        assert publishing.publish_once(agent) is result  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [said]

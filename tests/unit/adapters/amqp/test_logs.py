"""A refused connection leaves exgate's one line, not pika's seven and a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from adapters.amqp.logs import CONNECTION_LOGGERS, quiet_pika


@pytest.fixture
def pika_levels() -> Iterator[None]:
    names = ("pika", *CONNECTION_LOGGERS)
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:  # as pika leaves them, whatever an earlier test quieted
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def _refused_attempt() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 1,
                                                          connection_attempts=1))


def test_pika_reports_a_refused_connection_at_length_unless_quieted(
        pika_levels: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        _refused_attempt()
    loud = [r for r in caplog.records if r.name.startswith("pika")]
    assert sum(r.levelno >= logging.ERROR for r in loud) >= 3  # what operators used to see
    caplog.clear()
    quiet_pika()
    with caplog.at_level(logging.INFO):
        _refused_attempt()
    assert [r for r in caplog.records if r.name.startswith("pika")] == []


def test_pika_warnings_outside_connection_set_up_stay_visible(pika_levels: None) -> None:
    quiet_pika()
    assert logging.getLogger("pika.channel").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("pika.channel").isEnabledFor(logging.INFO)

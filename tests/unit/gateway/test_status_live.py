"""``exgate status`` asks the level's running gateway what it holds while the store refuses
writes: from the real dashboard on loopback, and nothing (no error) when none answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from adapters.stores.sql import SqlStore
from gateway.dashboard.server import DashboardServer
from gateway.holds import HoldState
from gateway.status_command import run_status
from gateway.status_live import held_writes
from gateway.status_rules import StatusThresholds
from gateway.status_source import StatusSource
from tests.unit.gateway.test_status_command import config_for as status_config

LEVEL = "430100"
SINCE = datetime(2026, 11, 24, 9, 30, 5)  # naive Beijing time, as the consumer keeps it
HELD = HoldState(3, SINCE, 125.0)


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store  # at tmp_path / "store.db", where the gateway config points


@contextmanager
def gateway_dashboard(store: SqlStore, held: HoldState) -> Iterator[str]:
    """The dashboard ``gateway run`` serves beside a consumer holding ``held``; its port."""
    source = StatusSource(store, "430100", StatusThresholds())
    with DashboardServer(source, "127.0.0.1", 0, holds=lambda: held).start() as server:
        yield server.url.rsplit(":", 1)[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_for(tmp_path: Path, listen: str) -> Path:
    config = status_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    with config.open("a", encoding="utf-8") as more:
        more.write(f'[dashboard]\nlisten = "{listen}"\n')
    return config


def status(config: Path, as_json: bool, lang: str) -> tuple[int, str]:
    console = Console(record=True, width=200, color_system=None)
    code = run_status(config, as_json, lang, console=console)
    return code, console.export_text()


def test_the_hold_is_read_from_the_gateways_dashboard(
        store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")  # never used
    with gateway_dashboard(store, HELD) as port:
        assert held_writes(f"127.0.0.1:{port}", LEVEL) == HELD
        assert held_writes(f"0.0.0.0:{port}", LEVEL) == HELD  # listening everywhere: loopback
        assert held_writes(port, LEVEL) == HELD                  # a bare port means loopback
        assert held_writes(port, "430000") is None  # another level's dashboard on that port


def test_no_gateway_answering_means_nothing_is_known(store: SqlStore) -> None:
    assert held_writes(None, LEVEL) is None
    assert held_writes(f"127.0.0.1:{closed_port()}", LEVEL) is None


@contextmanager
def answering(status: int, body: bytes, location: str | None = None) -> Iterator[str]:
    """A server on loopback giving every GET this answer; its port."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("writes", [
    '{"held": 3, "since": null, "age_s": Infinity}', '{"held": 3, "since": null, "age_s": NaN}',
    '{"held": -1, "since": null, "age_s": 1}', '{"held": true, "since": null, "age_s": 1}'])
def test_an_answer_no_gateway_can_mean_is_nothing_known(writes: str) -> None:
    body = f'{{"level": "{LEVEL}", "store_writes": {writes}}}'.encode()
    with answering(200, body) as port:
        assert held_writes(port, LEVEL) is None


def test_an_answer_trickling_in_is_given_up_at_the_deadline() -> None:
    # A byte every 0.05 s resets the socket's timeout each time: only the overall
    # deadline ends it. Without one, this answer would take an hour to arrive.
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "70000")
            self.end_headers()
            while not stop.wait(0.05):
                self.wfile.write(b" ")
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers: list[HoldState | None] = []
    asking = threading.Thread(target=lambda: answers.append(
        held_writes(str(server.server_address[1]), LEVEL, timeout=0.5)), daemon=True)
    try:
        asking.start()
        asking.join(60)  # a hang guard, not a timing assertion
        assert not asking.is_alive(), "the trickle was read to its end"
        assert answers == [None]
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_a_redirect_is_not_followed(store: SqlStore) -> None:
    with gateway_dashboard(store, HELD) as real, \
            answering(302, b"", f"http://127.0.0.1:{real}/status.json") as port:
        assert held_writes(port, LEVEL) is None


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", "监察库写入失败，自 2026-11-24T09:30:05+08:00 起批次与心跳暂存（当前 3 条）"),
    ("en", "The store refuses writes since 2026-11-24T09:30:05+08:00: batches and heartbeats "
           "are held (3 now)")])
def test_status_shows_what_the_running_gateway_holds(
        store: SqlStore, tmp_path: Path, lang: str, words: str) -> None:
    with gateway_dashboard(store, HELD) as port:
        code, tree = status(config_for(tmp_path, f"127.0.0.1:{port}"), False, lang)
        assert code == 0 and words in tree
        code, text = status(config_for(tmp_path, f"127.0.0.1:{port}"), True, lang)
    assert code == 0
    assert json.loads(text)["store_writes"] == {
        "held": 3, "since": "2026-11-24T09:30:05+08:00", "age_s": 125.0, "alarming": True}


def test_status_without_a_gateway_answering_prints_the_stores_view_alone(
        store: SqlStore, tmp_path: Path) -> None:
    config = config_for(tmp_path, f"127.0.0.1:{closed_port()}")
    code, tree = status(config, False, "en")
    assert code == 0 and "No nodes at this level yet." in tree
    assert "refuses writes" not in tree
    code, text = status(config, True, "en")
    assert code == 0 and "store_writes" not in json.loads(text)


def test_a_gateway_holding_nothing_adds_no_line(store: SqlStore, tmp_path: Path) -> None:
    with gateway_dashboard(store, HoldState()) as port:
        code, tree = status(config_for(tmp_path, f"127.0.0.1:{port}"), False, "en")
    assert code == 0 and "refuses writes" not in tree

"""The dashboard's HTTP answers on loopback over a SQLite store: every request gets one.

No browser here (``tests/integration/test_dashboard.py`` has one): the status codes,
headers and bodies of the page, ``/status.json``, ``/metrics`` and ``/healthz`` when the
report cannot be built, when the store is away and when a node reports nonsense.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.amqp.topology import routing_key
from adapters.stores.base import FailedBatch, Heartbeat, NodeInfo
from adapters.stores.sql import SqlStore
from adapters.stores.sql_values import now_beijing
from gateway.dashboard import server as dashboard_server
from gateway.dashboard.server import MAX_CONNECTIONS, DashboardServer
from gateway.holds import HOLD_ALERT_S, HoldState
from gateway.pipeline import Delivery, Pipeline
from gateway.registry import KeyEntry, NodeEntry
from gateway.status_rules import StatusThresholds
from gateway.status_source import StatusSource
from schemas.times import BEIJING
from tests.unit.adapters.status_store import fill_store

PAGES = ("/", "/?lang=en", "/status.json", "/metrics")


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in the JSON")
    return json.loads(text, parse_constant=refuse)


@contextmanager
def serve(store: SqlStore, *, registry: Path | None = None, refresh_s: int = 45,
          connected: Callable[[], bool] | None = None,
          holds: Callable[[], HoldState] | None = None) -> Iterator[DashboardServer]:
    source = StatusSource(store, "430100", StatusThresholds(), registry_path=registry)
    with DashboardServer(source, "127.0.0.1", 0, refresh_s=refresh_s,
                         connected=connected, holds=holds).start() as server:
        yield server


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
            for f in text_string_to_metric_families(text)}


class _Registry:
    def __init__(self, *entries: NodeEntry) -> None:
        self.entries = {e.node_id: e for e in entries}

    def get(self, node_id: str) -> NodeEntry | None:
        return self.entries.get(node_id)

    def verifier(self, node_id: str, key_version: int) -> None:
        return None


# -- a report that cannot be built ------------------------------------------------------------


@pytest.mark.parametrize(("path", "kind", "words"), [
    ("/", "text/html", "生成状态页时出错"), ("/?lang=en", "text/html", "could not be built"),
    ("/status.json", "application/json", '"internal-error"'),
    ("/metrics", "text/plain", "internal-error")])
def test_an_unexpected_error_answers_500_and_logs_its_traceback(
        sqlite_store: SqlStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        path: str, kind: str, words: str) -> None:
    def broken() -> None:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(StatusSource, "report", lambda self: broken())
    with serve(sqlite_store) as server, caplog.at_level(logging.ERROR, "exgate.dashboard"):
        status, headers, body = fetch(server.url + path)
    assert status == 500 and headers["Content-Type"].startswith(kind) and words in body
    assert "infinity" not in body
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is OverflowError
    if kind == "text/html":
        assert headers["Refresh"] == "45" and '<meta http-equiv="refresh" content="45">' in body
    if kind == "application/json":
        assert strict(body) == {"schema": 1, "error": "internal-error"}


# -- the store away ---------------------------------------------------------------------------


@pytest.fixture
def store_away() -> Iterator[SqlStore]:
    """PostgreSQL on a port nothing listens on: refused at once, as by a stopped server."""
    away = SqlStore("postgresql+psycopg://exgate:s3cret@127.0.0.1:1/exgate_province")
    yield away
    away.close()


@pytest.mark.parametrize(("lang", "words"), [("", "暂时无法读取本级监察库"),
                                             ("?lang=en", "store cannot be read")])
def test_a_store_away_is_a_small_page_in_the_reader_s_language_that_reloads_itself(
        store_away: SqlStore, caplog: pytest.LogCaptureFixture, lang: str, words: str) -> None:
    with serve(store_away) as server, caplog.at_level(logging.WARNING, "exgate.dashboard"):
        status, headers, body = fetch(server.url + "/" + lang)
    assert status == 503 and headers["Content-Type"].startswith("text/html")
    assert words in body and 'data-reason="store-unavailable"' in body
    assert headers["Refresh"] == "45" and '<meta http-equiv="refresh" content="45">' in body
    # The wallboard may face a room: where the store is goes to the log only.
    for detail in ("127.0.0.1", "exgate_province", "postgresql", "s3cret", "exgate:"):
        assert detail not in body
    assert "127.0.0.1:1/exgate_province" in caplog.text and "s3cret" not in caplog.text


def test_a_store_away_is_a_503_on_every_route_and_healthz(store_away: SqlStore) -> None:
    with serve(store_away) as server:
        status, _, body = fetch(server.url + "/status.json")
        assert (status, strict(body)) == (503, {"schema": 1, "error": "store-unavailable"})
        assert fetch(server.url + "/healthz")[::2] == (503, "store unreachable\n")
        status, headers, body = fetch(server.url + "/", "HEAD")
        assert (status, body, headers["Refresh"]) == (503, "", "45")


def test_metrics_answer_while_the_store_is_away_with_store_up_0_and_the_broker_gauge(
        store_away: SqlStore, sqlite_store: SqlStore) -> None:
    level = (("level", "430100"),)
    with serve(store_away, connected=lambda: True) as server:
        status, _, body = fetch(server.url + "/metrics")
    assert status == 200
    assert families(body) == {"exgate_store_up": {level: 0}, "exgate_broker_connected": {level: 1}}
    with serve(sqlite_store) as server:
        metrics = families(fetch(server.url + "/metrics")[2])
    assert metrics["exgate_store_up"] == {level: 1} and "exgate_level_light" in metrics


# -- healthz and the consumer beside the dashboard --------------------------------------------


def test_healthz_is_ok_only_while_the_store_answers_and_the_consumer_consumes(
        sqlite_store: SqlStore) -> None:
    with serve(sqlite_store) as server:      # `exgate dashboard`: the store alone
        assert fetch(server.url + "/healthz")[::2] == (200, "ok\n")
        assert "exgate_broker_connected" not in fetch(server.url + "/metrics")[2]
    consuming = [False]
    with serve(sqlite_store, connected=lambda: consuming[0]) as server:
        assert fetch(server.url + "/healthz")[::2] == (503, "broker not connected\n")
        level = (("level", "430100"),)
        assert families(fetch(server.url + "/metrics")[2])["exgate_broker_connected"] == \
            {level: 0}
        consuming[0] = True
        assert fetch(server.url + "/healthz")[::2] == (200, "ok\n")
        assert families(fetch(server.url + "/metrics")[2])["exgate_broker_connected"] == \
            {level: 1}


def test_a_store_refusing_writes_fails_healthz_shows_in_metrics_and_on_the_page(
        sqlite_store: SqlStore) -> None:
    # The store still answers reads (files made immutable): only the consumer knows.
    state = [HoldState()]
    level = (("level", "430100"),)
    with serve(sqlite_store, connected=lambda: True, holds=lambda: state[0]) as server:
        assert fetch(server.url + "/healthz")[::2] == (200, "ok\n")
        metrics = families(fetch(server.url + "/metrics")[2])
        assert metrics["exgate_level_held_deliveries"] == {level: 0}
        assert metrics["exgate_level_hold_age_seconds"] == {level: 0}
        assert 'id="store-writes"' not in fetch(server.url + "/")[2]
        since = now_beijing().replace(microsecond=0) - timedelta(seconds=HOLD_ALERT_S + 5)
        state[0] = HoldState(7, since, HOLD_ALERT_S + 5)
        status, _, body = fetch(server.url + "/healthz")
        assert status == 503 and body == (f"store refuses writes: 7 deliveries held, failing "
                                          f"since {since:%Y-%m-%d %H:%M:%S}\n")
        metrics = families(fetch(server.url + "/metrics")[2])
        assert metrics["exgate_level_held_deliveries"] == {level: 7}
        assert metrics["exgate_level_hold_age_seconds"] == {level: HOLD_ALERT_S + 5}
        for lang, words in (("", f"监察库写入失败，自 {since:%Y-%m-%d %H:%M:%S} 起批次与心跳暂存"),
                            ("?lang=en", f"The store refuses writes since "
                                         f"{since:%Y-%m-%d %H:%M:%S}: batches and heartbeats "
                                         "are held")):
            status, _, page = fetch(server.url + "/" + lang)
            assert status == 200 and 'id="store-writes"' in page and 'data-held="7"' in page
            assert words in page
        data = strict(fetch(server.url + "/status.json")[2])
        assert isinstance(data, dict) and data["store_writes"] == {
            "held": 7, "since": since.replace(tzinfo=BEIJING).isoformat(),
            "age_s": HOLD_ALERT_S + 5, "alarming": True}


# -- what the store holds ---------------------------------------------------------------------


def test_failed_batches_past_the_list_are_counted_on_the_page_in_the_json_and_metrics(
        sqlite_store: SqlStore) -> None:
    now = now_beijing()
    sqlite_store.mirror_node(NodeInfo("n1", "430102", "u-n1", "active", (1,)))
    for i in range(1000):   # refusals no node vouched for: possible intruders
        sqlite_store.record_failed(FailedBatch(f"b{i:04d}", None, "bad-signature", "x", b"x",
                                               "k", {}, None, now - timedelta(seconds=i)))
    for i in range(2):
        sqlite_store.record_failed(FailedBatch("n1-b", "n1", "node-disabled", "x", b"%d" % i,
                                               "k", {}, "u-n1", now))
    with serve(sqlite_store) as server:
        page = fetch(server.url + "/")[2]
        assert 'data-more="902"' in page and "另有 902 条未列出" in page
        # each reason named in the reader's language, its next step on the tag
        assert "节点已停用（node-disabled）" in page and "exgate node enable" in page
        assert "node disabled (node-disabled)" in fetch(server.url + "/?lang=en")[2]
        data = strict(fetch(server.url + "/status.json")[2])
        assert isinstance(data, dict)
        assert (len(data["failed_batches"]), data["failed_batches_total"]) == (500, 1002)
        failed = families(fetch(server.url + "/metrics")[2])["exgate_level_failed_batches"]
    assert failed == {(("level", "430100"), ("sender", "node")): 1,
                      (("level", "430100"), ("sender", "unknown")): 1000}


def test_an_unreadable_registry_file_shows_on_the_page_and_in_metrics(
        sqlite_store: SqlStore, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "furong-01.json").write_text("{ not json", encoding="utf-8")
    with serve(sqlite_store, registry=registry) as server:
        for lang, words in (("", "状态不完整"), ("?lang=en", "Incomplete status")):
            page = fetch(server.url + "/" + lang)[2]
            assert words in page and 'id="degraded"' in page
            assert f'data-file="{registry / "furong-01.json"}"' in page
        metrics = families(fetch(server.url + "/metrics")[2])
    assert metrics["exgate_registry_unreadable_files"] == {(("level", "430100"),): 1}


def beat(lag: str, outbox: str) -> Delivery:
    body = (f'{{"node_id": "bad-01", "division": "430103", "outbox": {outbox}, '
            f'"source_lag_s": {lag}}}').encode()
    return Delivery(routing_key("430103", "bad-01"), body, None, "u-bad-01", {})


@pytest.mark.parametrize(("lag", "outbox"), [("1e999", '{"pending_batches": 0}'),
                                             ("5", '{"pending_batches": 1e999}')])
def test_one_node_s_heartbeat_of_1e999_leaves_every_route_of_the_level_answering(
        sqlite_store: SqlStore, lag: str, outbox: str) -> None:
    fill_store(sqlite_store)
    registry = _Registry(NodeEntry("bad-01", "430103", "u-bad-01", "active",
                                   (KeyEntry(1, "-", "-"),)))
    assert Pipeline("430100", registry, sqlite_store).heartbeat(beat(lag, outbox))
    with serve(sqlite_store) as server:
        for path in PAGES:
            status, _, body = fetch(server.url + path)
            assert status == 200 and "bad-01" in body and "Infinity" not in body
        data = strict(fetch(server.url + "/status.json")[2])
    assert isinstance(data, dict)
    [node] = [n for n in data["nodes"] if n["node_id"] == "bad-01"]
    assert (node["source_lag_s"], node["outbox"]["pending_batches"]) in \
        ((None, 0), (5.0, None))


def test_an_infinite_figure_kept_before_the_pipeline_checked_is_ignored_when_read(
        sqlite_store: SqlStore) -> None:
    fill_store(sqlite_store)
    now = now_beijing()
    sqlite_store.mirror_node(NodeInfo("bad-01", "430103", "u2", "active", (1,)))
    sqlite_store.record_heartbeat(Heartbeat("bad-01", "430103", now, now, "0.1",
                                            {"pending_batches": float("inf")}, float("inf"),
                                            None))
    with serve(sqlite_store) as server:
        for path in PAGES:
            status, _, body = fetch(server.url + path)
            assert status == 200 and "Infinity" not in body
        strict(fetch(server.url + "/status.json")[2])


def test_a_node_s_unresolved_conflicts_show_on_the_page_in_the_json_and_metrics(
        sqlite_store: SqlStore) -> None:
    now = now_beijing()
    sqlite_store.mirror_node(NodeInfo("n1", "430102", "u-n1", "active", (1,)))
    c = sqlite_store.schema.conflict
    with sqlite_store.engine.begin() as conn:
        conn.execute(c.insert(), [
            {"ELEMENT": "SBXX", "KEY_TEXT": f"SB{i}", "SJBBH": 1, "STORED_DIGEST": "a" * 64,
             "INCOMING_DIGEST": "b" * 64, "BATCH_ID": "B1", "NODE_ID": "n1", "PAYLOAD": "<x/>",
             "DETECTED_AT": now, "RESOLVED_AT": now if i == 2 else None} for i in range(3)])
    with serve(sqlite_store) as server:
        assert 'data-conflicts="2"' in fetch(server.url + "/")[2]
        data = strict(fetch(server.url + "/status.json")[2])
        assert isinstance(data, dict)
        assert [(n["node_id"], n["conflicts"]) for n in data["nodes"]] == [("n1", 2)]
        conflicts = families(fetch(server.url + "/metrics")[2])["exgate_node_conflicts"]
    assert list(conflicts.values()) == [2]


def _half_sent(url: str) -> socket.socket:
    """A client that starts a request and then says nothing more."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    client = socket.create_connection((host, int(port)), timeout=10)
    client.sendall(b"GET / HTTP/1.1\r\n")
    return client


def _closed_by_the_server(client: socket.socket, within_s: float) -> bool:
    client.settimeout(within_s)
    try:
        return client.recv(1024) == b""
    except TimeoutError:
        return False


def _handler_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_at_most_so_many_clients_are_served_at_once_the_others_closed(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_server._Handler, "timeout", 60.0)  # none times out here
    before = _handler_threads()
    with serve(sqlite_store) as server:
        idle = [_half_sent(server.url) for _ in range(MAX_CONNECTIONS)]
        try:
            _eventually(lambda: _handler_threads() - before >= MAX_CONNECTIONS,
                        "the idle clients were not all taken")
            extra = [_half_sent(server.url) for _ in range(5)]
            assert all(_closed_by_the_server(c, 10.0) for c in extra)  # no thread for them
            assert _handler_threads() - before == MAX_CONNECTIONS
            for client in extra:
                client.close()
        finally:
            for client in idle:
                client.close()

        def answers() -> bool:
            try:
                return fetch(server.url + "/healthz")[0] in (200, 503)
            except OSError:  # still closed as busy until the handler threads end
                return False

        _eventually(answers, "the dashboard stopped answering once the clients left")


def test_a_client_that_says_nothing_is_let_go(sqlite_store: SqlStore,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_server._Handler, "timeout", 0.5)
    with serve(sqlite_store) as server:
        client = _half_sent(server.url)
        try:
            assert _closed_by_the_server(client, 30.0)
        finally:
            client.close()

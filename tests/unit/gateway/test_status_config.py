"""``[status]`` and ``[dashboard]`` in the gateway TOML, and the dashboard beside the consumer."""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.stores.sql import SqlStore
from gateway.config import GatewayConfig, load_config, parse_listen
from gateway.dashboard.command import run_dashboard
from gateway.run import _dashboard
from gateway.status_rules import StatusThresholds
from schemas.errors import ConfigError

BASE = """\
[level]
division = "430100"
[broker]
url = "amqp://gateway@127.0.0.1:5672/exgate"
[store]
url = "sqlite:///store.db"
[registry]
path = "registry"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def test_defaults_apply_without_the_tables(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.status == StatusThresholds()
    assert config.heartbeat_retention_days == 7
    assert config.dashboard_listen is None and config.dashboard_refresh_s == 30


def test_thresholds_and_the_listen_address_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[status]\nsilent_s = 900\nfailed_red_count = 5\n'
                                         '[dashboard]\nlisten = "0.0.0.0:9000"\n'
                                         'refresh_seconds = 10\n'))
    assert config.status.silent_s == 900.0 and config.status.failed_red_count == 5
    assert config.status.heartbeat_late_s == StatusThresholds().heartbeat_late_s
    assert (config.dashboard_listen, config.dashboard_refresh_s) == ("0.0.0.0:9000", 10)
    config = load_config(write(tmp_path, "[status]\nheartbeat_retention_days = 0.5\n"))
    assert config.heartbeat_retention_days == 0.5


@pytest.mark.parametrize("extra", [
    "[status]\nsilent_after = 5\n",                       # unknown key
    "[status]\nsilent_s = -1\n",                           # not positive
    "[status]\nfailed_red_count = 2.5\n",                  # not an integer
    "[status]\nsilent_s = 60\nheartbeat_late_s = 120\n",   # silent before late
    "[status]\nheartbeat_retention_days = 0\n",          # not positive
    "[status]\nheartbeat_retention_days = 0.01\n",       # less than lag_window_s
    "[status]\nheartbeat_retention_days = 1e9\n",        # past any date
    '[dashboard]\nlisten = "localhost:http"\n',            # not a port
])
def test_bad_values_are_config_errors_naming_the_table(tmp_path: Path, extra: str) -> None:
    with pytest.raises(ConfigError, match=r"\[(status|dashboard)\]"):
        load_config(write(tmp_path, extra))


@pytest.mark.parametrize(("extra", "message"), [
    ("throughput_hours = 20000000", "throughput_hours = 20000000 is more than 744"),
    ("throughput_hours = 745", "throughput_hours = 745 is more than 744"),
    ("lag_window_s = 1e15\nheartbeat_retention_days = 1e11",
     "lag_window_s = 1e+15 is more than 316224000"),
    ("silent_s = 1e300", "silent_s = 1e+300 is more than 316224000"),
])
def test_a_period_every_status_request_could_not_compute_is_refused(
        tmp_path: Path, extra: str, message: str) -> None:
    # Loaded, it made every page, /status.json and /metrics request fail.
    with pytest.raises(ConfigError, match=re.escape(f"[status] {message}")):
        load_config(write(tmp_path, f"[status]\n{extra}\n"))


def test_the_longest_periods_allowed_load(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[status]\nthroughput_hours = 744\n"
                                         "lag_window_s = 316224000\n"
                                         "heartbeat_retention_days = 3660\n"))
    assert config.status.throughput_hours == 744


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8430", ("127.0.0.1", 8430)), ("8430", ("127.0.0.1", 8430)),
    (":8430", ("127.0.0.1", 8430)), ("[::1]:8430", ("::1", 8430)),
    ("0.0.0.0:80", ("0.0.0.0", 80))])
def test_listen_addresses_bind_loopback_unless_told(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def healthz(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GatewayConfig, SqlStore]]:
    """A gateway config whose dashboard listens on a free loopback port, and its store."""
    config = load_config(write(tmp_path, '[dashboard]\nlisten = "127.0.0.1:0"\n'))
    store = SqlStore(config.store_url)
    store.migrate()
    yield config, store
    store.close()


def test_the_gateway_serves_the_dashboard_while_it_runs(
        served: tuple[GatewayConfig, SqlStore]) -> None:
    config, store = served
    consuming = [True]
    with _dashboard(config, store, lambda: consuming[0]) as server:
        assert server is not None
        assert healthz(server.url) == (200, b"ok\n")
        consuming[0] = False
        assert healthz(server.url) == (503, b"broker not connected\n")
        url = server.url
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/healthz", timeout=10)
    with _dashboard(replace(config, dashboard_listen=None), store, lambda: True) as server:
        assert server is None


def test_a_second_gateway_process_consumes_without_the_dashboard_whose_port_is_taken(
        served: tuple[GatewayConfig, SqlStore], caplog: pytest.LogCaptureFixture) -> None:
    config, store = served
    with _dashboard(config, store, lambda: True) as first:
        assert first is not None
        taken = replace(config, dashboard_listen=first.url.removeprefix("http://"))
        with caplog.at_level(logging.WARNING, "exgate.gateway"), \
                _dashboard(taken, store, lambda: True) as second:
            assert second is None
        assert "看板无法监听" in caplog.text and "继续消费，但不提供看板" in caplog.text
        caplog.clear()
        with caplog.at_level(logging.WARNING, "exgate.gateway"), \
                _dashboard(replace(taken, lang="en"), store, lambda: True) as second:
            assert second is None
        assert "cannot listen" in caplog.text and "without a dashboard" in caplog.text
        assert healthz(first.url) == (200, b"ok\n")


def test_exgate_dashboard_alone_still_refuses_a_taken_port(
        served: tuple[GatewayConfig, SqlStore], tmp_path: Path) -> None:
    config, store = served
    with _dashboard(config, store, lambda: True) as first:
        assert first is not None
        path = write(tmp_path, f'[dashboard]\nlisten = "{first.url.removeprefix("http://")}"\n')
        assert run_dashboard(path) == 2

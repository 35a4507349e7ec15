"""``[status]`` and ``[dashboard]`` in the gateway TOML, and the dashboard beside the consumer."""

from __future__ import annotations

import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.stores.sql import SqlStore
from gateway.config import load_config, parse_listen
from gateway.consumer import _dashboard
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
    '[dashboard]\nlisten = "localhost:http"\n',            # not a port
])
def test_bad_values_are_config_errors_naming_the_table(tmp_path: Path, extra: str) -> None:
    with pytest.raises(ConfigError, match=r"\[(status|dashboard)\]"):
        load_config(write(tmp_path, extra))


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8430", ("127.0.0.1", 8430)), ("8430", ("127.0.0.1", 8430)),
    (":8430", ("127.0.0.1", 8430)), ("[::1]:8430", ("::1", 8430)),
    ("0.0.0.0:80", ("0.0.0.0", 80))])
def test_listen_addresses_bind_loopback_unless_told(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_the_gateway_serves_the_dashboard_while_it_runs(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[dashboard]\nlisten = "127.0.0.1:0"\n'))
    store = SqlStore(config.store_url)
    store.migrate()
    try:
        with _dashboard(config, store) as server:
            assert server is not None
            with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
                assert response.read() == b"ok\n"
            url = server.url
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/healthz", timeout=10)
        with _dashboard(replace(config, dashboard_listen=None), store) as server:
            assert server is None
    finally:
        store.close()


def test_an_address_in_use_stops_the_gateway_with_a_config_error(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[dashboard]\nlisten = "127.0.0.1:0"\n'))
    store = SqlStore(config.store_url)
    store.migrate()
    try:
        with _dashboard(config, store) as first:
            assert first is not None
            taken = replace(config, dashboard_listen=first.url.removeprefix("http://"))
            with pytest.raises(ConfigError, match="cannot listen"), _dashboard(taken, store):
                pass
    finally:
        store.close()

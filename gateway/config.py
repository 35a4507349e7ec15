"""The gateway's TOML configuration (design §8), read into typed dataclasses.

::

    [level]     division = "430100"
    [broker]    url = "amqp://gateway@mq:5672/exgate"   (password: file or environment)
    [store]     url = "sqlite:///var/lib/exgate/store-430100.db"
    [registry]  path = "/var/lib/exgate/registry"
    [gateway]   workers = 2, prefetch = 4, hold_seconds = 1200, poison_attempts = 3,
                lang = "zh"                              (the log's language; or "en")
    [dashboard] listen = "127.0.0.1:8430", refresh_seconds = 30
    [status]    silent_s = 600, lag_red_s = 3600, …      (gateway.status_rules)
                heartbeat_retention_days = 7             (gateway.housekeeping)
                periods up to ten years, throughput_hours up to 744 (a month)

Every error is a ``ConfigError`` naming the file and the key, in English and Chinese.
Relative paths (the registry, a ``sqlite:///relative.db`` store) are resolved against
the config file's folder. Passwords may come from ``EXGATE_BROKER_PASSWORD`` /
``EXGATE_STORE_PASSWORD`` or from ``password_file`` keys, and never appear in ``repr`` or
logs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.amqp.parameters import (
    UnusableBrokerURL,
    broker_parameters,
    split_broker_url,
    ssl_files_under,
)
from adapters.config_files import (
    LARGEST_SETTING,
    is_number,
    lang_problem,
    read_password_file,
    read_toml,
    redact,
    resolve_path,
    with_url_password,
)
from adapters.db_connect import engine_url, sqlite_file_under
from gateway.status_rules import StatusThresholds
from schemas.divisions import DIVISION_FORM, is_division
from schemas.errors import ConfigError, located, wrapped

__all__ = ["GatewayConfig", "GatewaySettings", "load_config", "parse_listen"]

# The keys of each table ([status]: the fields of StatusThresholds, checked there).
_KEYS: dict[str, frozenset[str]] = {
    "level": frozenset({"division"}),
    "broker": frozenset({"url", "password_file"}),
    "store": frozenset({"url", "password_file"}),
    "registry": frozenset({"path"}),
    "gateway": frozenset({"workers", "prefetch", "hold_seconds", "drain_idle_seconds",
                          "poison_attempts", "lang"}),
    "dashboard": frozenset({"listen", "refresh_seconds"}),
}
_TABLES = {*_KEYS, "status"}
# [status] besides the thresholds: how long ST_HEARTBEAT keeps what the lights no longer read.
_RETENTION_KEY = "heartbeat_retention_days"
_RETENTION_DAYS = 7.0
# Each status request reads throughput_hours of batches and subtracts the periods from
# now: bounded, no setting makes every request fail or crawl.
_LONGEST_S = 10 * 366 * 86400     # seconds of any [status] period: ten years
_MOST_HOURS = 31 * 24             # throughput_hours: a month of hourly points
_TEN_YEARS = ("ten years", "十年")
_MONTH_HOURLY = ("a month of hourly points", "一个月的逐小时数据点")
@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """``[gateway]``: how many batches are worked on at once and how patiently."""

    # Batch work is mostly Python (one GIL per process) and a SQLite store takes one
    # writer at a time: a second worker overlaps unsealing and parsing with the other's
    # store write; more only queue up. Raise it for a networked store database.
    workers: int = 2
    prefetch: int = 4             # unacked deliveries the broker hands us; >= workers
    hold_seconds: float = 1200.0  # keep a batch while the store is away, then requeue it
    drain_idle_seconds: float = 2.0
    # Failures in a row for no transient reason (gateway.poison) after which a batch is
    # kept as a failed batch for replay instead of being held for hold_seconds.
    poison_attempts: int = 3


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    path: Path
    division: str
    broker_url: str = field(repr=False)
    store_url: str = field(repr=False)
    registry_path: Path
    gateway: GatewaySettings = GatewaySettings()
    dashboard_listen: str | None = None
    dashboard_refresh_s: int = 30
    status: StatusThresholds = field(default_factory=StatusThresholds)
    heartbeat_retention_days: float = _RETENTION_DAYS  # older beats go, not a node's latest
    lang: str = "zh"  # [gateway] lang: the language of the log, "zh" or "en"

    def with_workers(self, workers: int | None) -> GatewayConfig:
        if workers is None:
            return self
        prefetch = max(self.gateway.prefetch, workers)
        return replace(self, gateway=replace(self.gateway, workers=workers, prefetch=prefetch))


def load_config(path: Path) -> GatewayConfig:
    """Read and check a gateway config file; raises ConfigError on any problem."""
    path = Path(path)
    data = read_toml(path)
    reader = _Reader(path, data)
    unknown = ", ".join(sorted(set(data) - _TABLES))
    if unknown:
        expected = ", ".join(sorted(_TABLES))
        raise reader.fail(f"unknown table(s) {unknown}; expected {expected}",
                          f"未知的表 {unknown}；可用的表：{expected}")
    reader.known_keys()
    division = reader.text("level", "division", required=True)
    if not is_division(division):
        raise reader.fail(f"[level] division = {division!r} is not {DIVISION_FORM[0]}",
                          f"[level] division = {division!r} 不是 {DIVISION_FORM[1]}")
    status = reader.thresholds()
    return GatewayConfig(
        path=path,
        division=division,
        broker_url=reader.broker_url(),
        store_url=reader.store_url(),
        registry_path=reader.path_value("registry", "path"),
        gateway=reader.settings(),
        dashboard_listen=reader.listen(),
        dashboard_refresh_s=int(reader.positive("dashboard", "refresh_seconds", 30, True)),
        status=status,
        heartbeat_retention_days=reader.retention(status.lag_window_s),
        lang=reader.lang(),
    )


@dataclass(frozen=True)
class _Reader:
    path: Path
    data: dict[str, Any]

    def fail(self, problem: str, problem_zh: str) -> ConfigError:
        return located(str(self.path), problem, problem_zh)

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(f"[{name}] must be a table", f"[{name}] 必须是表（table）")
        return value

    def known_keys(self) -> None:
        """A misspelt key is an error, not a default silently taken instead."""
        for name, keys in _KEYS.items():
            self.only(name, keys)

    def only(self, name: str, keys: set[str] | frozenset[str]) -> None:
        unknown = ", ".join(sorted(set(self.table(name)) - keys))
        if unknown:
            expected = ", ".join(sorted(keys))
            raise self.fail(f"[{name}] unknown key(s) {unknown}; expected {expected}",
                            f"[{name}] 中有未知的配置项 {unknown}；可用：{expected}")

    def text(self, table: str, key: str, required: bool = False) -> str:
        value = self.table(table).get(key)
        if value is None:
            if required:
                raise self.fail(f"[{table}] {key} is required", f"必须设置 [{table}] {key}")
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"[{table}] {key} must be a non-empty string",
                            f"[{table}] {key} 必须是非空字符串")
        return value.strip()

    def secret(self, table: str, env: str) -> str | None:
        if os.environ.get(env):
            return os.environ[env]
        file = self.text(table, "password_file")
        if not file:
            return None
        try:
            return read_password_file(self.resolve(file), f"[{table}] password_file")
        except ConfigError as exc:
            raise self.fail(exc.message("en"), exc.message("zh")) from exc.__cause__

    def resolve(self, value: str) -> Path:
        return resolve_path(self.path, value)

    def path_value(self, table: str, key: str) -> Path:
        return self.resolve(self.text(table, key, required=True))

    def broker_url(self) -> str:
        url = self.text("broker", "url", required=True)
        if url.partition("://")[0].lower() not in ("amqp", "amqps"):
            raise self.fail(f"[broker] url {redact(url)!r} must start with amqp:// or amqps://",
                            f"[broker] url {redact(url)!r} 必须以 amqp:// 或 amqps:// 开头")
        try:
            parts = split_broker_url(url)
            url = ssl_files_under(url, self.path)
            password = self.secret("broker", "EXGATE_BROKER_PASSWORD")
            if password is not None and parts.username is not None:
                url = with_url_password(url, password)
            # A user with no password is for `gateway run` to refuse (check_consumable):
            # the read-only commands sharing this config need none. pika cannot parse it.
            unsaid = parts.username is not None and urlsplit(url).password is None
            broker_parameters(with_url_password(url, "") if unsaid else url)
        except UnusableBrokerURL as exc:
            raise self.fail(f"[broker] url cannot be used: {exc.why.en}",
                            f"[broker] url 无法使用：{exc.why.zh}") from None
        return url

    def store_url(self) -> str:
        raw = self.text("store", "url") or "sqlite:///exgate-store.db"
        try:
            url = engine_url(raw)
        except ConfigError as exc:
            raise wrapped(f"{self.path}: [store]", exc) from exc
        url = sqlite_file_under(url, self.path)
        password = self.secret("store", "EXGATE_STORE_PASSWORD")
        if password is not None:
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    def settings(self) -> GatewaySettings:
        table = self.table("gateway")
        defaults = GatewaySettings()
        workers = self.number(table, "workers", defaults.workers, integer=True)
        prefetch = self.number(table, "prefetch", max(defaults.prefetch, 2 * int(workers)),
                               integer=True)
        if prefetch < workers:
            raise self.fail(f"[gateway] prefetch = {prefetch} is below workers = {workers}; "
                            "workers would sit idle",
                            f"[gateway] prefetch = {prefetch} 小于 workers = {workers}；"
                            "部分工作线程将闲置")
        return GatewaySettings(
            int(workers), int(prefetch),
            self.number(table, "hold_seconds", defaults.hold_seconds),
            self.number(table, "drain_idle_seconds", defaults.drain_idle_seconds),
            int(self.number(table, "poison_attempts", defaults.poison_attempts, integer=True)))

    def lang(self) -> str:
        lang = self.table("gateway").get("lang", "zh")
        problem = lang_problem(lang)
        if problem is not None:
            raise self.fail(f"[gateway] lang {problem[0]}", f"[gateway] lang {problem[1]}")
        return str(lang)

    def number(self, table: dict[str, Any], key: str, default: float,
               integer: bool = False) -> float:
        return self._positive("gateway", table.get(key, default), key, integer)

    # -- [dashboard] and [status]: the sync-status view ------------------------------------

    def listen(self) -> str | None:
        text = self.text("dashboard", "listen")
        if not text:
            return None
        try:
            parse_listen(text)
        except ConfigError as exc:
            where = f"[dashboard] listen = {text!r}"
            raise wrapped(f"{self.path}: {where}", exc, where_zh=f"{self.path}：{where}") from exc
        return text

    def positive(self, table: str, key: str, default: float, integer: bool = False,
                 high: float = LARGEST_SETTING) -> float:
        return self._positive(table, self.table(table).get(key, default), key, integer, high)

    def _positive(self, table: str, value: Any, key: str, integer: bool,
                  high: float = LARGEST_SETTING) -> float:
        if not is_number(value, 0, integer=integer, strict=True, high=high):
            kind, kind_zh = ("a positive integer", "正整数") if integer else \
                ("a positive number", "正数")
            if math.isfinite(high):
                kind, kind_zh = f"{kind} up to {high:,.0f}", f"不超过 {high:.0f} 的{kind_zh}"
            raise self.fail(f"[{table}] {key} = {value!r} must be {kind}",
                            f"[{table}] {key} = {value!r} 必须是{kind_zh}")
        return int(value) if integer else float(value)

    def thresholds(self) -> StatusThresholds:
        defaults = StatusThresholds()
        known = {f.name: f for f in fields(StatusThresholds)}
        self.only("status", {*known, _RETENTION_KEY})
        values: dict[str, Any] = {}
        for name in known:
            integer = isinstance(getattr(defaults, name), int)
            # The hours and the durations are bounded by what each means, and said so
            # (``at_most`` below); a count by the bound of every setting.
            bounded_below = name == "throughput_hours" or name.endswith("_s")
            high = math.inf if bounded_below else LARGEST_SETTING
            value = self.positive("status", name, getattr(defaults, name), integer, high)
            values[name] = int(value) if integer else float(value)
        self.at_most("throughput_hours", values["throughput_hours"], _MOST_HOURS, _MONTH_HOURLY)
        for name, value in values.items():
            if name.endswith("_s"):
                self.at_most(name, value, _LONGEST_S, _TEN_YEARS)
        if values["silent_s"] <= values["heartbeat_late_s"]:
            raise self.fail("[status] silent_s must be above heartbeat_late_s",
                            "[status] silent_s 必须大于 heartbeat_late_s")
        return StatusThresholds(**values)

    def at_most(self, key: str, value: float, most: float, meaning: tuple[str, str]) -> None:
        if value > most:
            raise self.fail(f"[status] {key} = {value:.15g} is more than {most:.15g} "
                            f"({meaning[0]})",
                            f"[status] {key} = {value:.15g} 超过上限 {most:.15g}（{meaning[1]}）")

    def retention(self, window_s: float) -> float:
        days = float(self.positive("status", _RETENTION_KEY, _RETENTION_DAYS, high=math.inf))
        self.at_most(_RETENTION_KEY, days, _LONGEST_S / 86400, _TEN_YEARS)
        # The lights read every heartbeat of the last lag_window_s (the lag trend).
        if days * 86400 < window_s:
            raise self.fail(f"[status] {_RETENTION_KEY} = {days:g} keeps less than "
                            f"lag_window_s = {window_s:g} seconds of heartbeats",
                            f"[status] {_RETENTION_KEY} = {days:g} 保留的心跳不足 "
                            f"lag_window_s = {window_s:g} 秒")
        return days


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare ``port`` (then loopback) → (host, port);
    ``ConfigError`` otherwise."""
    text = text.strip()
    host, _, port = text.rpartition(":") if ":" in text else ("", "", text)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port (tests)
        raise ConfigError("expected host:port such as 127.0.0.1:8430, or a port",
                          zh="应为 host:port（例如 127.0.0.1:8430）或端口号")
    return host or "127.0.0.1", int(port)

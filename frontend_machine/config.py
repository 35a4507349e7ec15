"""The agent's TOML configuration, read into typed dataclasses.

Every error is a ``ConfigError`` naming the file, the key and what is wrong, in English
and Chinese. Secrets (the broker password) are kept out of ``repr`` and logs: use
``adapters.config_files.redact``. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.amqp.parameters import (
    UnusableBrokerURL,
    broker_parameters,
    split_broker_url,
    ssl_files_under,
)
from adapters.config_files import (
    is_number,
    lang_problem,
    lang_setting,
    number_wanted,
    read_toml,
    resolve_path,
)
from adapters.sources.base import SourceFactory
from frontend_machine.config_overlaps import overlap
from frontend_machine.outbox_batches import BatchLimits
from schemas.catalog import load_catalog
from schemas.divisions import DIVISION_FORM, is_division
from schemas.errors import ConfigError, located, wrapped

__all__ = [
    "SOURCE_KINDS",
    "AgentConfig",
    "AgentSettings",
    "BrokerConfig",
    "NodeConfig",
    "OutboxConfig",
    "SourceConfig",
    "config_lang",
    "load_config",
    "source_factory",
]

# kind → "module:factory"; imported only when a source of that kind is configured, so a
# missing Oracle driver never breaks a folder-only agent.
SOURCE_KINDS: dict[str, str] = {
    "db": "adapters.sources.database:database_source",
    "folder": "adapters.sources.folder:folder_source",
}

_NODE_ID = re.compile(r"[0-9A-Za-z_\-]{1,64}")
_NOT_TABLE = ("must be a table", "必须是表（table）")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: str
    division: str
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    url: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: Path
    disk_budget_mb: float = 1024.0
    batch_max_records: int = 1000
    batch_max_kb: int = 4096
    batch_linger_seconds: float = 2.0
    stored_retention_days: float = 30.0

    @property
    def budget_bytes(self) -> int:
        return int(self.disk_budget_mb * 1024 * 1024)

    @property
    def batch_max_bytes(self) -> int:
        return self.batch_max_kb * 1024

    @property
    def batch_limits(self) -> BatchLimits:
        return BatchLimits(self.batch_max_records, self.batch_max_bytes)

    @property
    def stored_retention_seconds(self) -> float:
        return self.stored_retention_days * 86400


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """``[agent]``: loop timing; all optional."""

    poll_seconds: float = 5.0
    lang: str = "zh"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    kind: str
    name: str
    options: Mapping[str, Any]  # the table without kind and name, for the factory


@dataclass(frozen=True, slots=True)
class AgentConfig:
    path: Path
    node: NodeConfig
    outbox: OutboxConfig
    sources: tuple[SourceConfig, ...]
    broker: BrokerConfig | None = None
    agent: AgentSettings = AgentSettings()

    def source_error(self, name: str, exc: BaseException) -> ConfigError:
        """``exc`` of the source ``name``, naming this file and the source."""
        return wrapped(f"{self.path}: [[sources]] {name!r}", exc,
                      where_zh=f"{self.path}：[[sources]] {name!r}")


def load_config(path: Path) -> AgentConfig:
    """Read and check an agent config file; raises ConfigError on any problem."""
    path = Path(path)
    data = read_toml(path)
    reader = _Reader(path)
    reader.only(data, "", {"node", "broker", "outbox", "sources", "agent"})
    config = AgentConfig(
        path=path,
        node=reader.node(reader.table(data, "node", required=True)),
        outbox=reader.outbox(reader.table(data, "outbox", required=True)),
        sources=reader.sources(data.get("sources")),
        broker=reader.broker(reader.table(data, "broker")) if "broker" in data else None,
        agent=reader.agent(reader.table(data, "agent")),
    )
    shared = overlap(config.sources, config.outbox.path, lambda: load_catalog().element_codes)
    if shared is not None:
        raise located(str(path), shared.en, shared.zh)
    return config


def config_lang(path: Path, given: str | None = None) -> str:
    """The language to report in: ``given``, else ``[agent] lang`` of the file when it
    parses at all (so a config that fails its checks can still ask for English), else zh.
    """
    return given or lang_setting(path, "agent")


def source_factory(kind: str) -> SourceFactory:
    """Import the factory of a source kind on first use."""
    target = SOURCE_KINDS.get(kind)
    if target is None:
        raise ConfigError(f"unknown source kind {kind!r}; known: {', '.join(SOURCE_KINDS)}",
                          zh=f"未知的数据源类型 {kind!r}；可用：{', '.join(SOURCE_KINDS)}")
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        needed = exc.name or module_name
        raise ConfigError(f"sources of kind {kind!r} need {needed}, which is not installed: "
                          f"{exc}", zh=f"{kind!r} 类型的数据源需要 {needed}，但它未安装：{exc}"
                          ) from exc
    factory: SourceFactory = getattr(module, attribute)
    return factory


@dataclass
class _Reader:
    """Typed access to the parsed TOML that knows where it is, for error messages."""

    path: Path

    def fail(self, key: str, problem: str, problem_zh: str) -> ConfigError:
        return located(str(self.path), f"key '{key}' {problem}", f"配置项 '{key}' {problem_zh}")

    def only(self, table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(prefix + key, f"is not known here (known: {known})",
                                f"在此处无效（可用：{known}）")

    def table(self, data: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(key, f"is missing: add a [{key}] table",
                                f"缺失：请添加 [{key}] 表")
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, *_NOT_TABLE)
        return value

    def text(self, table: Mapping[str, Any], key: str, prefix: str,
             pattern: re.Pattern[str] | None = None) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(prefix + key, f"must be a non-empty string, found {value!r}",
                            f"必须是非空字符串，实际为 {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(prefix + key, f"is {value!r}, which does not match {pattern.pattern}",
                            f"为 {value!r}，不符合格式 {pattern.pattern}")
        return value

    def number(self, table: Mapping[str, Any], key: str, prefix: str, default: float,
               low: float, integer: bool = False) -> Any:
        value = table.get(key, default)
        if not is_number(value, low, integer=integer):
            wanted, wanted_zh = number_wanted(low, integer=integer)
            raise self.fail(prefix + key, f"must be {wanted}, found {value!r}",
                            f"必须是 {wanted_zh}，实际为 {value!r}")
        return value

    def resolve(self, value: str) -> Path:
        return resolve_path(self.path, value)

    def database_url(self, url: str) -> str:
        """``url`` with a relative SQLite file taken from the config's folder, as the
        gateway's ``[store] url``; a URL that does not parse is left for the source to
        report, naming itself."""
        from adapters.db_connect import engine_url, sqlite_file_under  # SQLAlchemy: db only

        try:
            parsed = engine_url(url)
        except ConfigError:
            return url
        resolved = sqlite_file_under(parsed, self.path)
        return url if resolved is parsed else resolved.render_as_string(hide_password=False)

    def node(self, table: Mapping[str, Any]) -> NodeConfig:
        self.only(table, "node.", {"id", "division", "key_file"})
        key_file = table.get("key_file")
        if key_file is not None and (not isinstance(key_file, str) or not key_file):
            raise self.fail("node.key_file", "must be a path string", "必须是路径字符串")
        division = self.text(table, "division", "node.")
        if not is_division(division):
            raise self.fail("node.division", f"is {division!r}, not {DIVISION_FORM[0]}",
                            f"为 {division!r}，不是 {DIVISION_FORM[1]}")
        return NodeConfig(
            id=self.text(table, "id", "node.", _NODE_ID),
            division=division,
            key_file=self.resolve(key_file) if key_file else None,
        )

    def broker(self, table: Mapping[str, Any]) -> BrokerConfig:
        """``[broker]``; one without a ``url`` is an error, not an agent that never sends
        (leave the whole table out to journal only)."""
        self.only(table, "broker.", {"url"})
        url = table.get("url")
        if not isinstance(url, str) or not re.match(r"amqps?://", url):
            # Never echo the value: it may hold the password.
            raise self.fail("broker.url", "must be an amqp:// or amqps:// URL",
                            "必须是 amqp:// 或 amqps:// 开头的 URL")
        try:
            parts = split_broker_url(url)
            if parts.username and parts.password is None:
                raise self.fail("broker.url", f"names the user {parts.username!r} but no "
                                "password; leave the user out, and the login is read from "
                                "node.key_file (written by `exgate node add`)",
                                f"指定了用户 {parts.username!r} 却没有密码；请去掉用户，登录信息"
                                "将从 node.key_file（由 `exgate node add` 写出）读取")
            url = ssl_files_under(url, self.path)
            broker_parameters(url)
        except UnusableBrokerURL as exc:
            raise self.fail("broker.url", f"cannot be used: {exc.why.en}",
                            f"无法使用：{exc.why.zh}") from None
        return BrokerConfig(url)

    def outbox(self, table: Mapping[str, Any]) -> OutboxConfig:
        allowed = {"path", "disk_budget_mb", "batch_max_records", "batch_max_kb",
                   "batch_linger_seconds", "stored_retention_days"}
        self.only(table, "outbox.", allowed)
        return OutboxConfig(
            path=self.resolve(self.text(table, "path", "outbox.")),
            disk_budget_mb=self.number(table, "disk_budget_mb", "outbox.", 1024, 1),
            batch_max_records=self.number(table, "batch_max_records", "outbox.", 1000, 1, True),
            batch_max_kb=self.number(table, "batch_max_kb", "outbox.", 4096, 1, True),
            batch_linger_seconds=self.number(table, "batch_linger_seconds", "outbox.", 2.0, 0),
            stored_retention_days=self.number(table, "stored_retention_days", "outbox.", 30.0,
                                              0),
        )

    def agent(self, table: Mapping[str, Any]) -> AgentSettings:
        self.only(table, "agent.", {"poll_seconds", "lang"})
        lang = table.get("lang", "zh")
        problem = lang_problem(lang)
        if problem is not None:
            raise self.fail("agent.lang", *problem)
        return AgentSettings(self.number(table, "poll_seconds", "agent.", 5.0, 0.01), lang)

    def sources(self, value: Any) -> tuple[SourceConfig, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("sources", "is missing: add at least one [[sources]] table",
                            "缺失：请至少添加一个 [[sources]] 表")
        sources: list[SourceConfig] = []
        for index, table in enumerate(value):
            prefix = f"sources[{index}]."
            if not isinstance(table, dict):
                raise self.fail(f"sources[{index}]", *_NOT_TABLE)
            kind = self.text(table, "kind", prefix)
            if kind not in SOURCE_KINDS:
                kinds = ", ".join(SOURCE_KINDS)
                raise self.fail(prefix + "kind", f"is {kind!r}; use one of {kinds}",
                                f"为 {kind!r}；请使用以下之一：{kinds}")
            name = self.text(table, "name", prefix, _NODE_ID)
            if any(s.name == name for s in sources):
                raise self.fail(prefix + "name", f"{name!r} is used by two sources",
                                f"{name!r} 被两个数据源同时使用")
            options = {k: v for k, v in table.items() if k not in ("kind", "name")}
            for key in ("path", "password_file", "oracle_client_lib"):
                if isinstance(options.get(key), str):
                    options[key] = str(self.resolve(options[key]))
            if kind == "db" and isinstance(options.get("url"), str):
                options["url"] = self.database_url(options["url"])
            sources.append(SourceConfig(kind, name, options))
        return tuple(sources)

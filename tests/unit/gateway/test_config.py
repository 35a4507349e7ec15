"""The gateway's TOML configuration: the shipped example, every key real, secrets kept out."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from adapters.config_files import redact
from gateway.config import load_config
from schemas.errors import ConfigError
from tests.tls_files import self_signed_pem

EXAMPLE = Path(__file__).parents[3] / "config" / "gateway.example.toml"


def test_the_example_loads_with_every_key_it_shows() -> None:
    config = load_config(EXAMPLE)
    assert config.division == "430100"
    assert config.broker_url == "amqps://exgate-gw-430100@mq.hn.gov.example:5671/exgate"
    assert config.store_url == "sqlite:////var/lib/exgate/store-430100.db"
    assert config.registry_path == Path("/var/lib/exgate/registry")
    assert (config.gateway.workers, config.gateway.prefetch, config.gateway.hold_seconds,
            config.gateway.drain_idle_seconds, config.gateway.poison_attempts) == \
        (2, 4, 1200, 2, 3)
    assert (config.dashboard_listen, config.dashboard_refresh_s) == (None, 30)
    assert config.status.failed_red_count == 3
    assert config.heartbeat_retention_days == 7
    assert config.lang == "zh"


def test_the_log_is_chinese_unless_the_config_asks_for_english(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "gateway.toml"
    path.write_text(text.replace('lang = "zh"\n', ""), encoding="utf-8")
    assert load_config(path).lang == "zh"
    path.write_text(text.replace('lang = "zh"', 'lang = "en"'), encoding="utf-8")
    assert load_config(path).lang == "en"


@pytest.mark.parametrize(("value", "shown"), [('"fr"', "'fr'"), ('"ZH"', "'ZH'"), ("1", "1")])
def test_a_lang_other_than_zh_or_en_is_a_config_error_naming_the_key(
        tmp_path: Path, value: str, shown: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace('lang = "zh"', f"lang = {value}"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value) == f'{path}: [gateway] lang is {shown}; use "zh" or "en"'
    assert refused.value.message("zh") == \
        f'{path}：[gateway] lang 为 {shown}；请使用 "zh" 或 "en"'


def test_a_relative_sqlite_store_lies_beside_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'url = "sqlite:////var/lib/exgate/store-430100.db"', 'url = "sqlite:///store.db"')
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir("/")
    assert load_config(path).store_url == f"sqlite:///{tmp_path / 'store.db'}"


def test_the_commented_out_keys_of_the_example_are_real_too(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in ("password_file", "listen"):
        assert f"# {key} = " in text
        text = text.replace(f"# {key} = ", f"{key} = ")
    text = text.replace('url = "sqlite:////var/lib/exgate/store-430100.db"\n', "")
    text = text.replace("# url = ", "url = ").replace('"/etc/exgate/broker.password"',
                                                      f'"{secret}"')
    text = text.replace('"/etc/exgate/store.password"', f'"{secret}"')
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.broker_url == "amqps://exgate-gw-430100:s3cret@mq.hn.gov.example:5671/exgate"
    # The driver exgate uses is named: postgresql:// would mean psycopg2 to SQLAlchemy.
    assert config.store_url == \
        "postgresql+psycopg://exgate:s3cret@db.hn.gov.example/supervision"
    assert config.dashboard_listen == "127.0.0.1:8430"
    assert "s3cret" not in repr(config)
    assert "s3cret" not in redact(config.broker_url)


@pytest.mark.parametrize(("table", "typo"), [("level", "divison = \"430100\""),
                                             ("broker", "pasword_file = \"x\""),
                                             ("store", "uri = \"sqlite:///x.db\""),
                                             ("registry", "folder = \"r\""),
                                             ("gateway", "worker = 8"),
                                             ("dashboard", "listen_on = \"8430\"")])
def test_a_misspelt_key_is_a_config_error_naming_it(tmp_path: Path, table: str,
                                                    typo: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(f"[{table}]\n", f"[{table}]\n{typo}\n")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"\[{table}\].*{typo.split(' ')[0]}"):
        load_config(path)


def test_poison_attempts_is_read_and_kept_by_workers_given_on_the_command_line(
        tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("poison_attempts = 3",
                                                      "poison_attempts = 5")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_config(path).with_workers(8).gateway
    assert (settings.workers, settings.prefetch, settings.poison_attempts) == (8, 8, 5)


@pytest.mark.parametrize("value", ["0", "2.5", "-1", "true"])
def test_poison_attempts_must_be_a_positive_integer(tmp_path: Path, value: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("poison_attempts = 3",
                                                      f"poison_attempts = {value}")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[gateway\] poison_attempts"):
        load_config(path)


@pytest.mark.parametrize(("line", "value"), [
    ("hold_seconds = 1200", "nan"), ("hold_seconds = 1200", "inf"),
    ("heartbeat_retention_days = 7", "inf"), ("heartbeat_retention_days = 7", "nan"),
])
def test_nan_and_infinity_are_config_errors(tmp_path: Path, line: str, value: str) -> None:
    key = line.split(" = ")[0]
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace(line, f"{key} = {value}"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=key):
        load_config(path)


def test_a_number_past_any_meaning_is_a_config_error_saying_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        "hold_seconds = 1200", "hold_seconds = 1e12"), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(
            "[gateway] hold_seconds = 1000000000000.0 must be a positive number up to "
            "1,000,000,000")):
        load_config(path)


@pytest.mark.parametrize(("line", "value", "said"), [
    # A count of [status] kept no bound; an integer past a float's range was a traceback.
    ("failed_red_count = 3", str(10**18), "[status] failed_red_count = {value} must be a"
                                        " positive integer up to 1,000,000,000"),
    ("hold_seconds = 1200", "1" + "0" * 400, "[gateway] hold_seconds = {value} must be a"
                                             " positive number up to 1,000,000,000"),
])
def test_a_huge_integer_is_a_config_error_saying_the_bound(
        tmp_path: Path, line: str, value: str, said: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        line, f"{line.split(' = ')[0]} = {value}"), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(said.format(value=value))):
        load_config(path)


@pytest.mark.parametrize(("table", "lang", "said"), [
    ("broker", "en", "[broker] password_file {file} is not UTF-8 text (byte 3)"),
    ("store", "zh", "[store] password_file {file} 不是 UTF-8 文本（第 3 字节）")])
def test_a_password_file_not_in_utf_8_is_a_config_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, lang: str,
        said: str) -> None:
    monkeypatch.delenv("EXGATE_BROKER_PASSWORD", raising=False)
    monkeypatch.delenv("EXGATE_STORE_PASSWORD", raising=False)
    secret = tmp_path / "secret"
    secret.write_bytes(b"ab" + "口令".encode("gb18030"))
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        f"[{table}]\n", f'[{table}]\npassword_file = "{secret}"\n')
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert said.format(file=secret) in refused.value.message(lang)


def test_a_password_file_not_there_is_said_in_chinese_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXGATE_BROKER_PASSWORD", raising=False)
    missing = tmp_path / "broker.password"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "[broker]\n", f'[broker]\npassword_file = "{missing}"\n')
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    said = refused.value.message("zh")
    assert said.endswith(f"[broker] password_file {missing}：无法读取：文件不存在")
    assert "No such file" not in said


def example_with_broker_url(tmp_path: Path, url: str) -> Path:
    """The shipped example with its [broker] url replaced by ``url``."""
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        'url = "amqps://exgate-gw-430100@mq.hn.gov.example:5671/exgate"', f'url = "{url}"'),
        encoding="utf-8")
    return path


def test_a_broker_url_pika_refuses_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    path = example_with_broker_url(
        tmp_path, "amqps://exgate-gw-430100@mq.hn.gov.example:5671/exgate?cacertfile=/ca.pem")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}: [broker] url cannot be used: pika refuses it: "
                                 f"Unknown URL parameter: 'cacertfile'")
    assert "[broker] url 无法使用：pika 不接受它" in caught.value.message("zh")


def test_a_password_written_unencoded_in_the_broker_url_is_refused_without_a_word_of_it(
        tmp_path: Path) -> None:
    path = example_with_broker_url(
        tmp_path, "amqps://exgate-gw-430100:s3cr?et@mq.hn.gov.example:5671/exgate")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    said = str(caught.value) + caught.value.message("zh")
    assert "[broker] url cannot be used: its password holds an unencoded" in said
    assert "s3cr" not in said


def test_a_relative_ca_file_of_the_broker_url_lies_beside_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.pem").write_bytes(self_signed_pem())
    written = "amqps://exgate-gw-430100@mq.hn.gov.example:5671/exgate"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        f'url = "{written}"', f"url = \"{written}?ssl_options={{'ca_certs':'ca.pem'}}\"")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir("/")
    assert f"'ca_certs': '{tmp_path / 'ca.pem'}'" in unquote(load_config(path).broker_url)

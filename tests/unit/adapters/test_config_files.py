"""Passwords never reach a log line or an error message."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config_files import read_password_file, redact
from adapters.db_connect import engine_url
from schemas.errors import ConfigError


@pytest.mark.parametrize("password", ["Tr0ub4dor@x9", "a:b", "p/ss", "p#ss@", "@:/?#@"])
@pytest.mark.parametrize("scheme", ["amqp", "amqps", "postgresql+psycopg"])
def test_redact_masks_the_whole_password_whatever_it_holds(scheme: str, password: str) -> None:
    url = f"{scheme}://gateway:{password}@127.0.0.1:5672/exgate"
    assert redact(url) == f"{scheme}://gateway:***@127.0.0.1:5672/exgate"


@pytest.mark.parametrize("url", ["amqp://gateway@mq/exgate", "amqp://mq:5672/exgate",
                                 "sqlite:///var/lib/exgate/store.db"])
def test_redact_leaves_a_url_without_a_password_alone(url: str) -> None:
    assert redact(url) == url


@pytest.mark.parametrize(("url", "shown"), [
    ("exgate:s3cr@t@db.example:5432/front", "exgate:***@db.example:5432/front"),
    ("postgresql//exgate:s3cr@t@db/front", "postgresql//exgate:***@db/front"),
])
def test_redact_masks_a_password_in_a_url_that_lost_its_scheme(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(("url", "shown"), [
    ("oracle+cx_oracle://scott:Tiger99@dbhost:1521/?service_name=QZJ",
     "oracle+cx_oracle://scott:***@dbhost:1521/?service_name=QZJ"),
    ("postgres ql://u:Secret1@h/db", "postgres ql://u:***@h/db"),
    ("u:Secret1@h/db?next=http://x", "u:***@h/db?next=http://x"),
])
def test_redact_masks_the_password_whatever_the_scheme_is_spelt(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize("url", ["postgresql://exgate:s3cr@t@db:54x2/front",
                                 "oracle+cx_oracle://exgate:s3cr@t@db:15x21/?service_name=Q",
                                 "exgate:s3cr@t@db/front"])
def test_a_database_url_that_does_not_parse_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        engine_url(url)
    for text in (str(caught.value), caught.value.message("zh")):
        assert "not a database URL" in text or "不是数据库 URL" in text
        assert "s3cr" not in text and "exgate:***@" in text


@pytest.mark.parametrize("url", ["mysql://exgate:Hn@2024#pwd@127.0.0.1:3306/front",
                                 "postgresql://exgate:a@b@db/store"])
def test_a_password_holding_an_at_sign_is_refused_before_it_reaches_a_driver(url: str) -> None:
    # SQLAlchemy ends the password at its first '@' and takes the rest for the host,
    # which every connection error then printed.
    with pytest.raises(ConfigError) as caught:
        engine_url(url)
    assert "%40" in str(caught.value) and "%40" in caught.value.message("zh")
    for text in (str(caught.value), caught.value.message("zh")):
        assert "2024#pwd" not in text and "a@b" not in text and ":***@" in text


def test_a_percent_encoded_at_sign_is_the_password_s() -> None:
    url = engine_url("mysql://exgate:Hn%402024@127.0.0.1:3306/front")
    assert (url.password, url.host) == ("Hn@2024", "127.0.0.1")


@pytest.mark.parametrize("text", ["", "\n", "  \t\r\n"])
def test_a_password_file_holding_no_password_is_a_config_error_naming_it(
        tmp_path: Path, text: str) -> None:
    path = tmp_path / "broker.password"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_password_file(path, "[broker] password_file")
    assert str(caught.value) == (f"[broker] password_file {path} holds no password: write "
                                 "the password in it")
    assert caught.value.message("zh") == f"[broker] password_file {path} 中没有口令：请在其中写入口令"


def test_a_password_file_keeps_inner_spaces_and_loses_the_surrounding_ones(tmp_path: Path) -> None:
    path = tmp_path / "db.password"
    path.write_text(" pass word\n", encoding="utf-8")
    assert read_password_file(path, "'password_file'") == "pass word"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://exgate@db/front?password=QueryS3cret",
     "postgresql://exgate@db/front?password=***"),
    ("mysql://u@db/front?charset=utf8mb4&PASSWD=s%40cret&ssl_key=/k.pem",
     "mysql://u@db/front?charset=utf8mb4&PASSWD=***&ssl_key=***"),
    ("oracle://u:pw@db/?service_name=orcl&wallet_password=w#frag",
     "oracle://u:***@db/?service_name=orcl&wallet_password=***#frag"),
    ("postgresql://u@db/front?sslmode=verify-full", "postgresql://u@db/front?sslmode=verify-full"),
])
def test_redact_masks_a_secret_given_as_a_query_option(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_secret_query_option_in_a_message_is_masked_and_the_rest_kept() -> None:
    """The mask ran to the end of the text: the driver's own words after the URL went too."""
    said = redact("cannot connect to 'postgresql://h/db?password=s3cret&x=1': timeout expired")
    assert said == "cannot connect to 'postgresql://h/db?password=***&x=1': timeout expired"
    said = redact("bad option in oracle://h/db?wallet_password=s3cret (DPY-4011)")
    assert said == "bad option in oracle://h/db?wallet_password=*** (DPY-4011)"

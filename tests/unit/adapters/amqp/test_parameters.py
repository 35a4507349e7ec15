"""A broker URL pika refuses is a configuration error saying why, naming the file its
ssl_options cannot load, and never repeating the URL (its query may hold a password)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from adapters.amqp.parameters import UnusableBrokerURL, broker_parameters


def with_ssl(options: dict[str, str]) -> str:
    return f"amqps://node:s3cret@mq.example:5671/exgate?ssl_options={quote(json.dumps(options))}"


def test_a_usable_url_gives_pikas_parameters() -> None:
    params = broker_parameters("amqp://node:s3cret@127.0.0.1:5673/exgate?heartbeat=10")
    assert (params.host, params.port, params.virtual_host, params.heartbeat) == \
        ("127.0.0.1", 5673, "exgate", 10)


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(UnusableBrokerURL) as caught:
        broker_parameters(with_ssl({"ca_certs": str(missing)}))
    assert caught.value.why.en == f"a file its ssl_options names does not exist: {missing}"
    assert caught.value.message("zh") == \
        f"消息服务器 URL 无法使用：ssl_options 指定的文件不存在：{missing}"
    assert "s3cret" not in str(caught.value) + caught.value.message("zh")


def test_a_ca_file_that_is_no_certificate_says_so(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(UnusableBrokerURL) as caught:
        broker_parameters(with_ssl({"ca_certs": str(ca)}))
    assert str(caught.value).startswith("the broker URL cannot be used: the TLS files its "
                                        "ssl_options names cannot be loaded (")


def test_ssl_options_without_a_ca_is_refused_in_pikas_words() -> None:
    with pytest.raises(UnusableBrokerURL, match="cafile, capath and cadata cannot be all "
                                                "omitted"):
        broker_parameters(with_ssl({"certfile": "/etc/exgate/node.pem"}))


@pytest.mark.parametrize(("query", "said"), [
    ("bogus=1", "pika refuses it: Unknown URL parameter: 'bogus'"),
    ("heartbeat=abc", "pika refuses it: Invalid heartbeat value 'abc'"),
    ("ssl_options=notjson", "pika refuses it: malformed node or string"),
])
def test_a_query_pika_refuses_is_said_in_its_words(query: str, said: str) -> None:
    with pytest.raises(UnusableBrokerURL) as caught:
        broker_parameters(f"amqp://node:s3cret@mq.example/exgate?{query}")
    assert caught.value.why.en.startswith(said)
    assert caught.value.why.zh.startswith("pika 不接受它：")


def test_a_key_given_twice_is_refused_without_its_values() -> None:
    with pytest.raises(UnusableBrokerURL) as caught:
        broker_parameters("amqp://mq.example/?ssl_options={'password':'kp1'}"
                          "&ssl_options={'password':'kp2'}")
    assert "Expected exactly one value for URL parameter ssl_options" in str(caught.value)
    assert "kp1" not in str(caught.value) and "kp2" not in str(caught.value)


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(UnusableBrokerURL, match="Port out of range"):
        broker_parameters("amqp://node:s3cret@mq.example:99999/")


@pytest.mark.parametrize("url", [
    "amqp://gw:s3cr/et@mq.hn.gov:5672/exgate",  # pika: "Port could not be cast ... 's3cr'"
    "amqp://gw:s3cr?et@mq.hn.gov:5672/exgate",
    "amqp://gw:s3c#ret@mq.hn.gov:5672/exgate",
    "amqp://gw:s3cret＠@mq.hn.gov:5672/exgate",  # urlsplit's error quotes the netloc
    "amqp://gw:s3@cr/et@mq.hn.gov:5672/exgate",  # pika would dial the host "cr"
])
def test_a_password_pika_would_misread_is_refused_without_a_word_of_it(url: str) -> None:
    with pytest.raises(UnusableBrokerURL) as caught:
        broker_parameters(url)
    said = str(caught.value) + caught.value.message("zh")
    assert "its password holds an unencoded '@', '/', '?' or '#', or a full-width " \
           "character" in said
    assert "s3" not in said  # every password here starts so


def test_the_same_password_percent_encoded_is_used() -> None:
    params = broker_parameters("amqp://gw:s3%40cr%2Fet@mq.hn.gov:5672/exgate")
    assert (params.host, params.credentials.password) == ("mq.hn.gov", "s3@cr/et")


@pytest.mark.parametrize(("url", "said"), [
    ("amqp://u:s3cret@[::1/", "its host or port does not parse: Invalid IPv6 URL"),
    ("amqp://u:s3cret@mq：5671/", "its host or port does not parse: netloc 'u:***@mq：5671' "
                                 "contains invalid characters under NFKC normalization"),
])
def test_a_host_that_does_not_parse_is_said_with_the_password_masked(url: str,
                                                                     said: str) -> None:
    with pytest.raises(UnusableBrokerURL) as caught:
        broker_parameters(url)
    assert caught.value.why.en == said


@pytest.mark.parametrize("options", ["[1]", "'abc'"])
def test_ssl_options_that_are_no_dict_are_refused_not_raised(options: str) -> None:
    with pytest.raises(UnusableBrokerURL, match=r"pika refuses it: '(list|str)' object has no "
                                                r"attribute 'get'"):
        broker_parameters(f"amqps://mq.example/?ssl_options={options}")

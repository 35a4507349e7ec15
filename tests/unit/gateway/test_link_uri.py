"""An upstream URI is checked as RabbitMQ's links read it: what they would ignore (and so
run unencrypted or unverified) is refused, naming the key; a shovel's own connection to
the upstream makes the same TLS demands."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from gateway.federation import link_down, link_up
from gateway.link_uri import parse_upstream, shown_uri
from gateway.mgmt_api import ManagementApi
from schemas.errors import ConfigError
from tests.tls_files import make_authority

HOST = "amqps://link:s3cret@county-mq:5671/exgate"


@pytest.mark.parametrize(("query", "en", "zh"), [
    ("ssl_options={'ca_certs':'/ca.pem'}", "ssl_options is pika's form, which RabbitMQ's "
     "links ignore", "ssl_options 是 pika 的写法"),
    ("cacert=/ca.pem", "RabbitMQ's links do not read 'cacert' (they read auth_mechanism, "
     "cacertfile,", "RabbitMQ 的链路不读取 'cacert'"),
    ("heartbeat=5s", "heartbeat='5s' is not a whole number", "heartbeat='5s' 不是整数"),
    ("verify=verify_maybe", "verify='verify_maybe': choose verify_peer | verify_none",
     "请选择 verify_peer | verify_none"),
    ("cacertfile=ca.pem", "cacertfile='ca.pem' must be an absolute path", "必须是绝对路径"),
    ("verify=verify_peer", "verify=verify_peer needs cacertfile=", "需要 cacertfile="),
    ("cacertfile=/ca.pem&certfile=/client.pem", "needs both certfile= and keyfile=",
     "同时给出 certfile= 和 keyfile="),
    ("cacertfile=/a.pem&cacertfile=/b.pem", "cacertfile is given twice", "出现了两次"),
    ("server_name_indication=", "server_name_indication= is empty", "为空"),
])
def test_what_rabbitmq_would_ignore_or_refuse_is_a_config_error_naming_it(
        query: str, en: str, zh: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_upstream(f"{HOST}?{query}")
    assert str(refused.value).startswith("--upstream: ")
    assert en in str(refused.value) and zh in refused.value.message("zh")
    assert "s3cret" not in str(refused.value) + refused.value.message("zh")


def test_tls_keys_under_amqp_are_refused_the_link_would_run_unencrypted() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_upstream("amqp://link:pw@county-mq:5672/exgate?cacertfile=/ca.pem"
                       "&verify=verify_peer")
    assert str(refused.value) == (
        "--upstream: cacertfile, verify apply to amqps:// only: with amqp:// RabbitMQ "
        "ignores them and the link runs unencrypted")


def test_a_vhost_holding_a_slash_is_refused() -> None:
    with pytest.raises(ConfigError, match="holds a '/': write it as %2F"):
        parse_upstream("amqp://link:pw@county-mq:5672/ex/gate")


@pytest.mark.parametrize(("uri", "verified"), [
    ("amqp://link:pw@county-mq:5672/exgate?heartbeat=10&connection_timeout=5000", False),
    (HOST, False),
    (f"{HOST}?cacertfile=/ca.pem&verify=verify_none", False),
    (f"{HOST}?cacertfile=/ca.pem&verify=verify_peer&server_name_indication=county-mq"
     "&certfile=/c.pem&keyfile=/c.key&password=kpw&depth=2&fail_if_no_peer_cert=true"
     "&auth_mechanism=external&auth_mechanism=plain", True),
])
def test_what_rabbitmq_reads_is_taken_as_written(uri: str, verified: bool) -> None:
    upstream = parse_upstream(uri)
    assert (upstream.uri, upstream.verified) == (uri, verified)


def test_shown_uri_masks_the_login_and_the_key_password() -> None:
    shown = shown_uri(f"{HOST}?cacertfile=/ca.pem&password=keypw&verify=verify_peer")
    assert shown == ("amqps://link:***@county-mq:5671/exgate?cacertfile=/ca.pem&password=***"
                     "&verify=verify_peer")


def test_the_shovels_own_connection_verifies_as_the_uri_says(tmp_path: Path) -> None:
    files = make_authority().sign_server(tmp_path, "county-mq")
    key_pair = f"&certfile={files.certificate}&keyfile={files.key}"
    verified = parse_upstream(f"{HOST}?cacertfile={files.ca}&verify=verify_peer"
                              f"&server_name_indication=mq.county{key_pair}").pika_parameters()
    assert verified.ssl_options is not None
    assert verified.ssl_options.server_hostname == "mq.county"
    context = verified.ssl_options.context
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert len(context.get_ca_certs()) == 1
    assert (verified.host, verified.port, verified.virtual_host) == ("county-mq", 5671, "exgate")

    unverified = parse_upstream(f"{HOST}?cacertfile={files.ca}").pika_parameters()
    assert unverified.ssl_options is not None
    assert unverified.ssl_options.context.verify_mode == ssl.CERT_NONE
    assert unverified.ssl_options.server_hostname == "county-mq"  # SNI: the URI's host
    assert parse_upstream("amqp://link:pw@county-mq/exgate").pika_parameters() \
        .ssl_options is None


def test_a_tls_file_that_is_not_pem_is_named_as_unloadable(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"its TLS files do not load \(.+\): PEM files"):
        parse_upstream(f"{HOST}?cacertfile={ca}&verify=verify_peer").pika_parameters()


class Untouchable(ManagementApi):
    def _send(self, method: str, path: str, body: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{method} {path}: nothing is asked of a broker first")


@pytest.mark.parametrize("direction", ["up", "down"])
def test_links_refuse_a_bad_query_before_anything_changes(direction: str) -> None:
    api = Untouchable("http://127.0.0.1:1", "admin", "pw")
    link = link_up if direction == "up" else link_down
    with pytest.raises(ConfigError, match="ssl_options is pika's form"):
        link(api, f"{HOST}?ssl_options={{'ca_certs':'/ca.pem'}}", "430100")

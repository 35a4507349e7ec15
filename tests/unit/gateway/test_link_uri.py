"""An upstream URI is checked as RabbitMQ's links read it: what they would ignore (and so
run unencrypted or unchecked) or refuse is a config error naming the key, before anything
is declared; what a link checks of the upstream is said; a shovel's own connection to the
upstream makes the same TLS demands."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pika
import pytest

from gateway.federation import link_down, link_up
from gateway.link_uri import mask_key_password, parse_upstream, shown_uri
from gateway.mgmt_api import ManagementApi
from schemas.errors import ConfigError
from tests.tls_files import make_authority

HOST = "amqps://link:s3cret@county-mq:5671/exgate"


@pytest.mark.parametrize(("query", "en", "zh"), [
    ("ssl_options={'ca_certs':'/ca.pem'}", "ssl_options is pika's form, which RabbitMQ's "
     "links refuse", "ssl_options 是 pika 的写法"),
    ("cacert=/ca.pem", "RabbitMQ's links do not read 'cacert' (they read auth_mechanism, "
     "cacertfile,", "RabbitMQ 的链路不读取 'cacert'"),
    # amqp_uri never decodes a key: this one would be ignored, and the link left unchecked.
    ("verif%79=verify_peer&cacertfile=/ca.pem", "do not read 'verif%79'", "键名不做百分号解码"),
    ("heartbeat=5s", "heartbeat='5s' is not a non-negative whole number", "非负整数"),
    ("heartbeat=1%30", "heartbeat='1%30' is not a non-negative whole number", "非负整数"),
    ("heartbeat=-1", "heartbeat='-1' is not a non-negative whole number", "非负整数"),
    ("heartbeat", "heartbeat has no value", "heartbeat 没有值"),
    ("verify=verify%5Fpeer", "verify='verify%5Fpeer': choose verify_peer | verify_none",
     "请选择 verify_peer | verify_none"),
    ("cacertfile=ca.pem", "cacertfile='ca.pem' must be an absolute path", "必须是绝对路径"),
    ("cacertfile=/pki/50%.pem", "holds a '%' that is not %XX", "不是 %XX 形式"),
    ("verify=verify_peer", "verify=verify_peer needs cacertfile=", "需要 cacertfile="),
    ("cacertfile=/ca.pem&certfile=/client.pem", "needs both certfile= and keyfile=",
     "同时给出 certfile= 和 keyfile="),
    ("cacertfile=/a.pem&cacertfile=/b.pem", "cacertfile is given twice", "出现了两次"),
    ("server_name_indication=", "server_name_indication has no value", "没有值"),
    ("certfile=/c.pem&keyfile=/c.key&password=kpw", "also replaces the login password",
     "同时当作登录口令"),
    ("fail_if_no_peer_cert=true", "fail_if_no_peer_cert is a server's option", "服务端选项"),
])
def test_what_rabbitmq_would_ignore_or_refuse_is_a_config_error_naming_it(
        query: str, en: str, zh: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_upstream(f"{HOST}?{query}")
    assert str(refused.value).startswith("--upstream: ")
    assert en in str(refused.value) and zh in refused.value.message("zh")
    said = str(refused.value) + refused.value.message("zh")
    assert "s3cret" not in said and "kpw" not in said


@pytest.mark.parametrize(("uri", "en"), [
    ("amqp://link:pw@county-mq:5672/exgate?cacertfile=/ca.pem&verify=verify_peer",
     "cacertfile, verify apply only to amqps://: with amqp:// RabbitMQ ignores them and the "
     "link runs unencrypted"),
    ("amqp://link:pw@county-mq:5672/ex/gate", "its virtual host is empty or holds a '/'"),
    ("amqps://link:pw@county-mq:5671/", "its virtual host is empty or holds a '/'"),
    ("amqps://link:pa:ss@county-mq:5671/exgate", "its password holds an unencoded ':'"),
    ("http://link:pw@county-mq:5671/exgate", "it must look like amqps://USER@HOST:PORT/VHOST"),
])
def test_a_uri_rabbitmq_would_read_otherwise_is_refused(uri: str, en: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_upstream(uri)
    assert en in str(refused.value)


@pytest.mark.parametrize(("uri", "tls"), [
    ("amqp://link:pw@county-mq:5672/exgate?heartbeat=10&connection_timeout=5000", "none"),
    ("amqp://link:pw@county-mq:5672", "none"),  # no path: the default vhost, for both
    (HOST, "unverified"),
    (f"{HOST}?cacertfile=/ca.pem&verify=verify_none", "unverified"),
    (f"{HOST}?cacertfile=/ca.pem&verify=verify_peer", "verified"),  # SNI: the host's name
    ("AMQPS://link:pw@county-mq:5671/exgate?cacertfile=/ca.pem&verify=verify_peer",
     "verified"),
    # An address sends no server name: the CA's certificates all pass, whatever their name.
    ("amqps://link:pw@127.0.0.1:5671/exgate?cacertfile=/ca.pem&verify=verify_peer", "chain"),
    ("amqps://link:pw@[::1]:5671/exgate?cacertfile=/ca.pem&verify=verify_peer", "chain"),
    (f"{HOST}?cacertfile=/ca.pem&verify=verify_peer&server_name_indication=disable", "chain"),
    ("amqps://link:pw@127.0.0.1:5671/exgate?cacertfile=/ca.pem&verify=verify_peer"
     "&server_name_indication=county-mq&certfile=/c.pem&keyfile=/c.key&depth=2"
     "&auth_mechanism=external&auth_mechanism=plain", "verified"),
])
def test_what_a_link_checks_is_said(uri: str, tls: str) -> None:
    upstream = parse_upstream(uri)
    assert (upstream.uri, upstream.tls) == (uri, tls)


def test_paths_and_the_server_name_are_percent_decoded_and_plus_is_kept(
        tmp_path: Path) -> None:
    folder = tmp_path / "a+b c"
    files = make_authority().sign_server(folder, "county-mq")
    encoded = str(files.ca).replace(" ", "%20")
    upstream = parse_upstream(f"{HOST}?cacertfile={encoded}&verify=verify_peer"
                              "&server_name_indication=county%2Dmq")
    assert upstream.server_name == "county-mq"
    assert upstream.pika_parameters().ssl_options is not None  # the file, '+' and all


def test_passwords_are_masked_as_written_escaped_or_quoted_by_erlang() -> None:
    assert shown_uri(f"{HOST}?cacertfile=/ca.pem&PASSWORD=keypw&verify=verify_peer") == (
        "amqps://link:***@county-mq:5671/exgate?cacertfile=/ca.pem&PASSWORD=***"
        "&verify=verify_peer")
    said = ('400 {"reason":"...verify=verify_peer&amp;password=KeySecret9 '
            '{invalid_ssl_parameter,password,"KeySecret9"} [{"password","KeySecret9"}]"}')
    assert "KeySecret9" not in mask_key_password(said)
    assert repr(parse_upstream(HOST)) == "LinkUpstream('amqps://link:***@county-mq:5671/exgate')"


def test_the_shovels_own_connection_checks_what_the_link_checks(tmp_path: Path) -> None:
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

    chain = parse_upstream(f"{HOST}?cacertfile={files.ca}&verify=verify_peer"
                           "&server_name_indication=disable").pika_parameters()
    assert chain.ssl_options is not None and chain.ssl_options.server_hostname is None
    assert (chain.ssl_options.context.verify_mode, chain.ssl_options.context.check_hostname) \
        == (ssl.CERT_REQUIRED, False)

    unverified = parse_upstream(f"{HOST}?cacertfile={files.ca}").pika_parameters()
    assert unverified.ssl_options is not None
    assert unverified.ssl_options.context.verify_mode == ssl.CERT_NONE
    assert unverified.ssl_options.server_hostname == "county-mq"  # SNI: the URI's host

    plain = parse_upstream("amqp://link:pw@county-mq/exgate").pika_parameters()
    assert plain.ssl_options is None
    assert isinstance(plain.credentials, pika.PlainCredentials)
    external = parse_upstream(f"{HOST}?cacertfile={files.ca}{key_pair}"
                              "&auth_mechanism=external").pika_parameters()
    assert isinstance(external.credentials, pika.credentials.ExternalCredentials)


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


@pytest.mark.parametrize(("url", "said"), [
    ("amqps://link:s3cret@county-mq:5671/exgate?cacertfile=/nowhere/ca.pem"
     "&verify=verify_peer",
     "--upstream: /nowhere/ca.pem cannot be read here; exgate declares the shovel's source "
     "queue itself and needs the same files on this machine"),
    ("amqp://link:s3cret@county-mq:99999/exgate",
     "--upstream: its host or port does not parse: Port out of range 0-65535"),
])
def test_an_upstream_a_shovel_cannot_dial_is_refused_before_anything_changes(
        url: str, said: str) -> None:
    api = Untouchable("http://127.0.0.1:1", "admin", "pw")
    with pytest.raises(ConfigError) as refused:
        link_up(api, url, "430102", via="shovel")
    assert str(refused.value) == said
    assert "s3cret" not in str(refused.value) + refused.value.message("zh")

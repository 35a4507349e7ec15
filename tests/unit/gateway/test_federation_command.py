"""``exgate broker link`` says when a link cannot work: no password, or not running."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import federation_command
from gateway.federation import PASSWORD_ENV, LinkResult, with_password
from gateway.federation_command import run_link
from gateway.link_uri import TlsCheck
from gateway.mgmt_api import ManagementApi
from schemas.errors import ConfigError

UPSTREAM = "amqp://link-up@127.0.0.1:5672/%2F"


def test_a_user_without_a_password_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError, match=PASSWORD_ENV) as refused:
        with_password(UPSTREAM)
    assert "密码" in refused.value.message("zh")
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    assert with_password(UPSTREAM) == "amqp://link-up:pw@127.0.0.1:5672/%2F"
    assert with_password("amqp://u:inline@h/") == "amqp://u:inline@h/"


def test_an_ipv6_upstream_keeps_its_brackets_and_a_broken_one_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "p@ss")
    assert with_password("amqp://link@[::1]:5672/v") == "amqp://link:p%40ss@[::1]:5672/v"
    for broken in ("amqp://link@[::1:5672/v", "amqp://link@h:port/v", "amqp://link@h:99999/v"):
        with pytest.raises(ConfigError, match="must look like") as refused:
            with_password(broken)
        assert "应形如" in refused.value.message("zh")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_link_without_a_password_exits_2_before_touching_the_broker(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        lang: str) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)

    def no_broker(*args: Any) -> ManagementApi:
        raise AssertionError("the broker must not be touched")

    monkeypatch.setattr(federation_command, "admin_api", no_broker)
    assert run_link(upstream=UPSTREAM, division="430102", lang=lang) == 2
    out, err = capsys.readouterr()
    assert out == "" and PASSWORD_ENV in err


class FakeApi:
    """The management API of a receiving broker whose link never comes up."""

    def __init__(self, state: str, error: str) -> None:
        self.state, self.error = state, error

    def get(self, path: str) -> Any:
        if path.startswith("federation-links/"):
            return [{"upstream": "exgate-up-430102", "exchange": x, "status": self.state,
                     "error": self.error}
                    for x in ("exgate.records.from.430102", "exgate.status.from.430102")]
        return []


@pytest.mark.parametrize(("lang", "words"), [("zh", "未进入运行状态"), ("en", "not running")])
@pytest.mark.parametrize("error", ["econnrefused", "{auth_failure,\"ACCESS_REFUSED\"}"])
def test_a_link_that_does_not_run_exits_1_with_its_state(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lang: str,
        words: str, error: str) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    monkeypatch.setattr(federation_command, "admin_api", lambda *a: FakeApi("error", error))
    declared = LinkResult("up", "federation", "430102", "amqp://link-up@127.0.0.1:5672/%2F",
                          ("exgate-up-430102",), 1)
    monkeypatch.setattr(federation_command, "link_up", lambda *a, **k: declared)
    assert run_link(upstream=UPSTREAM, division="430102", lang=lang, wait=0.3) == 1
    out, err = capsys.readouterr()
    assert out == ""  # never "linked up"
    assert words in err and error in err
    assert "exgate-up-430102:exgate.records.from.430102" in err
    assert "wrong" not in err


def test_a_running_link_exits_0(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    monkeypatch.setattr(federation_command, "admin_api", lambda *a: FakeApi("running", ""))
    declared = LinkResult("up", "federation", "430102", "amqp://link-up@127.0.0.1:5672/%2F",
                          ("exgate-up-430102",), 1)
    monkeypatch.setattr(federation_command, "link_up", lambda *a, **k: declared)
    assert run_link(upstream=UPSTREAM, division="430102", lang="en", wait=0.3) == 0
    assert "linked up (federation)" in capsys.readouterr().out


@pytest.mark.parametrize(("tls", "lang", "warned"), [
    ("unverified", "zh", "警告：链路已加密，但不校验上游的证书"),
    ("unverified", "en", "warning: the link is encrypted but does not check the upstream's"),
    ("chain", "zh", "警告：链路只校验上游证书由该 CA 签发，不校验证书中的主机名"),
    ("chain", "en", "warning: the link checks that the upstream's certificate comes from the "
                    "CA, not that it names the upstream"),
    ("verified", "en", None),
    ("none", "en", None),
])
def test_a_link_that_does_not_check_the_upstream_fully_is_warned_of(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tls: TlsCheck,
        lang: str, warned: str | None) -> None:
    monkeypatch.setattr(federation_command, "admin_api", lambda *a: FakeApi("running", ""))
    declared = LinkResult("up", "federation", "430102", "amqps://link-up:***@mq:5671/%2F",
                          ("exgate-up-430102",), 1, tls)
    monkeypatch.setattr(federation_command, "link_up", lambda *a, **k: declared)
    assert run_link(upstream="amqps://link-up:pw@mq:5671/%2F", division="430102", lang=lang,
                    wait=0.3) == 0
    err = capsys.readouterr().err
    assert (warned in err) if warned else err == ""

"""Private broker folders and the commands that name one (no RabbitMQ needed).

The admin password in ``rabbitmq.conf`` stays unreadable to other users, and a mistyped
``--base`` is an error, never a node with made-up ports.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest

from adapters.sealing import generate_node_keys
from gateway import federation, node_command
from gateway.broker_node import DEFAULT_PLUGINS, LocalBroker
from gateway.federation_command import run_link
from gateway.node_command import run_broker, run_node
from gateway.registry import Registry
from schemas.errors import ConfigError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A base folder the operator made beforehand, 0755, with an old 0644 config."""
    tmp_path.chmod(0o755)  # the node user must reach it, as under /tmp
    base = tmp_path / "broker"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    (base / "rabbitmq.conf").write_text("default_pass = old\n")
    (base / "rabbitmq.conf").chmod(0o644)
    monkeypatch.setattr(LocalBroker, "_check_reachable", lambda self: None)
    return base


def test_the_admin_password_is_readable_by_the_node_user_only(open_base: Path) -> None:
    broker = LocalBroker(open_base)
    broker._write_files()
    conf = open_base / "rabbitmq.conf"
    assert f"default_pass = {broker.admin_password}" in conf.read_text()
    assert _mode(open_base) == 0o700
    assert _mode(conf) == 0o600
    if os.geteuid() == 0:  # the node runs as rabbitmq: it still owns, and reads, both
        node_user = pwd.getpwnam("rabbitmq").pw_uid
        assert open_base.stat().st_uid == conf.stat().st_uid == node_user


def test_link_state_plugins_are_on_with_the_management_plugin(open_base: Path) -> None:
    assert {"rabbitmq_federation_management", "rabbitmq_shovel_management"} <= set(
        DEFAULT_PLUGINS)
    LocalBroker(open_base)._write_files()
    enabled = (open_base / "enabled_plugins").read_text()
    assert "rabbitmq_federation_management" in enabled and "rabbitmq_management" in enabled
    LocalBroker(open_base / "bare", management_port=None)._write_files()
    assert "_management" not in (open_base / "bare" / "enabled_plugins").read_text()


def test_an_existing_broker_needs_its_state_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no private broker in") as refused:
        LocalBroker.existing(tmp_path / "typo")
    assert "exgate broker start --base" in refused.value.message("zh")
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize(("lang", "words"), [("zh", "中没有私有消息服务器"),
                                             ("en", "no private broker in")])
@pytest.mark.parametrize("action", ["stop", "status"])
def test_broker_stop_and_status_refuse_a_folder_without_a_broker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str, lang: str,
        words: str) -> None:
    typo = tmp_path / "typo"
    assert run_broker(action, typo, (), lang) == 2
    out, err = capsys.readouterr()
    assert out == "" and words in err and str(typo) in err
    assert "exgate broker start --base" in err
    assert not typo.exists()


def _no_api(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the management API must not be reached")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_node_commands_refuse_a_broker_folder_without_a_broker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        lang: str) -> None:
    monkeypatch.setattr(node_command.ManagementApi, "_send", _no_api)
    typo, registry, out = tmp_path / "typo", tmp_path / "reg", tmp_path / "n.key"
    words = "中没有私有消息服务器" if lang == "zh" else "no private broker in"
    assert run_node("add", node_id="zz-01", division="430102", registry=registry,
                    broker_base=typo, out=out, lang=lang) == 2
    assert words in capsys.readouterr().err
    assert not out.exists() and not typo.exists()
    assert not registry.exists() or list(registry.iterdir()) == []
    # A registered node (else that is what disable says first, before any broker).
    Registry(registry).add("zz-01", "430102", "exgate-node-zz-01",
                           generate_node_keys("zz-01", 1).verifier())
    assert run_node("disable", node_id="zz-01", registry=registry, broker_base=typo,
                    lang=lang) == 2
    assert words in capsys.readouterr().err
    assert Registry(registry).require("zz-01").active  # nothing changed


def test_broker_link_refuses_a_folder_without_a_broker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(federation.ManagementApi, "_send", _no_api)
    monkeypatch.setenv(federation.PASSWORD_ENV, "x")
    assert run_link(upstream="amqp://link-up@127.0.0.1:28607/%2F", division="430102",
                    base=tmp_path / "citty", lang="en") == 2
    err = capsys.readouterr().err
    assert "no private broker in" in err and "citty" in err

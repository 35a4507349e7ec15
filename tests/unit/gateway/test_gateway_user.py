"""``exgate gateway user``: the least-privilege patterns, and the command's refusals and
output (a recording stand-in for the management API; the broker's own verdict is in
tests/integration/test_gateway_user.py)."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from cli import main
from gateway import node_command
from gateway.gateway_user import gateway_permissions, provision_gateway_user
from gateway.mgmt_api import ManagementApi, ManagementError
from gateway.node_command import run_gateway_user
from schemas.errors import ConfigError

EXCHANGES = ("exgate.records", "exgate.dead", "exgate.receipts", "exgate.status")


def allows(pattern: str, name: str) -> bool:
    """RabbitMQ's test: the pattern found anywhere in the name (``re:run``, unanchored)."""
    return re.search(pattern, name) is not None


def own_queues(division: str) -> list[str]:
    return [f"exgate.{kind}.{division}" for kind in ("level", "dead", "status")]


def test_a_city_gateway_may_do_what_it_does_and_no_more() -> None:
    perms = gateway_permissions("430100")
    configure = own_queues("430100")
    assert [n for n in configure if allows(perms.configure, n)] == configure
    # The exchanges are found by passive declarations: no configure, so no deleting them.
    assert not any(allows(perms.configure, exchange) for exchange in EXCHANGES)
    write = ["exgate.receipts", "exgate.dead", *own_queues("430100")]
    assert [n for n in write if allows(perms.write, n)] == write
    read = ["exgate.records", "exgate.dead", "exgate.status", *own_queues("430100")]
    assert [n for n in read if allows(perms.read, n)] == read
    # No publishing records, heartbeats or straight into a queue; no receipts read.
    for name in ("exgate.records", "exgate.status", "amq.default", ""):
        assert not allows(perms.write, name), name
    for name in ("exgate.receipts", "exgate.receipts.furong-01", "amq.default"):
        assert not allows(perms.read, name), name
    for pattern in (perms.configure, perms.write, perms.read):
        assert not allows(pattern, "exgate.receipts.furong-01")
        assert not allows(pattern, "exgate.records.from.430102")  # a broker link's intake


@pytest.mark.parametrize("name", [
    "exgate.level.4301001", "exgate.level.4301000", "exgate.level.430100x",
    "xexgate.level.430100", "exgate.level.43010", "exgate.levelX430100",
    "exgate.level.430100\nexgate.level.430102", "exgate.dead.430102", "exgate.status.430000",
    "exgate.level.430000", "exgate.level.430102", "exgate.recordsX", "Xexgate.records",
    "exgate-records",
])
def test_patterns_are_anchored_and_dots_escaped(name: str) -> None:
    perms = gateway_permissions("430100")
    for pattern in (perms.configure, perms.write, perms.read):
        assert pattern.startswith("^(") and pattern.endswith(")$")
        assert not allows(pattern, name), (pattern, name)


@pytest.mark.parametrize("division", ["430000", "430100", "430102", "429004", "110101"])
def test_no_level_reaches_another_levels_queues(division: str) -> None:
    perms = gateway_permissions(division)
    others = ("430000", "430100", "430102", "430103", "429004", "429000", "110101",
              "110100", "110000")
    for other in others:
        if other == division:
            continue
        for queue in own_queues(other):
            for pattern in (perms.configure, perms.write, perms.read):
                assert not allows(pattern, queue), (division, queue)


def test_topic_patterns_bind_its_own_key_only_and_publish_nothing() -> None:
    perms = gateway_permissions("430100")
    assert set(perms.topics) == {"exgate.records", "exgate.status", "exgate.dead"}
    for exchange in ("exgate.records", "exgate.status"):
        write, read = perms.topics[exchange]
        assert allows(read, "430000.430100.#")
        for key in ("#", "430000.#", "430000.430100.430102.#", "430000.430100.*",
                    "430000.430100X#", "430000.430100.#.x", "x.430000.430100.#"):
            assert not allows(read, key), key
        assert not allows(write, "430000.430100.430102.furong-01")
        assert not allows(write, "")  # "^$" would let the empty key by
    write, read = perms.topics["exgate.dead"]
    assert allows(read, "exgate.level.430100")
    assert not allows(read, "exgate.level.430102") and not allows(read, "#")
    assert not allows(write, "exgate.level.430100") and not allows(write, "")
    county_read = gateway_permissions("430102").topics["exgate.records"][1]
    assert allows(county_read, "430000.430100.430102.#")
    assert not allows(county_read, "430000.430100.#")


class FakeApi(ManagementApi):
    """Records every call; ``users``, ``permissions`` and ``topics`` (by "vhost/user", the
    vhost quoted) and ``vhosts`` are what the broker holds."""

    def __init__(self, users: dict[str, Any] | None = None,
                 permissions: dict[str, Any] | None = None,
                 listeners: list[dict[str, Any]] | None = None, fail_on: str = "",
                 topics: dict[str, list[dict[str, str]]] | None = None,
                 vhosts: tuple[str, ...] = ("%2F", "exgate%2Fprod")) -> None:
        super().__init__("http://mq.example.gov:15672", "admin", "pw")
        self.users = users or {}
        self.permissions = permissions or {}
        self.topics = topics or {}
        self.vhosts = vhosts
        self.listeners = listeners if listeners is not None else [
            {"protocol": "amqp", "port": 5672}, {"protocol": "http", "port": 15672}]
        self.fail_on = fail_on
        self.calls: list[tuple[str, str, Any]] = []

    def _send(self, method: str, path: str, body: Any, headers: Any = None) -> Any:
        self.calls.append((method, path, body))
        if self.fail_on and path.startswith(self.fail_on):
            raise ManagementError(f"{method} {path}: HTTP 500", status=500)
        if method != "GET":
            return None
        kind, _, name = path.partition("/")
        user, _, listing = name.partition("/")
        if kind == "users" and listing == "permissions":
            return [{"vhost": unquote(key.partition("/")[0]), **held}
                    for key, held in self.permissions.items()
                    if held is not None and key.partition("/")[2] == user]
        if kind == "users" and listing == "topic-permissions":
            return [{"vhost": unquote(key.partition("/")[0]), **entry}
                    for key, held in self.topics.items() if key.partition("/")[2] == user
                    for entry in held]
        held = {"users": self.users.get(name), "permissions": self.permissions.get(name),
                "vhosts": {} if name in self.vhosts else None,
                "overview": {"listeners": self.listeners}}.get(kind)
        if held is None and kind in ("users", "permissions", "vhosts"):
            raise ManagementError(f"GET {path}: HTTP 404", status=404, reason="Not Found")
        return held

    def puts(self, prefix: str) -> list[Any]:
        return [body for method, path, body in self.calls
                if method == "PUT" and path.startswith(prefix)]


def never() -> ManagementApi:
    raise AssertionError("the broker was sought")


def test_a_new_user_gets_the_permissions_and_a_private_one_line_password(
        tmp_path: Path) -> None:
    api, out = FakeApi(), tmp_path / "secrets" / "gw.password"
    done = provision_gateway_user(lambda: api, "430100", out)
    assert (done.user, done.existed) == ("exgate-gw-430100", False)
    assert done.broker_url == "amqp://exgate-gw-430100@mq.example.gov:5672/"
    [user] = api.puts("users/exgate-gw-430100")
    assert user["tags"] == "" and out.read_text(encoding="utf-8") == user["password"] + "\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    perms = gateway_permissions("430100")
    assert api.puts("permissions/%2F/exgate-gw-430100") == [
        {"configure": perms.configure, "write": perms.write, "read": perms.read}]
    assert {b["exchange"]: (b["write"], b["read"])
            for b in api.puts("topic-permissions/%2F/exgate-gw-430100")} == perms.topics
    assert "queues/%2F/exgate.level.430100" in [p for _, p, _ in api.calls]


def test_tls_listener_and_vhost_make_the_url(tmp_path: Path) -> None:
    api = FakeApi(listeners=[{"protocol": "amqp", "port": 5672},
                             {"protocol": "amqp/ssl", "port": 5671}])
    done = provision_gateway_user(lambda: api, "430000", tmp_path / "pw", user="gw.hn",
                                  vhost="exgate/prod")
    assert done.broker_url == "amqps://gw.hn@mq.example.gov:5671/exgate%2Fprod"
    assert api.puts("permissions/exgate%2Fprod/gw.hn")


@pytest.mark.parametrize(("division", "user", "words"), [
    ("43010", None, "行政区划代码 '43010' 不是 6 位"),
    ("430100", "gw 430100", "须为 1 至 64 个"),
    ("430100", "exgate-node-furong-01", "是节点的消息服务器用户名"),
    ("430100", None, "已存在"),
])
def test_what_is_wrong_is_named_before_the_broker_is_sought(
        tmp_path: Path, division: str, user: str | None, words: str) -> None:
    taken = tmp_path / "taken.password"
    taken.write_text("in use elsewhere\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        provision_gateway_user(never, division, taken, user=user)
    assert words in refused.value.message("zh")
    assert taken.read_text(encoding="utf-8") == "in use elsewhere\n"


def test_a_dangling_symlink_counts_as_an_existing_file(tmp_path: Path) -> None:
    link = tmp_path / "gw.password"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="already exists"):
        provision_gateway_user(never, "430100", link)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(("held_user", "held_permissions", "words"), [
    ({"tags": ["administrator"]}, None, "带有标签（administrator）"),
    ({"tags": "management"}, None, "带有标签（management）"),
    ({"tags": []}, {"configure": "^exgate\\.receipts\\.furong\\-01$", "write": ".*",
                    "read": ".*"}, "不是 430100 级网关的用户"),
    ({"tags": []}, "other-level", "不是 430100 级网关的用户"),
])
def test_a_user_that_is_not_this_levels_gateway_user_is_refused(
        tmp_path: Path, held_user: dict[str, Any], held_permissions: Any, words: str) -> None:
    if held_permissions == "other-level":
        other = gateway_permissions("430102")
        held_permissions = {"configure": other.configure, "write": other.write,
                            "read": other.read}
    api = FakeApi(users={"exgate-gw-430100": held_user},
                  permissions={"%2F/exgate-gw-430100": held_permissions})
    out = tmp_path / "gw.password"
    with pytest.raises(ConfigError) as refused:
        provision_gateway_user(lambda: api, "430100", out)
    assert words in refused.value.message("zh") and "未做任何修改" in refused.value.message("zh")
    assert not out.exists()
    assert [method for method, _, _ in api.calls] == ["GET"] * len(api.calls)


@pytest.mark.parametrize("held_permissions", ["same", None])
def test_this_levels_gateway_user_gets_its_permissions_then_last_a_new_password(
        tmp_path: Path, held_permissions: Any) -> None:
    perms = gateway_permissions("430100")
    held = {"configure": perms.configure, "write": perms.write, "read": perms.read} \
        if held_permissions == "same" else None
    api = FakeApi(users={"exgate-gw-430100": {"tags": []}},
                  permissions={"%2F/exgate-gw-430100": held})
    out = tmp_path / "gw.password"
    done = provision_gateway_user(lambda: api, "430100", out)
    assert done.existed
    [user] = api.puts("users/exgate-gw-430100")
    assert out.read_text(encoding="utf-8") == user["password"] + "\n"
    # Everything is read before anything changes; then the permissions, the level's
    # topology, and the password last of all: a failure on the way leaves the gateways
    # running with the old password as they were (gateway.gateway_user).
    methods = [method for method, _, _ in api.calls]
    changes = [(method, path) for method, path, _ in api.calls if method != "GET"]
    assert methods == ["GET"] * (len(methods) - len(changes)) + [m for m, _ in changes]
    where = "%2F/exgate-gw-430100"
    assert changes[:4] == [("PUT", f"permissions/{where}")] + \
        [("PUT", f"topic-permissions/{where}")] * 3
    topology = changes[4:-1]
    assert topology and {path.partition("/")[0] for _, path in topology} == {
        "exchanges", "queues", "bindings"}
    assert changes[-1] == ("PUT", "users/exgate-gw-430100")


@pytest.mark.parametrize(("permissions", "topics", "words"), [
    ({"other/exgate-gw-430100": {"configure": ".*", "write": ".*", "read": ".*"}}, None,
     "在其他虚拟主机（other）中有权限"),
    (None, {"%2F/exgate-gw-430100": [{"exchange": "exgate.records", "write": ".*",
                                      "read": ".*"}]}, "不是 430100 级网关的用户"),
])
def test_a_user_holding_anything_else_anywhere_is_refused(
        tmp_path: Path, permissions: Any, topics: Any, words: str) -> None:
    api = FakeApi(users={"exgate-gw-430100": {"tags": []}}, permissions=permissions,
                  topics=topics)
    with pytest.raises(ConfigError) as refused:
        provision_gateway_user(lambda: api, "430100", tmp_path / "gw.password")
    assert words in refused.value.message("zh")
    assert [method for method, _, _ in api.calls] == ["GET"] * len(api.calls)
    assert not (tmp_path / "gw.password").exists()


def test_a_virtual_host_not_there_is_named_before_any_change(tmp_path: Path) -> None:
    api = FakeApi(users={"exgate-gw-430100": {"tags": []}}, vhosts=("%2F",))
    with pytest.raises(ConfigError) as refused:
        provision_gateway_user(lambda: api, "430100", tmp_path / "pw", vhost="exgate-typo")
    assert "没有虚拟主机 'exgate-typo'" in refused.value.message("zh")
    assert [p for _, p, _ in api.calls] == ["vhosts/exgate-typo"]


def test_a_take_over_changes_the_password_last_and_not_at_all_when_a_step_fails(
        tmp_path: Path) -> None:
    held = {"users": {"exgate-gw-430100": {"tags": []}}}
    api = FakeApi(**held)
    provision_gateway_user(lambda: api, "430100", tmp_path / "pw")
    method, path, _ = api.calls[-1]
    assert (method, path) == ("PUT", "users/exgate-gw-430100")
    failing = FakeApi(**held, fail_on="topic-permissions/")
    with pytest.raises(ManagementError):
        provision_gateway_user(lambda: failing, "430100", tmp_path / "pw2")
    assert failing.puts("users/") == [] and not (tmp_path / "pw2").exists()


def test_a_password_file_that_cannot_be_made_is_named_before_the_broker_changes(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        provision_gateway_user(never, "430100", tmp_path)
    assert "是文件夹" in refused.value.message("zh")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    api = FakeApi()
    with pytest.raises(ConfigError) as refused:
        provision_gateway_user(lambda: api, "430100", tmp_path / "file" / "pw")
    assert "cannot be written: Not a directory" in refused.value.message("en")
    assert "路径中有一部分不是文件夹" in refused.value.message("zh")
    assert api.puts("") == []


def test_a_broker_failure_leaves_no_password_file(tmp_path: Path) -> None:
    api, out = FakeApi(fail_on="permissions/"), tmp_path / "gw.password"
    with pytest.raises(ManagementError):
        provision_gateway_user(lambda: api, "430100", out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", ["已创建 430100 级网关的消息服务器用户 exgate-gw-430100", "权限 0600",
            "exgate.level.430100、exgate.status.430100、exgate.dead.430100"]),
    ("en", ["broker user exgate-gw-430100 created for the gateway of level 430100",
            "mode 0600", "no publishing to exgate.records"]),
])
def test_the_command_prints_the_broker_lines_never_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        lang: str, words: list[str]) -> None:
    api, out = FakeApi(), tmp_path / "gw.password"
    monkeypatch.setattr(node_command, "admin_api", lambda *args: api)
    assert run_gateway_user("430100", out=out, admin_url="http://admin@mq.example.gov:15672",
                            lang=lang) == 0
    printed = capsys.readouterr().out
    for word in words:
        assert word in printed
    assert ('[broker]\nurl = "amqp://exgate-gw-430100@mq.example.gov:5672/"\n'
            f'password_file = "{out}"\n') in printed
    assert out.read_text(encoding="utf-8").strip() not in printed


def test_the_command_says_an_existing_user_got_a_new_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi(users={"exgate-gw-430100": {"tags": []}})
    monkeypatch.setattr(node_command, "admin_api", lambda *args: api)
    assert run_gateway_user("430100", out=tmp_path / "pw", admin_url="http://a@h:1",
                            lang="en") == 0
    assert "already existed: its permissions were set again and it has a new password" in \
        capsys.readouterr().out


@pytest.mark.parametrize(("api", "code", "words"), [
    (FakeApi(users={"exgate-gw-430100": {"tags": ["administrator"]}}), 2, "带有标签"),
    (FakeApi(fail_on="users/exgate-gw-430100"), 1, "HTTP 500"),
])
def test_the_command_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str], api: FakeApi, code: int,
                                words: str) -> None:
    monkeypatch.setattr(node_command, "admin_api", lambda *args: api)
    assert run_gateway_user("430100", out=tmp_path / "pw", admin_url="http://a@h:1") == code
    captured = capsys.readouterr()
    assert words in captured.err and "[broker]" not in captured.out
    assert not (tmp_path / "pw").exists()


@pytest.mark.parametrize(("lang", "words"), [("zh", "是文件夹"), ("en", "is a folder")])
def test_the_command_refuses_a_folder_for_the_password_file_in_its_own_words(
        tmp_path: Path, lang: str, words: str) -> None:
    result = CliRunner().invoke(main, ["gateway", "user", "430100", "--password-file",
                                       str(tmp_path), "--admin-url", "http://a@h:1",
                                       "--lang", lang])
    assert result.exit_code == 2 and words in result.stderr


def test_a_file_system_failure_is_an_error_naming_the_file_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def refused(*args: object) -> ManagementApi:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x"))

    monkeypatch.setattr(node_command, "admin_api", refused)
    assert run_gateway_user("430100", out=tmp_path / "pw", admin_url="http://a@h:1") == 2
    assert f"错误：{tmp_path / 'x'}: 权限不足" in capsys.readouterr().err

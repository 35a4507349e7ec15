"""Node provisioning: a broker user limited to its own routing key, keys, registry entry.

A node's broker user may
- configure and read only its receipts queue ``exgate.receipts.<id>``;
- write only to ``exgate.records`` and ``exgate.status``, and there, through topic
  permissions, only with its own routing key ``<province>.<city>.<county>.<id>``.
So a node cannot publish for another node or division: the broker closes its channel
with 403 ACCESS_REFUSED. Its batches are also signed and encrypted with keys whose
public half (and the shared data key) only the registry holds.

A key rotation updates the node's existing credentials file, whose broker password is
kept nowhere else: a missing file, or one of another node, is refused before anything
changes (``CredentialsRefused``).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adapters.amqp.errors import NODE_DISABLED_REASON
from adapters.amqp.topology import (
    RECORDS_EXCHANGE,
    STATUS_EXCHANGE,
    check_division,
    check_node_id,
    declare_exchanges,
    declare_node_queues,
    receipts_queue,
    routing_key,
)
from adapters.sealing import (
    BrokerLogin,
    generate_node_keys,
    load_broker_login,
    load_node_keys,
    write_node_keys,
)
from gateway.mgmt_api import HttpChannel, ManagementApi, segment
from gateway.registry import NodeEntry, Registry
from schemas.errors import ConfigError, located

__all__ = [
    "CredentialsRefused",
    "NodePermissions",
    "Permissions",
    "Provisioned",
    "add_node",
    "broker_user_name",
    "disable_node",
    "grant",
    "node_permissions",
    "rotate_node_key",
]


class CredentialsRefused(ConfigError):
    """The credentials file to update cannot be used; nothing was changed."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en, zh=zh)


class Permissions(Protocol):
    """A broker user's permissions in a vhost: regexes of resource names, and per topic
    exchange the (write, read) regexes of routing keys (``grant`` sets both)."""

    @property
    def configure(self) -> str: ...
    @property
    def write(self) -> str: ...
    @property
    def read(self) -> str: ...
    @property
    def topics(self) -> Mapping[str, tuple[str, str]]: ...


@dataclass(frozen=True, slots=True)
class NodePermissions:
    configure: str
    write: str
    read: str
    topic_write: str

    @property
    def topics(self) -> Mapping[str, tuple[str, str]]:
        return {exchange: (self.topic_write, "^$")
                for exchange in (RECORDS_EXCHANGE, STATUS_EXCHANGE)}


@dataclass(frozen=True, slots=True)
class Provisioned:
    entry: NodeEntry
    broker_user: str
    routing_key: str
    credentials_file: Path


def broker_user_name(node_id: str) -> str:
    return f"exgate-node-{check_node_id(node_id)}"


def node_permissions(node_id: str, division: str) -> NodePermissions:
    own_queue = "^" + re.escape(receipts_queue(node_id)) + "$"
    return NodePermissions(
        configure=own_queue,
        write=r"^exgate\.(records|status)$",
        read=own_queue,
        topic_write="^" + re.escape(routing_key(division, node_id)) + "$",
    )


def add_node(open_api: Callable[[], ManagementApi], registry: Registry, node_id: str,
             division: str, out: Path, *, vhost: str = "/", lang: str = "zh") -> Provisioned:
    """Create everything a new node needs; the registry entry is written last.

    ``open_api`` is called only once the ID, the division and ``out`` are known good:
    a mistyped ID is named as such, not as a broker that cannot be found. A warning
    (a queue an older exgate declared, kept as it is) is logged in ``lang``."""
    check_node_id(node_id)
    check_division(division)
    if registry.get(node_id) is not None:
        raise ConfigError(f"node {node_id} is already registered in {registry.path}",
                          zh=f"节点 {node_id} 已在 {registry.path} 中登记")
    _refuse_existing(out)
    api = open_api()
    keys = generate_node_keys(node_id, 1)
    login = BrokerLogin(broker_user_name(node_id), secrets.token_urlsafe(24))
    api.put(f"users/{segment(login.user)}", {"password": login.password, "tags": ""})
    grant(api, vhost, login.user, node_permissions(node_id, division))
    channel = HttpChannel(api, vhost, lang)
    declare_exchanges(channel)
    declare_node_queues(channel, node_id)
    try:
        write_node_keys(out, keys, login, replace=False)
    except FileExistsError as exc:  # it appeared meanwhile: still never overwritten
        raise ConfigError(
            f"credentials file {out} appeared while node {node_id} was provisioned and was "
            f"kept; broker user {login.user} was created but the node is not registered: "
            "run node add again with another --out",
            zh=f"开通节点 {node_id} 期间凭据文件 {out} 被创建，已保留不动；消息服务器用户 "
               f"{login.user} 已创建，但节点未登记：请用另一个 --out 重新执行 node add") from exc
    entry = registry.add(node_id, division, login.user, keys.verifier())
    return Provisioned(entry, login.user, routing_key(division, node_id), out)


def _refuse_existing(out: Path) -> None:
    """A new node's credentials never replace a file: it may hold another node's login."""
    if out.exists() or out.is_symlink():
        raise CredentialsRefused(
            f"凭据文件 {out} 已存在：开通节点只写新文件，不覆盖现有文件（其中的消息服务器密码"
            "不保存在别处）。请用 --out 指定一个新文件；要更换某节点自己的密钥请用 rotate-key；"
            "未做任何修改",
            f"credentials file {out} already exists: node add writes a new file and never "
            "overwrites one (the broker password in it is kept nowhere else). Name a new "
            "file with --out, or use rotate-key to renew a node's own keys; nothing was "
            "changed")


def grant(api: ManagementApi, vhost: str, user: str, perms: Permissions) -> None:
    where = f"{segment(vhost)}/{segment(user)}"
    api.put(f"permissions/{where}",
            {"configure": perms.configure, "write": perms.write, "read": perms.read})
    for exchange, (write, read) in perms.topics.items():
        api.put(f"topic-permissions/{where}",
                {"exchange": exchange, "write": write, "read": read})


def disable_node(api: ManagementApi | None, registry: Registry, node_id: str, *,
                 vhost: str = "/") -> NodeEntry:
    """Mark the node disabled (gateways refuse its batches) and cut its broker access.

    With ``api``, the node's broker user must exist on that broker: another broker is
    refused before anything changes (a PUT there would create a user, revoke nothing).
    """
    known = registry.get(node_id)
    if api is not None and known is not None:
        _require_user(api, known.broker_user, node_id)
    entry = registry.disable(node_id)
    if api is not None:
        user = segment(entry.broker_user)
        api.delete(f"permissions/{segment(vhost)}/{user}")
        api.delete(f"topic-permissions/{segment(vhost)}/{user}")
        # A fresh random password: the old one no longer logs in anywhere.
        api.put(f"users/{user}", {"password": secrets.token_urlsafe(24), "tags": ""})
        close_connections(api, entry.broker_user)
    return entry


def enable_node(api: ManagementApi | None, registry: Registry, node_id: str, out: Path, *,
                vhost: str = "/") -> NodeEntry:
    """Undo ``disable_node``: gateways accept the node again and, with ``api``, it gets a
    new broker password (disabling replaced its own), written into its credentials file
    ``out``, and its permissions back. Its refused batches can then be replayed.
    """
    entry = registry.require(node_id)
    if api is not None:
        _own_login(entry, out)  # this node's file, or nothing changes
        _require_user(api, entry.broker_user, node_id)
        login = BrokerLogin(entry.broker_user, secrets.token_urlsafe(24))
        staged = out.with_name(f".{out.name}.{secrets.token_hex(4)}.new")
        write_node_keys(staged, load_node_keys(out), login)
        try:
            user = segment(login.user)
            api.put(f"users/{user}", {"password": login.password, "tags": ""})
            grant(api, vhost, login.user, node_permissions(node_id, entry.division))
            os.replace(staged, out)
        finally:
            staged.unlink(missing_ok=True)
    return registry.enable(node_id)


def _require_user(api: ManagementApi, user: str, node_id: str) -> None:
    if api.find(f"users/{segment(user)}") is None:
        raise ConfigError(
            f"broker user {user} of node {node_id} does not exist on the broker at "
            f"{api.root}: it is not the node's broker. Name the broker the node connects "
            "to (--broker-base or --admin-url); nothing was changed",
            zh=f"节点 {node_id} 的消息服务器用户 {user} 不在 {api.root} 的消息服务器上：这不是"
               "该节点所连接的消息服务器。请用 --broker-base 或 --admin-url 指定节点所连接的"
               "消息服务器；未做任何修改")


def close_connections(api: ManagementApi, user: str) -> int:
    closed = 0
    for connection in api.get("connections") or []:
        if connection.get("user") == user:
            api.delete(f"connections/{segment(connection['name'])}",
                       headers={"X-Reason": NODE_DISABLED_REASON})
            closed += 1
    return closed


def rotate_node_key(registry: Registry, node_id: str, out: Path) -> NodeEntry:
    """A new key version in the registry and in the node's credentials file ``out``.

    ``out`` must exist and be this node's: its broker login is kept. Older versions stay
    valid, so batches sealed before the agent picks up the new file still open at the
    gateways.
    """
    entry = registry.require(node_id)
    login = _own_login(entry, out)
    keys = generate_node_keys(node_id, entry.key_version + 1)
    # Every key the agent may load from ``out`` must be in the registry first, or its
    # batches are refused. So the new file is written and synced beside ``out`` first
    # (what can fail mostly fails there, before any change), then the registry learns
    # the key, then a rename puts the file in place. A rename that fails takes the key
    # out of the registry again; a crash before it leaves a registered key nobody
    # holds, which is harmless (the older versions stay valid) and the next rotation
    # goes past.
    staged = out.with_name(f".{out.name}.{secrets.token_hex(4)}.new")
    try:
        write_node_keys(staged, keys, login)
        rotated = registry.rotate(node_id, keys.verifier())
    except BaseException as exc:
        staged.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise located(f"node {node_id}", f"key not rotated ({exc}); nothing changed",
                          f"密钥未更换（{exc}）；未做任何修改", where_zh=f"节点 {node_id}") from exc
        raise
    try:
        os.replace(staged, out)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        registry.withdraw(node_id, keys.key_version)
        raise located(str(out), f"cannot replace the credentials file ({exc.strerror}); "
                      f"key version {keys.key_version} was taken out of the registry again, "
                      "nothing changed",
                      f"无法替换凭据文件（{exc.strerror}）；密钥版本 {keys.key_version} 已从登记簿"
                      "撤回，未做任何修改") from exc
    return rotated


def _own_login(entry: NodeEntry, out: Path) -> BrokerLogin | None:
    """The broker login of ``out``, once it is known to be the node's credentials file."""
    node = entry.node_id
    if not out.exists():
        raise CredentialsRefused(
            f"凭据文件 {out} 不存在：更换密钥要更新节点 {node} 现有的凭据文件（消息服务器密码只"
            "保存在其中）。请用 --out 指定该文件；未做任何修改",
            f"credentials file {out} does not exist: a key rotation updates node {node}'s "
            "existing credentials file (its broker password is kept nowhere else). Name it "
            "with --out; nothing was changed")
    holder = load_node_keys(out).node_id
    if holder != node:
        raise CredentialsRefused(
            f"凭据文件 {out} 属于节点 {holder}，不是 {node}；未做任何修改",
            f"credentials file {out} belongs to node {holder}, not {node}; nothing was "
            "changed")
    login = load_broker_login(out)
    if login is not None and login.user != entry.broker_user:
        raise CredentialsRefused(
            f"凭据文件 {out} 的消息服务器用户是 {login.user}，而登记簿中节点 {node} 的用户是 "
            f"{entry.broker_user}；未做任何修改",
            f"credentials file {out} logs in as broker user {login.user}, but the registry "
            f"gives node {node} the user {entry.broker_user}; nothing was changed")
    return login

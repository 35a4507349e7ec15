"""``exgate gateway user``: a level gateway's broker user, with the least privilege it needs.

What the gateway of level D does on the broker, and what RabbitMQ's access control asks
for each (checked against RabbitMQ 3.10 by tests/integration/test_gateway_user.py):

- at each connection, the exchanges ``exgate.records``, ``exgate.dead``,
  ``exgate.receipts`` and ``exgate.status`` found by passive declarations (this command
  declares them, as ``exgate broker start`` does), which need no permission; then
  queue.declare of ``exgate.dead.D``, ``exgate.status.D`` and ``exgate.level.D``
  (configure on each; the level queue names
  ``exgate.dead`` as its dead-letter exchange, so creating it also needs write on
  ``exgate.dead`` and read on the queue); queue.bind of each on its exchange (write on
  the queue, read on the exchange, and, these being topic exchanges, the binding key
  must pass the user's topic read pattern there). Passive declarations (the fallback for
  queues an older exgate made, the drain check, the dead-letter counts) need nothing;
- consuming ``exgate.level.D`` and ``exgate.status.D``, and taking the letters of
  ``exgate.dead.D`` (the dead-letter pass): read on each;
- publishing receipts on ``exgate.receipts`` (the consumer, the dead-letter pass,
  ``exgate batches replay``): write on it. The dashboard's broker gauge and ``/healthz``
  come from the consumer's own connection and need nothing more.

So the user may not publish to ``exgate.records``, ``exgate.status`` or the default
exchange (no write there), nor to ``exgate.dead`` (its topic write pattern matches no
key), nor consume or bind any other level's queue or a node's receipts queue (no
permission on their names; names are anchored, so level 430100 does not match
``exgate.level.4301001``), nor bind its own queues with a key other than its level's
(topic read patterns): it can neither speak for a node nor read another level's batches.
With no configure permission on the exchanges, it cannot delete them either. Two
limits remain. ``exgate.receipts`` is a direct exchange, where RabbitMQ applies no topic
permissions, so which nodes a gateway can send receipts to cannot be narrowed. And write
on ``exgate.receipts`` and ``exgate.dead`` with read on ``exgate.records`` and
``exgate.status`` allows an exchange-to-exchange binding from those into these (with the
level's own key only): no queue is bound to take what would flow that way, but such a
binding outlives the user.

A user that exists is taken over only when it is plainly this level's gateway user (no
tags, no node's name, no permission in another virtual host, and in this one none but
these): it gets these permissions again, then, last, a new password, so a failure before
that leaves gateways running with the old one as they were. Gateways still logged in
with the old password keep their connections until they reconnect.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from adapters.amqp.topology import (
    DEAD_EXCHANGE,
    RECEIPTS_EXCHANGE,
    RECORDS_EXCHANGE,
    STATUS_EXCHANGE,
    binding_key,
    check_division,
    dead_queue,
    declare_topology,
    level_queue,
    status_queue,
)
from adapters.sealing import write_secret
from gateway.mgmt_api import HttpChannel, ManagementApi, exactly, segment
from gateway.provisioning import broker_user_name, grant
from schemas.errors import ConfigError

__all__ = ["GatewayPermissions", "GatewayUser", "gateway_permissions", "gateway_user_name",
           "provision_gateway_user"]

# A topic pattern no routing key matches, the empty one included (which "^$" lets by).
_NO_KEY = "(?!)"
_USER = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
_NODE_USER_PREFIX = broker_user_name("x")[:-1]  # "exgate-node-"


@dataclass(frozen=True, slots=True)
class GatewayPermissions:
    configure: str
    write: str
    read: str
    topics: Mapping[str, tuple[str, str]]  # topic exchange → (write, read) key patterns


@dataclass(frozen=True, slots=True)
class GatewayUser:
    user: str
    division: str
    password_file: Path
    existed: bool  # an existing user was given these permissions and a new password
    broker_url: str  # for the gateway's [broker] url: the user, never the password


def gateway_user_name(division: str) -> str:
    return f"exgate-gw-{check_division(division)}"


def gateway_permissions(division: str) -> GatewayPermissions:
    """What the gateway of level ``division`` needs on the broker, and no more."""
    own = (level_queue(division), dead_queue(division), status_queue(division))
    key = exactly(binding_key(division))
    return GatewayPermissions(
        configure=exactly(*own),
        # exgate.dead only because the level queue names it as its dead-letter exchange;
        # the topic pattern below lets no publish through. exgate.receipts is direct: no
        # topic permission can narrow the nodes the receipts go to.
        write=exactly(RECEIPTS_EXCHANGE, DEAD_EXCHANGE, *own),
        read=exactly(RECORDS_EXCHANGE, DEAD_EXCHANGE, STATUS_EXCHANGE, *own),
        topics={RECORDS_EXCHANGE: (_NO_KEY, key), STATUS_EXCHANGE: (_NO_KEY, key),
                DEAD_EXCHANGE: (_NO_KEY, exactly(level_queue(division)))},
    )


def provision_gateway_user(open_api: Callable[[], ManagementApi], division: str, out: Path,
                           *, user: str | None = None, vhost: str = "/",
                           lang: str = "zh") -> GatewayUser:
    """Create (or take over, see the module's doc) the broker user of level ``division``'s
    gateway, declare the level's exchanges and queues, and write the user's new password
    to ``out`` (mode 0600, one line), which must not exist.

    ``open_api`` is called only once the division, the user name and ``out`` are known
    good. If the broker fails, ``out`` is removed again: run the command once more.
    A warning (a queue an older exgate declared, kept as it is) is logged in ``lang``."""
    perms = gateway_permissions(division)
    name = _check_user(user) if user is not None else gateway_user_name(division)
    if out.is_dir():
        raise _file_is_a_folder(out)
    if out.exists() or out.is_symlink():
        raise _file_exists(out)
    api = open_api()
    if api.find(f"vhosts/{segment(vhost)}") is None:
        raise _no_vhost(vhost, api.root)
    existed = _taken_over(api, name, vhost, perms, division)
    url = broker_url(api, name, vhost)  # only reads: before anything changes
    password = secrets.token_urlsafe(24)
    _write_password(out, password)
    user_path = f"users/{segment(name)}"
    try:
        if not existed:
            api.put(user_path, {"password": password, "tags": ""})
        grant(api, vhost, name, perms)
        declare_topology(HttpChannel(api, vhost, lang), [division])
        if existed:
            # Last: until here a gateway running with the old password keeps it, whatever
            # failed; from here on the new one is in ``out``.
            api.put(user_path, {"password": password, "tags": ""})
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return GatewayUser(name, division, out, existed, url)


def _write_password(out: Path, password: str) -> None:
    """``out`` made with mode 0600, holding the password; never over an existing file."""
    try:
        write_secret(out, password + "\n", replace=False)
    except FileExistsError as exc:
        if out.exists() or out.is_symlink():  # it appeared meanwhile: never overwritten
            raise _file_exists(out) from exc
        # A part of its folder is a file: say so, not mkdir's "File exists".
        raise _cannot_write(out, NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(out.parent))) from exc
    except OSError as exc:
        raise _cannot_write(out, exc) from exc


def broker_url(api: ManagementApi, user: str, vhost: str) -> str:
    """``amqp[s]://USER@HOST:PORT/VHOST``: the management API's host, the broker's AMQP
    listener (TLS when it has one)."""
    host = urlsplit(api.root).hostname or "127.0.0.1"
    overview = api.get("overview")
    listeners = overview.get("listeners", []) if isinstance(overview, dict) else []
    ports = {str(item.get("protocol")): item.get("port") for item in listeners
             if isinstance(item, dict)}
    scheme, port = ("amqps", ports["amqp/ssl"]) if "amqp/ssl" in ports else \
        ("amqp", ports.get("amqp", 5672))
    host = f"[{host}]" if ":" in host else host
    path = "/" if vhost == "/" else "/" + quote(vhost, safe="")
    return f"{scheme}://{quote(user, safe='')}@{host}:{port}{path}"


def _check_user(user: str) -> str:
    if not _USER.fullmatch(user):
        raise ConfigError(f"--user {user!r} must be 1-64 of [0-9A-Za-z_.-]",
                          zh=f"--user {user!r} 须为 1 至 64 个 [0-9A-Za-z_.-] 字符")
    if user.startswith(_NODE_USER_PREFIX):
        raise ConfigError(f"--user {user!r} is a node's broker user name ({_NODE_USER_PREFIX}"
                          "…, made by exgate node add): a gateway needs a user of its own",
                          zh=f"--user {user!r} 是节点的消息服务器用户名（{_NODE_USER_PREFIX}…，"
                             "由 exgate node add 创建）：网关须使用自己的用户")
    return user


def _file_exists(out: Path) -> ConfigError:
    """The password file is always new: an existing one may be another gateway's."""
    return ConfigError(
        f"password file {out} already exists: exgate gateway user writes a new file and never "
        "overwrites one (it may hold a password in use elsewhere). Name a new file with "
        "--password-file; nothing was changed",
        zh=f"口令文件 {out} 已存在：exgate gateway user 只写新文件，不覆盖现有文件（其中的口令可能"
           "正在别处使用）。请用 --password-file 指定一个新文件；未做任何修改")


def _file_is_a_folder(out: Path) -> ConfigError:
    return ConfigError(f"--password-file {out} is a folder: name a new file in it; nothing "
                       "was changed",
                       zh=f"--password-file {out} 是文件夹：请指定其中的一个新文件；未做任何修改")


def _cannot_write(out: Path, exc: OSError) -> ConfigError:
    from schemas.audit_report import system_reason  # here: it loads the validator

    return ConfigError(f"password file {out} cannot be written: {system_reason(exc, 'en')}; "
                       "nothing was changed on the broker",
                       zh=f"口令文件 {out} 无法写入：{system_reason(exc)}；消息服务器上未做"
                          "任何修改")


def _no_vhost(vhost: str, root: str) -> ConfigError:
    return ConfigError(f"the broker at {root} has no virtual host {vhost!r}: check --vhost; "
                       "nothing was changed",
                       zh=f"{root} 的消息服务器上没有虚拟主机 {vhost!r}：请检查 --vhost；"
                          "未做任何修改")


def _taken_over(api: ManagementApi, user: str, vhost: str, perms: GatewayPermissions,
                division: str) -> bool:
    """Whether ``user`` exists; one that is not plainly this level's gateway user (an
    administrator, another level's gateway, a node, a user of another virtual host) is
    refused before any change. Plainly ours: no tags, nothing in another virtual host,
    and here only what ``perms`` grants (some of it when an earlier run was cut short)."""
    found = api.find(f"users/{segment(user)}")
    if found is None:
        return False
    tags = found.get("tags") if isinstance(found, dict) else None
    if tags:  # a list since RabbitMQ 3.9, a comma-separated string before
        tags = ", ".join(tags) if isinstance(tags, list) else str(tags)
        raise ConfigError(
            f"broker user {user} exists with tags ({tags}): it is not a gateway user, and "
            "taking it over would remove them. Choose another --user; nothing was changed",
            zh=f"消息服务器用户 {user} 已存在且带有标签（{tags}）：它不是网关用户，接管会去掉"
               "这些标签。请用 --user 另选用户名；未做任何修改")
    held = _held(api, user)
    elsewhere = sorted({where for where, _ in held if where != vhost})
    if elsewhere:
        shown = ", ".join(elsewhere)
        raise ConfigError(
            f"broker user {user} exists with permissions in another virtual host ({shown}): "
            "it is not this one's gateway user, and taking it over would lock out whoever "
            "uses it there. Choose another --user; nothing was changed",
            zh=f"消息服务器用户 {user} 已存在，且在其他虚拟主机（{shown}）中有权限：它不是本"
               "虚拟主机的网关用户，接管会使在那里使用它的一方无法登录。请用 --user 另选用户名；"
               "未做任何修改")
    ours = {("", perms.configure, perms.write, perms.read)} | {
        (exchange, "", *patterns) for exchange, patterns in perms.topics.items()}
    if not {grant_held for _, grant_held in held} <= ours:
        raise ConfigError(
            f"broker user {user} exists with other permissions in vhost {vhost}: it is not "
            f"the gateway user of level {division}. Choose another --user, or delete that "
            "user first if it is no longer used; nothing was changed",
            zh=f"消息服务器用户 {user} 已存在，且在虚拟主机 {vhost} 中有其他权限：它不是 "
               f"{division} 级网关的用户。请用 --user 另选用户名，或在确认不再使用后先删除该用户；"
               "未做任何修改")
    return True


def _held(api: ManagementApi, user: str) -> set[tuple[str, tuple[str, ...]]]:
    """Every permission ``user`` holds, in every virtual host: (vhost, ("", configure,
    write, read)) and, per topic exchange, (vhost, (exchange, "", write, read))."""
    where = segment(user)
    held: set[tuple[str, tuple[str, ...]]] = set()
    for entry in api.find(f"users/{where}/permissions") or []:
        held.add((str(entry.get("vhost")), ("", str(entry.get("configure")),
                                            str(entry.get("write")), str(entry.get("read")))))
    for entry in api.find(f"users/{where}/topic-permissions") or []:
        held.add((str(entry.get("vhost")), (str(entry.get("exchange")), "",
                                            str(entry.get("write")), str(entry.get("read")))))
    return held

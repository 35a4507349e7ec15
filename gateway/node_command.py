"""``exgate broker …``, ``exgate node …`` and ``exgate gateway user``: what they print (zh
by default, en) and their exit codes. The work is in ``broker_node``, ``provisioning``,
``gateway_user`` and ``registry``.

Exit codes: 0 ok, 1 the broker or management API failed, 2 usage or configuration: a
folder option that is no folder or cannot be read (``cli_support.check_folder``), a
registry folder that does not exist (but for ``node add``, which creates it), and for
``node list`` a registry file that is unreadable (it lists the others all the same).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adapters.amqp.topology import dead_queue, declare_topology, level_queue, status_queue
from gateway.broker_node import LocalBroker
from gateway.cli_support import check_folder
from gateway.gateway_user import provision_gateway_user
from gateway.mgmt_api import HttpChannel, ManagementApi
from gateway.provisioning import add_node, disable_node, enable_node, rotate_node_key
from gateway.registry import Registry
from schemas.errors import ConfigError, ExgateError
from schemas.messages import said

__all__ = ["admin_api", "default_broker_base", "run_broker", "run_gateway_user", "run_node"]

_TEXT: dict[str, tuple[str, str]] = {
    "started": ("RabbitMQ 私有节点已启动：{node}，AMQP 端口 {amqp}，管理端口 {mgmt}，目录 {base}",
                "private RabbitMQ node started: {node}, AMQP port {amqp}, management port "
                "{mgmt}, folder {base}"),
    "topology": ("已声明交换机与队列（层级：{levels}）", "exchanges and queues declared "
                 "(levels: {levels})"),
    "admin": ("管理员用户 {user}，密码保存在 {state}（权限 0600）",
              "administrator {user}; its password is in {state} (mode 0600)"),
    "stopped": ("RabbitMQ 私有节点已停止：{base}", "private RabbitMQ node stopped: {base}"),
    "running": ("运行中：{node}（PID {pid}），AMQP 端口 {amqp}，目录 {base}",
                "running: {node} (PID {pid}), AMQP port {amqp}, folder {base}"),
    "not-running": ("未运行：{base}", "not running: {base}"),
    "added": ("节点 {node} 已开通：区划 {division}，消息服务器用户 {user}，路由键 {key}；"
              "凭据文件 {out}（权限 0600，含密钥与密码，请妥善保管），登记于 {registry}",
              "node {node} provisioned: division {division}, broker user {user}, routing "
              "key {key}; credentials in {out} (mode 0600, keys and password: keep it "
              "secret), registered in {registry}"),
    "config-hint": ("在前置机配置中设置 [node] key_file = \"{out}\"",
                    "set [node] key_file = \"{out}\" in the agent config"),
    "none": ("登记簿中没有节点：{registry}", "no node in registry {registry}"),
    "row": ("{node}\t{division}\t{status}\t密钥版本 {version}{older}\t{user}",
            "{node}\t{division}\t{status}\tkey version {version}{older}\t{user}"),
    "older": ("（旧版本 {versions} 仍有效）", " (older {versions} still valid)"),
    "unreadable": ("错误：登记文件 {file} 无法读取，未列出：{reason}",
                   "error: registry file {file} is unreadable and not listed: {reason}"),
    "disabled": ("节点 {node} 已停用：网关将拒收其批次{broker}",
                 "node {node} disabled: gateways refuse its batches{broker}"),
    "disabled-broker": ("，其消息服务器权限已撤销、连接已断开",
                        "; its broker permissions were revoked and connections closed"),
    "enabled": ("节点 {node} 已重新启用：网关将接收其批次{broker}；其被拒收的批次可用 "
                "exgate batches replay 重放",
                "node {node} enabled: gateways accept its batches{broker}; replay its refused "
                "batches with exgate batches replay"),
    "enabled-broker": ("，其消息服务器权限已恢复，新口令已写入 {out}：请将该文件复制到节点并"
                       "重启其前置机代理",
                       "; its broker permissions are back and a new password is in {out}: "
                       "copy that file to the node and restart its agent"),
    "rotated": ("节点 {node} 已更换密钥：新版本 {version}，写入 {out}；请重启该节点的前置机代理。"
                "旧版本仍可验证批次，直至用 exgate node retire-key {node} --version {old} "
                "停用（待在途批次入库后）",
                "node {node} has a new key, version {version}, written to {out}; restart "
                "that node's agent. Older versions keep verifying batches until retired with "
                "exgate node retire-key {node} --version {old} (once batches in flight "
                "have landed)"),
    "retired": ("节点 {node} 的密钥版本 {version} 已停用：以其封装的批次将被拒收"
                "（unknown-key-version）；仍有效的版本：{left}。凭据文件中的消息服务器口令"
                "不随密钥更换：凭据文件泄露时，请用 exgate node disable 再 enable 更换口令",
                "node {node}: key version {version} retired; batches sealed with it are "
                "refused (unknown-key-version); versions still valid: {left}. The broker "
                "password in the credentials file does not change with the key: if the "
                "file leaked, run exgate node disable, then enable, for a new password"),
    "gw-created": ("已创建 {division} 级网关的消息服务器用户 {user}", "broker user {user} created "
                   "for the gateway of level {division}"),
    "gw-taken-over": ("{division} 级网关的消息服务器用户 {user} 已存在：已重新授权并换发新口令；"
                      "仍用旧口令的网关进程重连时将被拒绝，请更新其 password_file 后重启",
                      "broker user {user} of the gateway of level {division} already "
                      "existed: its permissions were set again and it has a new password; "
                      "gateways still using the old one are refused when they reconnect: "
                      "point their password_file at the new file and restart them"),
    "gw-rights": ("权限（最小授权）：消费 {queues}，向 exgate.receipts 发送回执；不能向 "
                  "exgate.records、exgate.status 发布，也不能读取其他层级或节点的队列",
                  "permissions (least privilege): consume {queues}, send receipts to "
                  "exgate.receipts; no publishing to exgate.records or exgate.status, no "
                  "other level's or node's queues"),
    "gw-password": ("口令已写入 {out}（权限 0600，请妥善保管）；队列与交换机已声明",
                    "its password is in {out} (mode 0600: keep it secret); the level's "
                    "exchanges and queues are declared"),
    "gw-config": ("在该级网关配置中设置（主机名以网关访问消息服务器的地址为准）：",
                  "put in that level's gateway config (with the host name the gateway "
                  "reaches the broker by):"),
    "error": ("错误：{error}", "error: {error}"),
}


def _say(name: str, lang: str, /, **values: object) -> str:
    return said(_TEXT, name, lang, **values)


def default_broker_base() -> Path:
    """``$EXGATE_BROKER_BASE``, else a folder the ``rabbitmq`` user can reach."""
    env = os.environ.get("EXGATE_BROKER_BASE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/exgate/broker")
    return Path.home() / ".local" / "state" / "exgate" / "broker"


def _guarded(lang: str, work: Callable[[], int | None]) -> int:
    try:
        return work() or 0
    except ConfigError as exc:
        print(_say("error", lang, error=exc.message(lang)), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(_say("error", lang, error=exc), file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command was given
        from schemas.audit_report import system_reason  # here: it loads the validator

        where = "" if exc.filename is None else f"{exc.filename}: "
        print(_say("error", lang, error=where + system_reason(exc, lang)), file=sys.stderr)
        return 2
    except ExgateError as exc:
        print(_say("error", lang, error=exc.message(lang)), file=sys.stderr)
        return 1


def run_broker(action: str, base: Path | None, levels: Sequence[str], lang: str) -> int:
    given, base = base, base or default_broker_base()

    def work() -> None:
        # A missing one is made by start, named by the others.
        check_folder(base, "--base" if given is not None else "broker folder",
                     None if given is not None else "消息服务器目录", may_be_missing=True)
        broker = LocalBroker(base) if action == "start" else LocalBroker.existing(base)
        if action == "start":
            broker.start()
            declare_topology(HttpChannel(ManagementApi.from_broker(broker), lang=lang), levels)
            ports = broker.ports
            print(_say("started", lang, node=broker.node_name, amqp=ports.amqp,
                       mgmt=ports.management, base=base))
            print(_say("topology", lang, levels=", ".join(levels) or "-"))
            print(_say("admin", lang, user=broker.admin_user,
                       state=base / "exgate-broker.json"))
        elif action == "stop":
            broker.stop()
            print(_say("stopped", lang, base=base))
        else:
            status = broker.status()
            key = "running" if status.running else "not-running"
            print(_say(key, lang, node=status.node_name, pid=status.pid,
                       amqp=status.ports.amqp, base=base))
            if not status.running:
                raise SystemExit(3)

    try:
        return _guarded(lang, work)
    except SystemExit as stop:
        return int(stop.code or 0)


def admin_api(broker_base: Path | None, admin_url: str | None,
              option: str = "--broker-base") -> ManagementApi:
    """The management API at ``admin_url``, else that of the private broker under
    ``broker_base``, given as ``option`` (default: the one ``exgate broker start`` made;
    a file or an unreadable folder is named, a missing one by ``LocalBroker.existing``)."""
    if admin_url:
        return ManagementApi.from_url(admin_url)
    if broker_base is not None:
        check_folder(broker_base, option, may_be_missing=True)
    return ManagementApi.from_broker(LocalBroker.existing(broker_base or default_broker_base()))


def run_node(action: str, *, node_id: str | None = None, division: str | None = None,
             registry: Path, broker_base: Path | None = None, admin_url: str | None = None,
             vhost: str = "/", out: Path | None = None, key_version: int | None = None,
             lang: str = "zh") -> int:
    reg = Registry(registry)

    def add() -> None:
        assert node_id is not None and division is not None
        target = out or Path(f"{node_id}.key")
        done = add_node(lambda: admin_api(broker_base, admin_url), reg, node_id, division, target,
                        vhost=vhost, lang=lang)
        print(_say("added", lang, node=node_id, division=division, user=done.broker_user,
                   key=done.routing_key, out=target, registry=registry))
        print(_say("config-hint", lang, out=target.absolute()))

    def listing() -> int:
        scan = reg.scan()
        if not scan.entries and not scan.unreadable:
            print(_say("none", lang, registry=registry))
        for entry in scan.entries:
            older = [str(k.version) for k in entry.keys if k.version != entry.key_version]
            print(_say("row", lang, node=entry.node_id, division=entry.division,
                       status=entry.status, version=entry.key_version, user=entry.broker_user,
                       older=_say("older", lang, versions=", ".join(older)) if older else ""))
        for bad in scan.unreadable:
            print(_say("unreadable", lang, file=bad.file, reason=bad.reason_in(lang)),
                  file=sys.stderr)
        return 2 if scan.unreadable else 0

    def disable() -> None:
        assert node_id is not None
        reg.require(node_id)  # a node not registered is said before any broker is sought
        with_broker = broker_base is not None or admin_url is not None
        api = admin_api(broker_base, admin_url) if with_broker else None
        disable_node(api, reg, node_id, vhost=vhost)
        extra = _say("disabled-broker", lang) if with_broker else ""
        print(_say("disabled", lang, node=node_id, broker=extra))

    def enable() -> None:
        assert node_id is not None
        reg.require(node_id)  # a node not registered is said before any broker is sought
        with_broker = broker_base is not None or admin_url is not None
        api = admin_api(broker_base, admin_url) if with_broker else None
        target = out or Path(f"{node_id}.key")
        enable_node(api, reg, node_id, target, vhost=vhost)
        extra = _say("enabled-broker", lang, out=target) if with_broker else ""
        print(_say("enabled", lang, node=node_id, broker=extra))

    def rotate() -> None:
        assert node_id is not None
        target = out or Path(f"{node_id}.key")
        entry = rotate_node_key(reg, node_id, target)
        print(_say("rotated", lang, node=node_id, version=entry.key_version, out=target,
                   old=entry.key_version - 1))

    def retire() -> None:
        assert node_id is not None and key_version is not None
        entry = reg.retire(node_id, key_version)
        print(_say("retired", lang, node=node_id, version=key_version,
                   left=", ".join(str(k.version) for k in entry.keys)))

    def checked() -> int | None:
        there = check_folder(registry, "--registry", may_be_missing=True)
        if not there and action != "add":  # a mistyped --registry: never "no node in" it
            raise ConfigError(f"node registry {registry} does not exist: check --registry "
                              "(exgate node add creates it)",
                              zh=f"节点登记簿 {registry} 不存在：请检查 --registry"
                                 "（由 exgate node add 创建）")
        actions = {"add": add, "list": listing, "disable": disable, "enable": enable,
                   "rotate-key": rotate, "retire-key": retire}
        return actions[action]()

    return _guarded(lang, checked)


def run_gateway_user(division: str, *, out: Path, user: str | None = None,
                     broker_base: Path | None = None, admin_url: str | None = None,
                     vhost: str = "/", lang: str = "zh") -> int:
    """``exgate gateway user``: the level gateway's broker user (``gateway_user``)."""

    def work() -> None:
        done = provision_gateway_user(lambda: admin_api(broker_base, admin_url), division,
                                      out, user=user, vhost=vhost, lang=lang)
        said_key = "gw-taken-over" if done.existed else "gw-created"
        print(_say(said_key, lang, user=done.user, division=division))
        queues = ("、" if lang == "zh" else ", ").join(
            (level_queue(division), status_queue(division), dead_queue(division)))
        print(_say("gw-rights", lang, queues=queues))
        print(_say("gw-password", lang, out=out))
        print(_say("gw-config", lang))
        # JSON strings are TOML basic strings (the credentials file is written so too).
        print(f"[broker]\nurl = {json.dumps(done.broker_url)}\n"
              f"password_file = {json.dumps(str(out.absolute()), ensure_ascii=False)}")

    return _guarded(lang, work)

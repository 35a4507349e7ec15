"""The private broker's state file: the settings a node keeps across restarts, and its PIDs.

The state file in the base folder (node name, ports, PIDs, admin credentials) lets a
second process, such as the CLI, stop or inspect a node it did not start. It holds the
admin password, so it is written with mode 0600, as ``write_private`` writes any secret.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.loopback import free_ports
from schemas.errors import ConfigError

__all__ = [
    "STATE_FILE",
    "BrokerPorts",
    "NodePids",
    "NodeSettings",
    "check_same_ports",
    "load_settings",
    "new_settings",
    "read_pids",
    "read_state",
    "write_private",
    "write_state",
]

STATE_FILE = "exgate-broker.json"
STATE_VERSION = 1


@dataclass(frozen=True)
class BrokerPorts:
    """Loopback ports of one node; ``management`` is None when the plugin is off."""

    amqp: int
    dist: int
    epmd: int
    prometheus: int
    management: int | None


@dataclass(frozen=True)
class NodeSettings:
    """What must stay the same across restarts for the node to find its data."""

    node_name: str
    ports: BrokerPorts
    admin_user: str
    admin_password: str = field(repr=False)


@dataclass(frozen=True)
class NodePids:
    launcher: int | None = None
    beam: int | None = None
    epmd: int | None = None


def new_settings(
    *,
    amqp_port: int | None,
    dist_port: int | None,
    epmd_port: int | None,
    prometheus_port: int | None,
    management_port: int | None,
    admin_user: str,
    admin_password: str | None,
) -> NodeSettings:
    """Settings for a node's first start: free ports where none is given, a new password.

    ``management_port=0`` picks a free port; None disables the management plugin.
    """
    wanted = (amqp_port, dist_port, epmd_port, prometheus_port, management_port)
    picked = iter(free_ports(len(wanted)))
    amqp, dist, epmd, prom, mgmt = (port or next(picked) for port in wanted)
    return NodeSettings(
        node_name=f"exgate-{amqp}@localhost",
        ports=BrokerPorts(
            amqp=amqp,
            dist=dist,
            epmd=epmd,
            prometheus=prom,
            management=None if management_port is None else mgmt,
        ),
        admin_user=admin_user,
        admin_password=admin_password or secrets.token_urlsafe(18),
    )


def read_state(base_dir: Path) -> dict[str, Any] | None:
    """The state file of ``base_dir`` as saved, or None when there is none."""
    path = base_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable: a folder by that name, permissions
        raise ConfigError(f"{path} cannot be read: {exc.strerror or exc}",
                          zh=f"{path} 无法读取：{exc.strerror or exc}") from exc
    except ValueError as exc:  # not JSON, or not UTF-8: written by something else
        raise ConfigError(f"{path} is not a broker state file exgate wrote: {exc}",
                          zh=f"{path} 不是 exgate 写入的消息服务器状态文件：{exc}") from exc
    if not isinstance(state, dict):
        state = {}  # JSON, but no object: refused below for its missing version
    if state.get("version") != STATE_VERSION:
        raise ConfigError(
            f"{base_dir / STATE_FILE} has version "
            f"{state.get('version')!r}; this exgate reads {STATE_VERSION}",
            zh=f"{base_dir / STATE_FILE} 的版本为 {state.get('version')!r}；"
            f"此 exgate 只能读取版本 {STATE_VERSION}",
        )
    return state


def load_settings(base_dir: Path) -> NodeSettings | None:
    """The settings saved in ``base_dir``, or None before the node's first start."""
    state = read_state(base_dir)
    if state is None:
        return None
    try:
        return NodeSettings(
            node_name=state["node_name"],
            ports=BrokerPorts(**state["ports"]),
            admin_user=state["admin_user"],
            admin_password=state["admin_password"],
        )
    except (KeyError, TypeError) as exc:
        raise _garbled(base_dir, exc) from exc


def read_pids(base_dir: Path) -> NodePids:
    state = read_state(base_dir)
    try:
        return NodePids(**state["pids"]) if state else NodePids()
    except (KeyError, TypeError) as exc:
        raise _garbled(base_dir, exc) from exc


def _garbled(base_dir: Path, exc: KeyError | TypeError) -> ConfigError:
    """A state file that parses but lacks a key, or holds one of another form."""
    path = base_dir / STATE_FILE
    what, what_zh = ((f"lacks the key {exc.args[0]!r}", f"缺少键 {exc.args[0]!r}")
                     if isinstance(exc, KeyError) else
                     (f"holds a value of another form ({exc})", f"含有形式不符的值（{exc}）"))
    return ConfigError(f"{path} {what}: not a state file this exgate wrote",
                       zh=f"{path} {what_zh}：不是此 exgate 写入的状态文件")


def write_state(base_dir: Path, settings: NodeSettings, pids: NodePids) -> None:
    state = {"version": STATE_VERSION, **asdict(settings), "pids": asdict(pids)}
    path = base_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(state, indent=2))
    tmp.replace(path)


def check_same_ports(base_dir: Path, kept: NodeSettings, *given: int | None) -> None:
    """Refuse asked-for amqp, dist, epmd and prometheus ports other than the saved ones."""
    ports = kept.ports
    for name, want, have in zip(
        ("amqp", "dist", "epmd", "prometheus"),
        given,
        (ports.amqp, ports.dist, ports.epmd, ports.prometheus),
        strict=True,
    ):
        if want not in (None, 0, have):
            raise ConfigError(
                f"{base_dir} holds node {kept.node_name} with {name} "
                f"port {have}, not {want}; use another base folder",
                zh=f"{base_dir} 中的节点 {kept.node_name} 的 {name} 端口是 {have}，"
                f"不是 {want}；请换用另一个目录",
            )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, also when the file existed more open."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)
        out.write(text)

"""The demo's moving parts on one private broker: levels, nodes, configs.

Everything is written as a user would write it by hand: node credentials files from
``exgate node add``, each level gateway's broker user from ``exgate gateway user``, agent
and gateway TOML files next to their data, passwords in files (never in a config). The
end-to-end tests build their world with these too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.amqp.topology import declare_topology
from gateway.broker_node import LocalBroker
from gateway.gateway_user import gateway_user_name, provision_gateway_user
from gateway.mgmt_api import HttpChannel, ManagementApi
from gateway.provisioning import add_node
from gateway.registry import Registry

__all__ = ["GatewayLogin", "NodeSpec", "agent_config", "create_gateway_user",
           "declare_levels", "gateway_config", "provision"]


@dataclass(frozen=True)
class NodeSpec:
    """One front-end machine of the demo: who it is and what it reads."""

    node_id: str
    division: str
    kind: str  # "db" | "folder"


@dataclass(frozen=True)
class GatewayLogin:
    user: str
    password_file: Path
    broker_url: str  # with the user, without the password


def declare_levels(broker: LocalBroker, levels: Sequence[str], vhost: str = "/",
                   lang: str = "zh") -> None:
    """Exchanges and every level's queues, before any agent publishes (mandatory)."""
    declare_topology(HttpChannel(ManagementApi.from_broker(broker), vhost, lang), levels)


def provision(broker: LocalBroker, registry: Path, keys: Path, node: NodeSpec,
              vhost: str = "/", lang: str = "zh") -> Path:
    """``exgate node add``: broker user, topic permissions, keys, registry; the key file."""
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = keys / f"{node.node_id}.key"
    add_node(lambda: ManagementApi.from_broker(broker), Registry(registry), node.node_id,
             node.division, key_file, vhost=vhost, lang=lang)
    return key_file


def create_gateway_user(broker: LocalBroker, secrets_dir: Path, division: str,
                        vhost: str = "/", lang: str = "zh") -> GatewayLogin:
    """``exgate gateway user``: the broker user of one level's gateway, allowed that
    level's queues only (one per level, though all share the broker); password in a file."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / f"{gateway_user_name(division)}.password"
    done = provision_gateway_user(lambda: ManagementApi.from_broker(broker), division, path,
                                  vhost=vhost, lang=lang)
    return GatewayLogin(done.user, path, done.broker_url)


def _toml(value: str | Path) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def agent_config(path: Path, node: NodeSpec, *, key_file: Path, broker_url: str,
                 source: str, poll_seconds: float = 1.0, batch_max_records: int = 100,
                 linger_seconds: float = 0.0) -> Path:
    """Write an agent config; ``source`` is the path of the front DB file or drop folder.

    ``broker_url`` carries no login: the agent takes it from the key file.
    """
    if node.kind == "db":
        source_table = (f'kind = "db"\nname = "front-db"\nurl = {_toml("sqlite:///" + source)}\n'
                        'strategy = "flag"\n')
    else:
        source_table = (f'kind = "folder"\nname = "drop"\npath = {_toml(source)}\n'
                        'stable_seconds = 0\nrescan_seconds = 1\nobserver = "none"\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# exgate demo: agent of node {node.node_id} ({node.division})\n"
        f"[node]\nid = {_toml(node.node_id)}\ndivision = {_toml(node.division)}\n"
        f"key_file = {_toml(key_file)}\n\n"
        f"[broker]\nurl = {_toml(broker_url)}\n\n"
        f'[outbox]\npath = "outbox.db"\nbatch_max_records = {batch_max_records}\n'
        f"batch_linger_seconds = {linger_seconds}\n\n"
        f"[agent]\npoll_seconds = {poll_seconds}\n\n"
        f"[[sources]]\n{source_table}", encoding="utf-8")
    return path


def gateway_config(path: Path, division: str, *, broker_url: str, store_url: str,
                   registry: Path, password_file: Path | None = None, workers: int = 2,
                   drain_idle_seconds: float = 1.0, hold_seconds: float = 1200.0,
                   lang: str = "zh") -> Path:
    """Write a level's gateway config, logging in ``lang``; the password stays in
    ``password_file``."""
    password = f"password_file = {_toml(password_file)}\n" if password_file else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# exgate demo: gateway of level {division}\n"
        f"[level]\ndivision = {_toml(division)}\n\n"
        f"[broker]\nurl = {_toml(broker_url)}\n{password}\n"
        f"[store]\nurl = {_toml(store_url)}\n\n"
        f"[registry]\npath = {_toml(registry)}\n\n"
        f"[gateway]\nworkers = {workers}\ndrain_idle_seconds = {drain_idle_seconds}\n"
        f"hold_seconds = {hold_seconds}\nlang = {_toml(lang)}\n", encoding="utf-8")
    return path

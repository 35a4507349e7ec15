"""The private broker's base folder: where each file lives, and the files a node starts from.

Everything the node reads or writes (its HOME with the Erlang cookie, data, logs, config,
plugin list, PID file) lives under one base folder, never in the system node's places.
When we are root the node runs as the ``rabbitmq`` user, which owns the base folder.
"""

from __future__ import annotations

import os
import pwd
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.broker_state import STATE_FILE, NodeSettings, write_private
from gateway.loopback import LOOPBACK

__all__ = ["DEFAULT_PLUGINS", "NodeFolder", "write_node_files"]

DEFAULT_PLUGINS = (
    "rabbitmq_federation",
    "rabbitmq_shovel",
    "rabbitmq_prometheus",
    # The link states over the management API (``federation-links``, ``shovels``);
    # left out, with the management plugin, when a node runs without it.
    "rabbitmq_federation_management",
    "rabbitmq_shovel_management",
)
MANAGEMENT_PLUGIN = "rabbitmq_management"


@dataclass(frozen=True)
class NodeFolder:
    """The paths of one node's files under its base folder ``base``."""

    base: Path

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def data(self) -> Path:
        return self.base / "mnesia"

    @property
    def log(self) -> Path:
        return self.base / "log"

    @property
    def config(self) -> Path:
        return self.base / "rabbitmq.conf"

    @property
    def plugins(self) -> Path:
        return self.base / "enabled_plugins"

    @property
    def env_config(self) -> Path:
        return self.base / "rabbitmq-env.conf"

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"


def write_node_files(
    folder: NodeFolder,
    settings: NodeSettings,
    extra_config: Mapping[str, str],
    owner: pwd.struct_passwd | None,
) -> None:
    """Write the folders and files the node starts from; ``owner`` (None: us) gets them."""
    for path in (folder.base, folder.home, folder.data, folder.log):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # rabbitmq.conf holds the admin password: a folder made beforehand (0755) is
    # closed too. Only its owner, the node user once chowned below, and root enter.
    folder.base.chmod(0o700)
    cookie = folder.home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(secrets.token_hex(16).upper())
    cookie.chmod(0o400)
    plugins = [*DEFAULT_PLUGINS, MANAGEMENT_PLUGIN]
    if settings.ports.management is None:
        # The *_management plugins would pull in rabbitmq_management, on port 15672.
        plugins = [name for name in plugins if not name.endswith("_management")]
    folder.plugins.write_text(f"[{','.join(plugins)}].\n")
    write_private(folder.config, _config_text(settings, extra_config))
    folder.env_config.write_text("# empty: never read the system one\n")
    if owner is not None:
        _chown(folder, owner)


def _config_text(settings: NodeSettings, extra_config: Mapping[str, str]) -> str:
    ports = settings.ports
    lines = {
        "listeners.tcp.default": f"{LOOPBACK}:{ports.amqp}",
        "default_user": settings.admin_user,
        "default_pass": settings.admin_password,
        "default_user_tags.administrator": "true",
        "prometheus.tcp.ip": LOOPBACK,
        "prometheus.tcp.port": str(ports.prometheus),
        "log.console": "false",
        "log.file.level": "info",
    }
    if ports.management is not None:
        lines |= {"management.tcp.ip": LOOPBACK, "management.tcp.port": str(ports.management)}
    lines |= extra_config
    return "".join(f"{key} = {value}\n" for key, value in lines.items())


def _chown(folder: NodeFolder, owner: pwd.struct_passwd) -> None:
    for path in [folder.base, *folder.base.iterdir()]:
        if path.name != STATE_FILE:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    for root, dirs, files in os.walk(folder.home):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, owner.pw_uid, owner.pw_gid)

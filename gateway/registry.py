"""The node registry: one JSON file per node that the gateways read to authenticate batches.

``<registry>/<node_id>.json``::

    {"node_id", "division", "broker_user", "status": "active|disabled",
     "keys": [{"version", "verify_key", "dek", "created"}]}

Files are mode 0600 in a 0700 folder because they hold the nodes' data keys. Writes are
atomic (temp file, fsync, rename), so a gateway never reads half an entry. Every key
version stays valid after a rotation, so batches sealed just before it still open; a
disabled node has no valid key at all.

``get`` raises ``EntryError`` for a file that is no readable entry: a gateway must not
take a broken entry for an unknown node, nor guess its keys. ``scan`` (status views,
``exgate node list``) reads the files one by one and names each broken one with its
reason beside the entries that read: one bad file must not hide the other nodes.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.amqp.topology import check_division, check_node_id
from adapters.sealing import (
    NodeVerifier,
    decode_dek,
    decode_verify_key,
    encode_dek,
    encode_verify_key,
)
from schemas.errors import ConfigError, located, wrapped
from schemas.times import BEIJING

__all__ = ["EntryError", "KeyEntry", "NodeEntry", "Registry", "RegistryScan", "UnreadableEntry"]

ACTIVE = "active"
DISABLED = "disabled"


class EntryError(ConfigError):
    """A registry file that is no readable node entry; ``reason`` says why (in Chinese:
    ``reason_zh``)."""

    def __init__(self, file: Path, reason: str, reason_zh: str) -> None:
        super().__init__(f"{file}: {reason}", zh=f"{file}：{reason_zh}")
        self.file = file
        self.reason = reason
        self.reason_zh = reason_zh


@dataclass(frozen=True, slots=True)
class KeyEntry:
    version: int
    verify_key: str  # base64 raw Ed25519 public key
    dek: str = field(repr=False)  # base64 AES-256 key: secret
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "verify_key": self.verify_key, "dek": self.dek,
                "created": self.created}


@dataclass(frozen=True, slots=True)
class NodeEntry:
    node_id: str
    division: str
    broker_user: str
    status: str
    keys: tuple[KeyEntry, ...]

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def key_version(self) -> int:
        """The newest key version (the one the node seals with after a rotation)."""
        return max((key.version for key in self.keys), default=0)

    def key(self, version: int) -> KeyEntry | None:
        return next((key for key in self.keys if key.version == version), None)

    def to_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "division": self.division,
                "broker_user": self.broker_user, "status": self.status,
                "keys": [key.to_json() for key in self.keys]}

    @classmethod
    def from_json(cls, data: Any, where: Path) -> NodeEntry:
        try:
            keys = tuple(KeyEntry(int(k["version"]), str(k["verify_key"]), str(k["dek"]),
                                  str(k.get("created", ""))) for k in data["keys"])
            entry = cls(str(data["node_id"]), str(data["division"]), str(data["broker_user"]),
                        str(data["status"]), keys)
        except (KeyError, TypeError, ValueError) as exc:
            raise EntryError(where, f"not a node registry entry ({exc!r} missing or bad)",
                             f"不是节点登记条目（{exc!r} 缺失或有误）") from exc
        if entry.status not in (ACTIVE, DISABLED):
            raise EntryError(where, f"status {entry.status!r} is not active or disabled",
                             f"状态 {entry.status!r} 既不是 active 也不是 disabled")
        return entry


@dataclass(frozen=True, slots=True)
class UnreadableEntry:
    file: Path
    reason: str       # English, as logs and JSON carry it
    reason_zh: str

    def reason_in(self, lang: str) -> str:
        return self.reason if lang == "en" else self.reason_zh


@dataclass(frozen=True, slots=True)
class RegistryScan:
    """The entries that read, by node ID, and the files that did not."""

    entries: tuple[NodeEntry, ...]
    unreadable: tuple[UnreadableEntry, ...]


class Registry:
    """A folder of node entries; cheap to query repeatedly (entries cached by mtime)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._cache: dict[str, tuple[tuple[int, int], NodeEntry]] = {}

    # -- reading (gateways) --------------------------------------------------------------

    def get(self, node_id: str) -> NodeEntry | None:
        """The node's entry, or None when the ID is unknown (or not a valid ID).

        ``EntryError`` when the node's file is no readable entry.
        """
        try:
            file = self._file(node_id)
            stat = file.stat()
        except (ValueError, FileNotFoundError):
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(node_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        entry = self._read(file)
        self._cache[node_id] = (stamp, entry)
        return entry

    def verifier(self, node_id: str, key_version: int) -> NodeVerifier | None:
        """Key material to unseal a batch; None for unknown or disabled nodes and versions."""
        entry = self.get(node_id)
        if entry is None or not entry.active:
            return None
        key = entry.key(key_version)
        if key is None:
            return None
        try:
            return NodeVerifier(node_id, key.version, decode_verify_key(key.verify_key),
                                decode_dek(key.dek))
        except ConfigError as exc:
            file = self._file(node_id)
            raise wrapped(f"{file}: key version {key_version}", exc,
                         where_zh=f"{file}：密钥版本 {key_version}") from exc

    def scan(self) -> RegistryScan:
        """Every entry of the folder that reads, and every ``*.json`` file that does not."""
        if not self.path.is_dir():
            return RegistryScan((), ())
        try:
            names = sorted(e.name for e in os.scandir(self.path) if e.name.endswith(".json"))
        except OSError as exc:
            return RegistryScan((), (UnreadableEntry(
                self.path, f"cannot list the folder: {exc.strerror}",
                f"无法列出文件夹：{exc.strerror}"),))
        entries: list[NodeEntry] = []
        unreadable: list[UnreadableEntry] = []
        for name in names:
            file = self.path / name
            try:
                entry = self.get(check_node_id(name.removesuffix(".json")))
            except ValueError:
                unreadable.append(UnreadableEntry(
                    file, "the file name is not a node ID (1-64 of [0-9A-Za-z_-])",
                    "文件名不是节点 ID（1 至 64 个 [0-9A-Za-z_-] 字符）"))
            except EntryError as exc:
                unreadable.append(UnreadableEntry(exc.file, exc.reason, exc.reason_zh))
            except OSError as exc:
                unreadable.append(UnreadableEntry(file, f"cannot read: {exc.strerror}",
                                                  f"无法读取：{exc.strerror}"))
            else:
                if entry is not None:  # None: removed since the folder was listed
                    entries.append(entry)
        return RegistryScan(tuple(entries), tuple(unreadable))

    # -- administration (provisioning) -------------------------------------------------------

    def add(self, node_id: str, division: str, broker_user: str,
            verifier: NodeVerifier) -> NodeEntry:
        """Register a new node with its first key; ``ConfigError`` if the ID is taken."""
        check_node_id(node_id)
        check_division(division)
        if self.get(node_id) is not None:
            raise ConfigError(f"node {node_id} is already registered in {self.path}; use "
                              f"`exgate node rotate-key {node_id}` for new keys",
                              zh=f"节点 {node_id} 已在 {self.path} 中登记；如需新密钥，请用 "
                                 f"`exgate node rotate-key {node_id}`")
        entry = NodeEntry(node_id, division, broker_user, ACTIVE, (_key_entry(verifier),))
        self._write(entry)
        return entry

    def disable(self, node_id: str) -> NodeEntry:
        entry = replace(self.require(node_id), status=DISABLED)
        self._write(entry)
        return entry

    def enable(self, node_id: str) -> NodeEntry:
        entry = replace(self.require(node_id), status=ACTIVE)
        self._write(entry)
        return entry

    def rotate(self, node_id: str, verifier: NodeVerifier) -> NodeEntry:
        """Add a newer key version; older versions stay valid for batches in flight."""
        entry = self.require(node_id)
        if verifier.key_version <= entry.key_version:
            raise located(f"node {node_id}", f"new key version {verifier.key_version} must "
                          f"be above {entry.key_version}",
                          f"新密钥版本 {verifier.key_version} 必须大于 {entry.key_version}",
                          where_zh=f"节点 {node_id}")
        entry = replace(entry, keys=(*entry.keys, _key_entry(verifier)))
        self._write(entry)
        return entry

    def retire(self, node_id: str, key_version: int) -> NodeEntry:
        """Stop accepting an older key version once the node seals with a newer one
        (its batches in flight have landed): batches sealed with a copy of the old key
        are refused then. The credentials file also holds the node's broker login, which
        a key changes nothing about: a leaked file is cut off by ``node disable`` and
        ``node enable``, which sets a new broker password."""
        entry = self.require(node_id)
        where, where_zh = f"node {node_id}", f"节点 {node_id}"
        if entry.key(key_version) is None:
            held = ", ".join(str(k.version) for k in entry.keys)
            raise located(where, f"has no key version {key_version} (it has {held})",
                          f"没有密钥版本 {key_version}（现有 {held}）", where_zh=where_zh)
        if key_version == entry.key_version:
            raise located(where, f"key version {key_version} is the one it seals with; "
                          "rotate the key first (exgate node rotate-key)",
                          f"密钥版本 {key_version} 是其当前使用的版本；请先更换密钥"
                          "（exgate node rotate-key）", where_zh=where_zh)
        return self.withdraw(node_id, key_version)

    def withdraw(self, node_id: str, key_version: int) -> NodeEntry:
        """Remove one key version: undoes a rotation whose key file could not be written."""
        entry = self.require(node_id)
        entry = replace(entry, keys=tuple(k for k in entry.keys if k.version != key_version))
        self._write(entry)
        return entry

    def require(self, node_id: str) -> NodeEntry:
        """The node's entry; ConfigError naming the registry when it has none."""
        entry = self.get(node_id)
        if entry is None:
            raise ConfigError(f"node {node_id!r} is not registered in {self.path}; "
                              "see `exgate node list`",
                              zh=f"节点 {node_id!r} 未在 {self.path} 中登记；请查看 "
                                 "`exgate node list`")
        return entry

    # -- files -------------------------------------------------------------------------------

    def _file(self, node_id: str) -> Path:
        return self.path / f"{check_node_id(node_id)}.json"

    def _read(self, file: Path) -> NodeEntry:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EntryError(file, f"cannot read node entry: {exc}",
                             f"无法读取节点登记条目：{exc}") from exc
        entry = NodeEntry.from_json(data, file)
        if entry.node_id != file.stem:
            raise EntryError(file, f"holds node {entry.node_id!r}, not {file.stem!r}",
                             f"存放的是节点 {entry.node_id!r}，而不是 {file.stem!r}")
        return entry

    def _write(self, entry: NodeEntry) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        file = self._file(entry.node_id)
        tmp = self.path / f".{entry.node_id}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entry.to_json(), out, ensure_ascii=False, indent=2)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._cache.pop(entry.node_id, None)


def _key_entry(verifier: NodeVerifier) -> KeyEntry:
    created = datetime.now(BEIJING).isoformat(timespec="seconds")
    return KeyEntry(verifier.key_version, encode_verify_key(verifier.verify_key),
                    encode_dek(verifier.dek), created)

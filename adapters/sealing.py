"""Sealing batches on the wire: gzip, AES-256-GCM, then an Ed25519 signature.

Body layout (all lengths fixed except the ciphertext)::

    b"EXG1" | nonce (12) | ciphertext + GCM tag (16) | Ed25519 signature (64)

The signature covers everything before it. The GCM associated data binds the
ciphertext to ``node_id``, ``batch_id`` and ``key_version``, so a body replayed under
another batch ID or node fails to decrypt even though its signature still verifies.
``unseal`` checks in the order that costs an attacker the most: format, signature,
decryption, then a size-capped gunzip (a gzip bomb is refused, never inflated).

Key files are TOML, mode 0600, with base64 values; they are never logged.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import secrets
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.errors import ConfigError, RejectedBatch, located, wrapped

__all__ = [
    "DEFAULT_MAX_PLAIN_BYTES",
    "MAGIC",
    "BrokerLogin",
    "NodeKeys",
    "NodeVerifier",
    "SealError",
    "associated_data",
    "decode_dek",
    "decode_verify_key",
    "encode_dek",
    "encode_verify_key",
    "generate_node_keys",
    "load_broker_login",
    "load_node_keys",
    "seal",
    "unseal",
    "write_node_keys",
    "write_secret",
]

MAGIC = b"EXG1"
NONCE_BYTES = 12
TAG_BYTES = 16
SIGNATURE_BYTES = 64
DEK_BYTES = 32
DEFAULT_MAX_PLAIN_BYTES = 256 * 1024 * 1024
_MIN_BODY = len(MAGIC) + NONCE_BYTES + TAG_BYTES + SIGNATURE_BYTES
_CHUNK = 1024 * 1024
# zlib's fast levels: a batch XML compresses about 10x faster than at gzip's default 9
# for about a fifth more bytes, and the publisher seals every batch in Python's one core.
_GZIP_LEVEL = 3
_FILE_VERSION = 1


class SealError(RejectedBatch):
    """A sealed body is refused; ``reason`` is bad-format, bad-signature,
    bad-ciphertext or too-large."""

    def __init__(self, reason: str, message: str, *, batch_id: str | None = None,
                 node_id: str | None = None) -> None:
        super().__init__(message, batch_id=batch_id, node_id=node_id)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NodeVerifier:
    """What a gateway holds for one key version of a node."""

    node_id: str
    key_version: int
    verify_key: Ed25519PublicKey = field(repr=False)
    dek: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """A node's secret material for one key version."""

    node_id: str
    key_version: int
    signing_key: Ed25519PrivateKey = field(repr=False)
    dek: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.dek) != DEK_BYTES:
            raise located(f"node {self.node_id}",
                          f"the data key must be {DEK_BYTES} bytes, not {len(self.dek)}",
                          f"数据密钥必须为 {DEK_BYTES} 字节，实际为 {len(self.dek)} 字节",
                          where_zh=f"节点 {self.node_id}")

    def verifier(self) -> NodeVerifier:
        """The public half (plus the shared DEK) that goes into the registry."""
        return NodeVerifier(self.node_id, self.key_version, self.signing_key.public_key(),
                            self.dek)


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """The node's own broker user, kept in the credentials file beside its keys."""

    user: str
    password: str = field(repr=False)


def generate_node_keys(node_id: str, key_version: int = 1) -> NodeKeys:
    """A fresh Ed25519 key pair and a random 32-byte DEK."""
    return NodeKeys(node_id, key_version, Ed25519PrivateKey.generate(),
                    secrets.token_bytes(DEK_BYTES))


def associated_data(node_id: str, batch_id: str, key_version: int) -> bytes:
    return f"{node_id}\n{batch_id}\n{key_version}".encode()


# -- sealing --------------------------------------------------------------------------


def seal(plain: bytes, keys: NodeKeys, batch_id: str) -> bytes:
    """gzip → AES-256-GCM (random nonce, AAD node/batch/version) → Ed25519 signature."""
    nonce = os.urandom(NONCE_BYTES)
    aad = associated_data(keys.node_id, batch_id, keys.key_version)
    ciphertext = AESGCM(keys.dek).encrypt(nonce, gzip.compress(plain, _GZIP_LEVEL, mtime=0), aad)
    signed = MAGIC + nonce + ciphertext
    return signed + keys.signing_key.sign(signed)


def unseal(body: bytes, verifier: NodeVerifier, batch_id: str, *,
           max_plain_bytes: int = DEFAULT_MAX_PLAIN_BYTES) -> bytes:
    """Verify the signature, decrypt, gunzip (capped); raise ``SealError`` otherwise."""
    ids = {"batch_id": batch_id, "node_id": verifier.node_id}
    if len(body) < _MIN_BODY or not body.startswith(MAGIC):
        raise SealError("bad-format", f"batch {batch_id}: not a sealed exgate body "
                        f"({len(body)} bytes, magic {body[:4]!r})", **ids)
    signed, signature = body[:-SIGNATURE_BYTES], body[-SIGNATURE_BYTES:]
    try:
        verifier.verify_key.verify(signature, signed)
    except InvalidSignature as exc:
        raise SealError("bad-signature", f"batch {batch_id}: signature does not verify with "
                        f"node {verifier.node_id} key version {verifier.key_version}",
                        **ids) from exc
    nonce = signed[len(MAGIC):len(MAGIC) + NONCE_BYTES]
    aad = associated_data(verifier.node_id, batch_id, verifier.key_version)
    try:
        packed = AESGCM(verifier.dek).decrypt(nonce, signed[len(MAGIC) + NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SealError("bad-ciphertext", f"batch {batch_id}: decryption failed (wrong key, "
                        "node, key version or batch ID)", **ids) from exc
    return _gunzip_capped(packed, max_plain_bytes, batch_id, ids)


def _gunzip_capped(packed: bytes, limit: int, batch_id: str, ids: dict[str, Any]) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip framing only
    out = bytearray()
    data = packed
    try:
        while data and not inflater.eof:
            out += inflater.decompress(data, min(_CHUNK, limit + 1 - len(out)))
            if len(out) > limit:
                raise SealError("too-large", f"batch {batch_id}: decompresses to more than "
                                f"{limit} bytes; refused", **ids)
            data = inflater.unconsumed_tail
    except zlib.error as exc:
        raise SealError("bad-format", f"batch {batch_id}: payload is not gzip: {exc}",
                        **ids) from exc
    if not inflater.eof or inflater.unused_data:
        raise SealError("bad-format", f"batch {batch_id}: truncated gzip or trailing data",
                        **ids)
    return bytes(out)


# -- encoding of public material (registry) ----------------------------------------------


def encode_verify_key(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def decode_verify_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_unb64(text, "verify_key", 32))


def encode_dek(dek: bytes) -> str:
    return _b64(dek)


def decode_dek(text: str) -> bytes:
    return _unb64(text, "dek", DEK_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, name: str, size: int) -> bytes:
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name} is not valid base64", zh=f"{name} 不是有效的 base64") from exc
    if len(data) != size:
        raise ConfigError(f"{name} must decode to {size} bytes, not {len(data)}",
                          zh=f"{name} 解码后必须为 {size} 字节，实际为 {len(data)} 字节")
    return data


# -- key files -------------------------------------------------------------------------------


def write_node_keys(path: Path | str, keys: NodeKeys, broker: BrokerLogin | None = None, *,
                    replace: bool = True) -> None:
    """Write the node's credentials file (TOML, 0600), atomically.

    With ``replace=False`` an existing file is never overwritten: ``FileExistsError``.
    """
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    raw = keys.signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    lines = ["# exgate node credentials: SECRET, keep mode 0600, never share or log",
             f"version = {_FILE_VERSION}", f"node_id = {json.dumps(keys.node_id)}",
             f"key_version = {int(keys.key_version)}", f'signing_key = "{_b64(raw)}"',
             f'dek = "{_b64(keys.dek)}"']
    if broker is not None:
        lines += ["", "[broker]", f"user = {json.dumps(broker.user)}",
                  f"password = {json.dumps(broker.password)}"]
    write_secret(Path(path), "\n".join(lines) + "\n", replace=replace)


def load_node_keys(path: Path | str) -> NodeKeys:
    """Read a credentials file; ``ConfigError`` if unreadable, malformed or too open."""
    data, path = _read_secret(Path(path))
    try:
        node_id, version = str(data["node_id"]), int(data["key_version"])
        signing = data["signing_key"]
        dek = data["dek"]
    except (KeyError, TypeError, ValueError) as exc:
        raise located(str(path), "key file lacks node_id, key_version, signing_key or dek",
                      "密钥文件缺少 node_id、key_version、signing_key 或 dek") from exc
    try:
        key = Ed25519PrivateKey.from_private_bytes(_unb64(signing, "signing_key", 32))
        return NodeKeys(node_id, version, key, _unb64(dek, "dek", DEK_BYTES))
    except ConfigError as exc:
        raise wrapped(str(path), exc) from exc


def load_broker_login(path: Path | str) -> BrokerLogin | None:
    """The ``[broker]`` user and password of a credentials file, if it has them."""
    data, path = _read_secret(Path(path))
    broker = data.get("broker")
    if not isinstance(broker, dict):
        return None
    user, password = broker.get("user"), broker.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise located(str(path), "[broker] needs string user and password",
                      "[broker] 中的 user 和 password 必须是字符串")
    return BrokerLogin(user, password)


def write_secret(path: Path, text: str, *, replace: bool = True) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (synced, then renamed or linked
    into place). With ``replace=False`` an existing file is never overwritten:
    ``FileExistsError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)  # FileExistsError rather than overwrite
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_secret(path: Path) -> tuple[dict[str, Any], Path]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise located(str(path), f"cannot read key file: {exc.strerror}",
                      f"无法读取密钥文件：{exc.strerror}") from exc
    except UnicodeDecodeError as exc:  # a binary file, or another one named by mistake
        raise located(str(path), "key file is not UTF-8 text: is it the file that "
                      "`exgate node add` wrote?",
                      "密钥文件不是 UTF-8 文本：请确认是 `exgate node add` 生成的文件") from exc
    if mode & 0o077:
        raise located(str(path), f"key file is readable by others (mode {mode & 0o777:o}); "
                      f"run `chmod 600 {path}`",
                      f"密钥文件可被他人读取（权限 {mode & 0o777:o}）；请运行 `chmod 600 {path}`")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        # Never echo the content: it is secret.
        raise located(str(path), "key file is neither TOML nor JSON",
                      "密钥文件既不是 TOML 也不是 JSON") from exc
    return data, path

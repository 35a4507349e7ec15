"""Sealing: round trip, every refusal reason, the gzip-bomb cap and key files."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.sealing import (
    MAGIC,
    BrokerLogin,
    SealError,
    associated_data,
    decode_dek,
    decode_verify_key,
    encode_dek,
    encode_verify_key,
    generate_node_keys,
    load_broker_login,
    load_node_keys,
    seal,
    unseal,
    write_node_keys,
)
from schemas.errors import ConfigError, RejectedBatch

PLAIN = "<EXCHANGE>数据</EXCHANGE>".encode() * 50


@pytest.fixture
def keys():
    return generate_node_keys("n1", 3)


def _reason(body, verifier, batch_id="B1", **kw):
    with pytest.raises(RejectedBatch) as info:
        unseal(body, verifier, batch_id, **kw)
    assert isinstance(info.value, SealError)
    assert info.value.batch_id == batch_id
    return info.value.reason


def test_round_trip(keys):
    body = seal(PLAIN, keys, "B1")
    assert body.startswith(MAGIC)
    assert unseal(body, keys.verifier(), "B1") == PLAIN


def test_nonce_is_random(keys):
    assert seal(PLAIN, keys, "B1") != seal(PLAIN, keys, "B1")


def test_empty_plain_round_trips(keys):
    assert unseal(seal(b"", keys, "B1"), keys.verifier(), "B1") == b""


@pytest.mark.parametrize("body", [b"", b"EXG1", b"XXXX" + bytes(200), b"EXG1" + bytes(40)])
def test_bad_format(keys, body):
    assert _reason(body, keys.verifier()) == "bad-format"


def test_flipped_ciphertext_byte_is_bad_signature(keys):
    body = bytearray(seal(PLAIN, keys, "B1"))
    body[20] ^= 1
    assert _reason(bytes(body), keys.verifier()) == "bad-signature"


def test_other_nodes_key_is_bad_signature(keys):
    other = generate_node_keys("n1", 3)
    assert _reason(seal(PLAIN, other, "B1"), keys.verifier()) == "bad-signature"


def test_replay_under_another_batch_id_is_bad_ciphertext(keys):
    assert _reason(seal(PLAIN, keys, "B1"), keys.verifier(), "B2") == "bad-ciphertext"


def test_wrong_key_version_is_bad_ciphertext(keys):
    body = seal(PLAIN, keys, "B1")
    v = keys.verifier()
    wrong = type(v)(v.node_id, 4, v.verify_key, v.dek)
    assert _reason(body, wrong) == "bad-ciphertext"


def test_signature_checked_before_decryption(keys):
    """A body signed by the right key but encrypted with another DEK: bad-ciphertext;
    the same body with a forged signature: bad-signature, never reaching AES."""
    v = keys.verifier()
    other_dek = type(v)(v.node_id, v.key_version, v.verify_key, bytes(32))
    body = seal(PLAIN, keys, "B1")
    assert _reason(body, other_dek) == "bad-ciphertext"
    forged = body[:-64] + bytes(64)
    assert _reason(forged, other_dek) == "bad-signature"


def _sealed_raw(keys, packed: bytes, batch_id: str = "B1") -> bytes:
    """Seal an arbitrary already-compressed payload, as a hostile node could."""
    nonce = os.urandom(12)
    aad = associated_data(keys.node_id, batch_id, keys.key_version)
    signed = MAGIC + nonce + AESGCM(keys.dek).encrypt(nonce, packed, aad)
    return signed + keys.signing_key.sign(signed)


def test_gzip_bomb_is_refused(keys):
    bomb = gzip.compress(bytes(8 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    assert _reason(_sealed_raw(keys, bomb), keys.verifier(),
                   max_plain_bytes=1024 * 1024) == "too-large"


def test_exactly_at_cap_is_accepted(keys):
    body = seal(bytes(4096), keys, "B1")
    assert unseal(body, keys.verifier(), "B1", max_plain_bytes=4096) == bytes(4096)
    assert _reason(body, keys.verifier(), max_plain_bytes=4095) == "too-large"


@pytest.mark.parametrize("packed", [b"not gzip at all", gzip.compress(PLAIN)[:-9],
                                    gzip.compress(PLAIN) + b"junk"])
def test_bad_gzip_inside_is_bad_format(keys, packed):
    assert _reason(_sealed_raw(keys, packed), keys.verifier()) == "bad-format"


def test_repr_never_shows_secrets(keys):
    text = repr(keys) + repr(keys.verifier()) + repr(BrokerLogin("u", "s3cret"))
    assert keys.dek.hex() not in text and "s3cret" not in text
    assert "dek" not in text


def test_dek_must_be_32_bytes(keys):
    with pytest.raises(ConfigError):
        type(keys)("n1", 1, keys.signing_key, b"short")


def test_public_encoding_round_trips(keys):
    v = keys.verifier()
    again = decode_verify_key(encode_verify_key(v.verify_key))
    assert unseal(seal(PLAIN, keys, "B"), type(v)("n1", 3, again, decode_dek(encode_dek(v.dek))),
                  "B") == PLAIN
    with pytest.raises(ConfigError):
        decode_dek("AAAA")
    with pytest.raises(ConfigError):
        decode_verify_key("not base64!!")


def test_key_file_round_trip_and_mode(keys, tmp_path: Path):
    path = tmp_path / "sub" / "node.key"
    write_node_keys(path, keys, BrokerLogin("node-n1", 'p"w\\d'))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_node_keys(path)
    assert (loaded.node_id, loaded.key_version, loaded.dek) == ("n1", 3, keys.dek)
    assert unseal(seal(PLAIN, loaded, "B1"), keys.verifier(), "B1") == PLAIN
    login = load_broker_login(path)
    assert login is not None and (login.user, login.password) == ("node-n1", 'p"w\\d')
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_key_file_without_broker(keys, tmp_path: Path):
    path = tmp_path / "node.key"
    write_node_keys(path, keys)
    assert load_broker_login(path) is None


def test_key_file_too_open_is_refused(keys, tmp_path: Path):
    path = tmp_path / "node.key"
    write_node_keys(path, keys)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_node_keys(path)


@pytest.mark.parametrize("text", ["garbage = = =", 'node_id = "n1"\n',
                                  'node_id="n1"\nkey_version=1\nsigning_key="AA=="\ndek="AA=="\n'])
def test_bad_key_files(tmp_path: Path, text):
    path = tmp_path / "node.key"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_node_keys(path)
    assert "AA==" not in str(info.value)


def test_missing_key_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_node_keys(tmp_path / "nope")


def test_a_key_file_that_is_not_utf8_is_a_config_error(tmp_path: Path):
    path = tmp_path / "node.key"
    path.write_bytes("签名密钥".encode("gb18030") + b"\xff\xfe")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_node_keys(path)

"""A test's own certificate authority and a server certificate it signs, as PEM files.

Made with ``cryptography`` for each run: a province's CA and its broker's certificate in
miniature, for configs that name a CA file and for brokers with a TLS listener.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Authority", "TlsFiles", "make_authority", "self_signed_pem"]


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, kept in memory to sign with."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign_server(self, folder: Path, host: str = "localhost") -> TlsFiles:
        """The CA file and a server certificate for ``host`` and 127.0.0.1, in ``folder``
        (world-readable: a broker running as its own user reads them)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = x509.SubjectAlternativeName([
            x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        certificate = (_builder(host, self.certificate.subject, key)
                       .add_extension(names, critical=False)
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                       .sign(self.key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
        files.ca.write_bytes(self.pem)
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        folder.chmod(0o755)
        for path in (files.ca, files.certificate, files.key):
            path.chmod(0o644)
        return files


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


def make_authority(name: str = "exgate test CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (_builder(name, subject, key)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, encipher_only=False,
                       decipher_only=False), critical=True)
                   .sign(key, hashes.SHA256()))
    return Authority(certificate, key)


def self_signed_pem() -> bytes:
    """A CA certificate of the test's own, as a province's CA file would hold one."""
    return make_authority().pem


def _builder(common_name: str, issuer: x509.Name,
             key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1)))

"""Test PKI for the legacy and export tests: keys and certificates made at test time.

Certificates come from cryptography's builder (any validity period); PEM key files in the
three formats and PKCS#7 files come from the real ``openssl`` binary. No key is committed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from kmsbridge.clock import utcnow
from tests.conftest import FIXED_NOW

DAY = timedelta(days=1)


@cache
def rsa_key(slot: int, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A few RSA keys per session, reused across tests (generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass(frozen=True)
class Identity:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, fmt: str = "pkcs8", password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password is not None:
            encryption = serialization.BestAvailableEncryption(password)
        private_format = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if fmt == "pkcs1"
            else serialization.PrivateFormat.PKCS8
        )
        return self.key.private_bytes(serialization.Encoding.PEM, private_format, encryption)

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        cert, key = folder / f"{name}.crt.pem", folder / f"{name}.key.pem"
        cert.write_bytes(self.cert_pem())
        key.write_bytes(self.key_pem())
        return cert, key


def make_identity(
    cn: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: Identity | None = None,
    ca: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    issuer_name: str | None = None,
    path_length: int | None = None,
    key_usage: set[str] | None = None,
    basic_constraints: bool = True,
) -> Identity:
    """A certificate for ``key``, signed by ``issuer`` (or self-signed).

    ``key_usage`` names the KeyUsage bits to set (``"key_cert_sign"``, ``"key_encipherment"``
    ...; none: no KeyUsage extension); ``basic_constraints=False`` leaves that extension out.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_key = issuer.key if issuer else key
    issuer_dn = issuer.cert.subject if issuer else name
    if issuer_name is not None:
        issuer_dn = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)])
    start = not_before or FIXED_NOW - 365 * DAY
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_dn)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + 3650 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if basic_constraints:
        constraints = x509.BasicConstraints(ca=ca, path_length=path_length if ca else None)
        builder = builder.add_extension(constraints, critical=True)
    if key_usage is not None:
        bits = {name: name in key_usage for name in _KEY_USAGE_BITS}
        usage = x509.KeyUsage(**bits, encipher_only=False, decipher_only=False)
        builder = builder.add_extension(usage, critical=True)
    return Identity(key, builder.sign(signer_key, hashes.SHA256()))


_KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def register(store: Any, org: str, target: Any) -> Any:
    """Register an export target as a recipient of ``org`` (what the operator does first)."""
    from kmsbridge.export.recipients import (
        add_recipient,
        certificate_recipient,
        kms_recipient,
        register_pgp_recipient,
    )

    if target.certificate is not None:
        der = target.certificate.public_bytes(serialization.Encoding.DER)
        recipient = certificate_recipient(der, added_by="test", now=FIXED_NOW)
    elif target.pgp is not None:
        recipient = register_pgp_recipient(target.pgp.certificate, added_by="test", now=utcnow())
    else:
        recipient = kms_recipient(target.kms_key_arn, added_by="test", now=FIXED_NOW)
    add_recipient(store, org, recipient)
    return target


def openssl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["openssl", *args],
        check=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )


def smime_encrypt(plain: Path, out: Path, cert: Path, cipher: str = "-aes-256-cbc") -> None:
    """What older recorders did: ``openssl smime -encrypt -binary -outform DER``."""
    openssl(
        "smime", "-encrypt", "-binary", "-outform", "DER", cipher,
        "-in", str(plain), "-out", str(out), str(cert),
    )  # fmt: skip


def smime_decrypt(p7m: Path, out: Path, cert: Path, key: Path) -> None:
    openssl(
        "smime", "-decrypt", "-inform", "DER", "-binary",
        "-in", str(p7m), "-out", str(out), "-recip", str(cert), "-inkey", str(key),
    )  # fmt: skip


def cli(
    *args: str, table: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``kmsbridge ARGS`` in a new process (the moto server's endpoint comes from os.environ)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "kmsbridge.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "KMSBRIDGE_TABLE": table, **(env or {})},
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: str) -> str:
    """The single stderr line of a failed command, checked to name ``code``."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    return lines[0]

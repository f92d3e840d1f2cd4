"""``export verify``: check an export archive as its recipient would, with no KMS and no AWS.

In order, each failure one ``INTEGRITY`` error naming what does not match:

1. ``manifest.json`` is there and well formed; the zip holds exactly the files it lists
   (plus the signature files), each once.
2. The signature (``manifest.json.sig``, ``export/signing.py``) verifies under the
   signer's key: the one pinned by the caller (``signer_pem``, the key the platform gave
   the customer), else the one in the archive, reported by fingerprint so it can be
   compared. A pinned signer and no signature is a failure.
3. Every file's SHA-256 equals its ``file_sha256``.
4. With the recipient's key (``key``): every file decrypts, and the plaintext's size and
   SHA-256 equal the manifest's. PGP: an OpenPGP secret key (pysequoia decrypts one file
   in memory at a time: at most about twice the largest recording). CMS: an RSA private
   key (PEM), streamed. A KMS export (``esdk``) is checked with the customer's KMS key
   by the ESDK, not here.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.crypto import cms
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.export.manifest import MANIFEST_NAME
from kmsbridge.export.signing import (
    SIGNATURE_NAME,
    SIGNER_NAME,
    signer_fingerprint,
    verify_manifest,
)
from kmsbridge.formats import key_transport_padding

_CHUNK = 1024 * 1024


def verify_archive(
    archive: str | os.PathLike[str],
    *,
    signer_pem: bytes | None = None,
    key: bytes | None = None,
) -> dict[str, Any]:
    """Check ``archive``; returns what was checked, raises ``IntegrityError`` at the first
    mismatch and ``InvalidRequest`` for unusable inputs."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise InvalidRequest(f"{os.fspath(archive)} is not a zip archive") from None
    with zf:
        manifest_bytes, manifest = _manifest(zf)
        signer = _check_signature(zf, manifest_bytes, signer_pem)
        entries = _check_listing(zf, manifest)
        for entry in entries:
            _check_file_hash(zf, entry)
        decrypt = _decryptor(manifest.get("format"), key) if key is not None else None
        if decrypt is not None:
            for entry in entries:
                _check_plaintext(zf, entry, decrypt)
    return {
        "archive": os.fspath(archive),
        "org": manifest.get("org"),
        "format": manifest.get("format"),
        "recordings": len(entries),
        "signature": "verified" if signer else "absent",
        "signer_sha256": signer,
        "signer_pinned": signer is not None and signer_pem is not None,
        "plaintext_checked": decrypt is not None,
    }


def _manifest(zf: zipfile.ZipFile) -> tuple[bytes, dict[str, Any]]:
    try:
        data = zf.read(MANIFEST_NAME)
        manifest = json.loads(data)
    except (KeyError, ValueError):
        raise IntegrityError("the archive has no readable manifest.json") from None
    if not isinstance(manifest, dict) or manifest.get("kmsbridge_export") != 1:
        raise IntegrityError("manifest.json is not a kmsbridge export manifest")
    if not isinstance(manifest.get("recordings"), list):
        raise IntegrityError("manifest.json lists no recordings")
    return data, manifest


def _check_signature(zf: zipfile.ZipFile, manifest: bytes, pinned: bytes | None) -> str | None:
    names = set(zf.namelist())
    if SIGNATURE_NAME not in names:
        if pinned is not None:
            raise IntegrityError("the manifest is not signed, and a signer was given")
        return None
    signer = pinned if pinned is not None else _read(zf, SIGNER_NAME)
    verify_manifest(manifest, zf.read(SIGNATURE_NAME), signer)
    return signer_fingerprint(signer)


def _read(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise IntegrityError(f"the archive has a signature but no {name}") from None


def _check_listing(zf: zipfile.ZipFile, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = zf.namelist()
    if len(names) != len(set(names)):
        raise IntegrityError("the archive holds a file name twice")
    entries = manifest["recordings"]
    if not all(isinstance(e, dict) and isinstance(e.get("file"), str) for e in entries):
        raise IntegrityError("manifest.json has a malformed recording entry")
    listed = [e["file"] for e in entries]
    if len(listed) != len(set(listed)):
        raise IntegrityError("manifest.json lists a file twice")
    extra = set(names) - set(listed) - {MANIFEST_NAME, SIGNATURE_NAME, SIGNER_NAME}
    if extra:
        raise IntegrityError(f"the archive holds {sorted(extra)[0]}, which the manifest omits")
    missing = set(listed) - set(names)
    if missing:
        raise IntegrityError(f"the archive lacks {sorted(missing)[0]}, which the manifest lists")
    return list(entries)


def _check_file_hash(zf: zipfile.ZipFile, entry: Mapping[str, Any]) -> None:
    expected = entry.get("file_sha256")
    if not isinstance(expected, str):
        raise IntegrityError(f"manifest.json has no file_sha256 for {entry['file']}")
    digest = hashlib.sha256()
    with zf.open(entry["file"]) as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise IntegrityError(f"{entry['file']} does not match its SHA-256 in the manifest")


class _Hashing:
    """A sink that only counts and hashes (plaintext is never kept or written)."""

    def __init__(self) -> None:
        self.size = 0
        self.hash = hashlib.sha256()

    def write(self, chunk: Any) -> int:
        self.size += len(chunk)
        self.hash.update(chunk)
        return len(chunk)


def _check_plaintext(zf: zipfile.ZipFile, entry: Mapping[str, Any], decrypt: Any) -> None:
    sink = _Hashing()
    with zf.open(entry["file"]) as f:
        decrypt(f, sink, entry["file"])
    if sink.size != entry.get("size") or sink.hash.hexdigest() != entry.get("sha256"):
        raise IntegrityError(
            f"the plaintext of {entry['file']} does not match its size and SHA-256 in the manifest"
        )


def _decryptor(kind: object, key: bytes) -> Any:
    if kind == "pgp":
        return _pgp_decryptor(key)
    if kind == "cms":
        return _cms_decryptor(key)
    raise InvalidRequest(
        f"--key checks pgp and cms exports; a {kind} export is read with the customer's KMS key"
    )


def _pgp_decryptor(key: bytes) -> Any:
    import pysequoia

    try:
        decryptor = pysequoia.Tsk.from_bytes(key).decryptor()
    except (RuntimeError, ValueError):
        raise InvalidRequest(
            "--key must be the recipient's OpenPGP secret key, without a passphrase "
            "(gpg --armor --export-secret-keys KEY)"
        ) from None

    def decrypt(source: IO[bytes], sink: _Hashing, name: str) -> None:
        try:
            plaintext = pysequoia.decrypt(source.read(), decryptor=decryptor).bytes
        except (RuntimeError, ValueError):
            raise IntegrityError(f"{name} does not decrypt with the given key") from None
        sink.write(plaintext or b"")

    return decrypt


def _cms_decryptor(key: bytes) -> Any:
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise InvalidRequest("--key must be the recipient's RSA private key (PEM)") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise InvalidRequest("--key must be the recipient's RSA private key (PEM)")

    def decrypt(source: IO[bytes], sink: _Hashing, name: str) -> None:
        envelope = cms.read_envelope(source)  # type: ignore[arg-type]
        for recipient in envelope.recipients:
            try:
                rsa_padding = key_transport_padding(recipient.padding)
                content_key = private.decrypt(recipient.encrypted_key, rsa_padding)
            except ValueError:
                continue
            cms.decrypt_content(source, envelope, content_key, sink)  # type: ignore[arg-type]
            return
        raise IntegrityError(f"{name} is not encrypted to the given key")

    return decrypt

"""Export: recordings taken out, re-encrypted for the customer, with a manifest.

Two targets: a recipient X.509 certificate (CMS EnvelopedData in DER, AES-256-CBC, RSA
key transport: what ``openssl smime -decrypt -inform DER -binary`` reads), or the
customer's own KMS key (an AWS Encryption SDK message from a strict KMS master key
provider, its encryption context naming the org, the recording and ``purpose=export``).

Sources are kmsbridge recordings (ESDK messages) or PKCS#7 files of an imported key; both
are decrypted through the decryptor, so a revoked KMS key stops an export as it stops
playback. Plaintext never touches disk: each recording is decrypted into memory, hashed,
re-encrypted and dropped. cryptography's CMS builder takes and returns whole byte
strings, so a recording is held whole, at most ``MAX_EXPORT_RECORDING_BYTES`` of
plaintext; peak memory is about twice the largest recording.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import aws_encryption_sdk
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError
from aws_encryption_sdk.identifiers import CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import StrictAwsKmsMasterKeyProvider
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.aws import AwsClients, error_for
from kmsbridge.clock import iso, utcnow
from kmsbridge.crypto import cms
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import InternalError, InvalidRequest, KmsBridgeError
from kmsbridge.files import atomic_output
from kmsbridge.formats import (
    CONTEXT_ORG,
    CONTEXT_PURPOSE,
    CONTEXT_RECORDING,
    MIN_IMPORTED_RSA_BITS,
    validate_org,
)
from kmsbridge.keys.kms import region_of
from kmsbridge.legacy.certificates import check_for_encryption
from kmsbridge.legacy.playback import decrypt_cms_stream
from kmsbridge.recordings.codec import decrypt_stream

MAX_EXPORT_RECORDING_BYTES = 256 * 1024 * 1024
PURPOSE_EXPORT = "export"
MANIFEST_NAME = "manifest.json"
_ESDK_MESSAGE_VERSION = 0x02  # first byte of an ESDK v2 message; CMS DER starts with 0x30


@dataclass(frozen=True)
class ExportTarget:
    """Whom the export is for: a certificate (``kind`` "cms") or a KMS key ("kms")."""

    kind: str
    certificate: x509.Certificate | None = field(default=None, repr=False)
    kms_key_arn: str | None = None

    @property
    def suffix(self) -> str:
        return ".p7m" if self.kind == "cms" else ".esdk"

    def describe(self) -> dict[str, str]:
        if self.certificate is not None:
            return {
                "format": "cms",
                "certificate_subject": self.certificate.subject.rfc4514_string(),
                "certificate_sha256": self.certificate.fingerprint(hashes.SHA256()).hex(),
            }
        return {"format": "esdk", "kms_key": str(self.kms_key_arn)}


def certificate_target(data: bytes, now: datetime | None = None) -> ExportTarget:
    """A recipient certificate (PEM or DER): RSA >= 2048 bits, inside its validity period."""
    try:
        if b"-----BEGIN" in data:
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidRequest("the recipient certificate is not X.509 (PEM or DER)") from None
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_IMPORTED_RSA_BITS:
        raise InvalidRequest(
            "the recipient certificate must hold an RSA key of at least "
            f"{MIN_IMPORTED_RSA_BITS} bits"
        )
    check_for_encryption(certificate, now)
    return ExportTarget("cms", certificate=certificate)


def kms_target(arn: str) -> ExportTarget:
    region_of(arn)
    return ExportTarget("kms", kms_key_arn=arn)


@dataclass(frozen=True)
class ExportedRecording:
    """One re-encrypted recording; the manifest entry is everything but the ciphertext."""

    recording_id: str
    size: int
    sha256: str
    kek_id: str
    ciphertext: bytes = field(repr=False)

    def manifest_entry(self, file: str) -> dict[str, Any]:
        return {
            "recording": self.recording_id,
            "file": file,
            "size": self.size,
            "sha256": self.sha256,
            "kek": self.kek_id,
        }


class Exporter:
    """Decrypts a recording through the decryptor and re-encrypts it for the target."""

    def __init__(
        self,
        org: str,
        decryptor: Decryptor,
        target: ExportTarget,
        clients: AwsClients | None = None,
        *,
        max_bytes: int = MAX_EXPORT_RECORDING_BYTES,
    ) -> None:
        self.org = validate_org(org)
        self.decryptor = decryptor
        self.target = target
        self.max_bytes = max_bytes
        self._provider = (
            _kms_provider(clients or AwsClients(), target) if target.kms_key_arn else None
        )
        self._esdk = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )

    def export(self, source: BinaryIO, *, name: str) -> ExportedRecording:
        """Re-encrypt one recording (ESDK or PKCS#7) read from ``source``."""
        sink = _BoundedSink(self.max_bytes)
        first = source.read(1)
        stream = cast(BinaryIO, _Prefixed(first, source))
        out = cast(IO[bytes], sink)
        if first and first[0] == _ESDK_MESSAGE_VERSION:
            info = decrypt_stream(stream, out, org=self.org, data_keys=self.decryptor)
            recording_id, kek_id = info.recording_id, info.kek_id
        else:
            legacy = decrypt_cms_stream(
                stream, out, org=self.org, decryptor=self.decryptor, name=name
            )
            recording_id, kek_id = name, legacy.kek_id
        ciphertext = self._encrypt(sink.data, recording_id)
        return ExportedRecording(
            recording_id, len(sink.data), sink.hash.hexdigest(), kek_id, ciphertext
        )

    def _encrypt(self, plaintext: bytearray, recording_id: str) -> bytes:
        if self.target.certificate is not None:
            return cms.encrypt_for(self.target.certificate, plaintext)
        context = {
            CONTEXT_ORG: self.org,
            CONTEXT_RECORDING: recording_id,
            CONTEXT_PURPOSE: PURPOSE_EXPORT,
        }
        try:
            ciphertext, _ = self._esdk.encrypt(
                source=_MemoryReader(plaintext),
                key_provider=self._provider,
                encryption_context=context,
            )
        except (AWSEncryptionSDKClientError, BotoCoreError) as exc:
            raise _kms_error(exc) from None
        return bytes(ciphertext)


def export_archive(
    org: str,
    sources: Sequence[str | os.PathLike[str]],
    archive: str | os.PathLike[str],
    *,
    decryptor: Decryptor,
    target: ExportTarget,
    clients: AwsClients | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A zip of re-encrypted recordings and ``manifest.json``; all of it, or nothing."""
    if not sources:
        raise InvalidRequest("name at least one recording to export")
    exporter = Exporter(org, decryptor, target, clients)
    entries: list[dict[str, Any]] = []
    names: set[str] = set()
    with atomic_output(archive) as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for path in sources:
            with open(path, "rb") as src:
                exported = exporter.export(src, name=Path(path).name)
            file = entry_name(exported.recording_id, target.suffix)
            if file in names:
                raise InvalidRequest(f"recording {exported.recording_id!r} is named twice")
            names.add(file)
            zf.writestr(file, exported.ciphertext)
            entries.append(exported.manifest_entry(file))
        manifest = make_manifest(org, target.describe(), entries, now)
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def make_manifest(
    org: str, target: Mapping[str, str], entries: list[dict[str, Any]], now: datetime | None = None
) -> dict[str, Any]:
    """The manifest: org, when, for whom (``ExportTarget.describe``), and each recording."""
    return {
        "kmsbridge_export": 1,
        "org": org,
        "created_at": iso(now or utcnow()),
        **target,
        "recordings": entries,
    }


_SAFE = re.compile(r"[A-Za-z0-9._-]{1,100}")


def entry_name(recording_id: str, suffix: str) -> str:
    """A file name for a recording id: itself if safe, else a safe prefix and a short hash."""
    if _SAFE.fullmatch(recording_id) and recording_id not in (".", ".."):
        return f"recordings/{recording_id}{suffix}"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", recording_id)[:80]
    digest = hashlib.sha256(recording_id.encode("utf-8")).hexdigest()[:12]
    return f"recordings/{safe}-{digest}{suffix}"


# ---------------------------------------------------------------- internals


class _BoundedSink:
    """Plaintext in memory, hashed as it arrives, refused beyond ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.hash = hashlib.sha256()

    def write(self, chunk: Any) -> int:
        n = len(chunk)
        if len(self.data) + n > self.limit:
            raise InvalidRequest(
                f"a recording is larger than the export limit of {self.limit} bytes"
            )
        self.data += chunk
        self.hash.update(chunk)
        return n


class _Prefixed:
    """The byte already read to tell the format, then the rest of the source."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = prefix
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if not self._prefix or n == 0:
            return self._rest.read(n)
        head, self._prefix = self._prefix, b""
        if n < 0:
            return head + self._rest.read()
        return head + self._rest.read(n - 1) if n > 1 else head

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _MemoryReader:
    """Reads a bytearray without copying it whole (the ESDK takes bytes or a stream)."""

    def __init__(self, data: bytearray) -> None:
        self._view = memoryview(data)
        self._position = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else self._position + n
        chunk = bytes(self._view[self._position : end])
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        self._view.release()


def _kms_provider(clients: AwsClients, target: ExportTarget) -> StrictAwsKmsMasterKeyProvider:
    class Provider(StrictAwsKmsMasterKeyProvider):  # type: ignore[misc]
        # Our clients: the configured endpoint, adaptive retries and bounded timeouts.
        def add_regional_client(self, region_name: str) -> None:
            if region_name not in self._regional_clients:
                self._regional_clients[region_name] = clients.client("kms", region_name)

    return Provider(key_ids=[target.kms_key_arn])


def _kms_error(exc: BaseException) -> KmsBridgeError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ClientError | BotoCoreError):
            return error_for(cause, "kms")
        cause = cause.__cause__ or cause.__context__
    return InternalError("the export key could not be used with KMS")

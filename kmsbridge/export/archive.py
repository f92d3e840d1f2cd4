"""Export: recordings taken out, re-encrypted for the customer, with a manifest.

Three targets: a recipient X.509 certificate (CMS EnvelopedData in DER, AES-256-CBC, RSA
key transport: what ``openssl smime -decrypt -inform DER -binary`` reads), the customer's
own KMS key (an AWS Encryption SDK message from a strict KMS master key provider, its
encryption context naming the org, the recording and ``purpose=export``), or an OpenPGP
certificate (what ``gpg --decrypt`` reads, see ``export/pgp.py``).

Only to a recipient registered for the org (``check_registered``, ``recipients.py``).
Sources are kmsbridge recordings (ESDK messages) or PKCS#7 files of an imported key; both
are decrypted through the decryptor, so a revoked KMS key stops an export as it stops
playback. Plaintext never touches disk: each recording is decrypted into memory, hashed,
re-encrypted and dropped. cryptography's CMS builder takes and returns whole byte
strings, so a recording is held whole, at most ``MAX_EXPORT_RECORDING_BYTES`` of
plaintext; peak memory is about twice the largest recording. The PGP target streams
instead (bounded memory; one recording's ciphertext in a private temporary folder).

The manifest lists, per recording, the plaintext's size and SHA-256 and the exported
file's SHA-256 (``file_sha256``), so ``export verify`` (and ``openssl dgst``) can check
the files without any key, and the plaintext with the recipient's key.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
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
from cryptography.hazmat.primitives.serialization import Encoding

from kmsbridge.aws import AwsClients, error_for
from kmsbridge.crypto import cms
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import InternalError, InvalidRequest, KmsBridgeError
from kmsbridge.export.manifest import MANIFEST_NAME, entry_name, make_manifest, manifest_json
from kmsbridge.export.pgp import PGP_SUFFIX, PgpRecipient, encrypt_to_file, pgp_recipient
from kmsbridge.export.signing import ManifestSigner
from kmsbridge.files import atomic_output
from kmsbridge.formats import (
    CONTEXT_ORG,
    CONTEXT_PURPOSE,
    CONTEXT_RECORDING,
    MIN_IMPORTED_RSA_BITS,
    validate_org,
)
from kmsbridge.keys.kms import region_of
from kmsbridge.keys.table import KeyStore
from kmsbridge.legacy.certificates import check_for_encryption
from kmsbridge.legacy.playback import decrypt_cms_stream
from kmsbridge.recordings.codec import decrypt_stream

MAX_EXPORT_RECORDING_BYTES = 256 * 1024 * 1024
PURPOSE_EXPORT = "export"
_COPY_CHUNK = 1024 * 1024
_ESDK_MESSAGE_VERSION = 0x02  # first byte of an ESDK v2 message; CMS DER starts with 0x30


@dataclass(frozen=True)
class ExportTarget:
    """Whom the export is for: a certificate (``kind`` "cms"), a KMS key ("kms") or an
    OpenPGP certificate ("pgp")."""

    kind: str
    certificate: x509.Certificate | None = field(default=None, repr=False)
    kms_key_arn: str | None = None
    pgp: PgpRecipient | None = None

    @property
    def suffix(self) -> str:
        return {"cms": ".p7m", "pgp": PGP_SUFFIX}.get(self.kind, ".esdk")

    @property
    def recipient_id(self) -> str:
        """The id it must be registered under (``export recipients add``)."""
        if self.certificate is not None:
            der = self.certificate.public_bytes(Encoding.DER)
            return f"cert:{hashlib.sha256(der).hexdigest()}"
        if self.pgp is not None:
            return f"pgp:{self.pgp.fingerprint}"
        return f"kms:{self.kms_key_arn}"

    def describe(self) -> dict[str, str]:
        if self.pgp is not None:
            return self.pgp.describe()
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


def pgp_target(data: bytes, now: datetime | None = None) -> ExportTarget:
    """An OpenPGP public key (armored or binary) that can receive now (``pgp_recipient``)."""
    return ExportTarget("pgp", pgp=pgp_recipient(data, now))


def check_registered(store: KeyStore, org: str, target: ExportTarget) -> None:
    """Refuse, before any recording is read, a recipient not registered for the org."""
    registered = {r.recipient_id for r in store.get_org(validate_org(org)).export_recipients}
    if target.recipient_id not in registered:
        raise InvalidRequest(not_registered(org, target.recipient_id))


def not_registered(org: str, recipient_id: str) -> str:
    return (
        f"{recipient_id} is not a registered export recipient of org {org!r} "
        f"(kmsbridge export recipients add {org} ...); nothing was exported"
    )


@dataclass(frozen=True)
class ExportedRecording:
    """One re-encrypted recording; the manifest entry is everything but the ciphertext,
    which is bytes, or for a streamed target a temporary file (``discard`` removes it)."""

    recording_id: str
    size: int
    sha256: str
    kek_id: str
    ciphertext: bytes | Path = field(repr=False)
    file_sha256: str = ""

    def manifest_entry(self, file: str) -> dict[str, Any]:
        return {
            "recording": self.recording_id,
            "file": file,
            "size": self.size,
            "sha256": self.sha256,
            "file_sha256": self.file_sha256,
            "kek": self.kek_id,
        }

    def open_ciphertext(self) -> BinaryIO:
        if isinstance(self.ciphertext, Path):
            return open(self.ciphertext, "rb")
        return io.BytesIO(self.ciphertext)

    def discard(self) -> None:
        if isinstance(self.ciphertext, Path):
            self.ciphertext.unlink(missing_ok=True)


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
        self._spool: Path | None = None

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary folder of streamed targets (ciphertext only) if any."""
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def export(self, source: BinaryIO, *, name: str) -> ExportedRecording:
        """Re-encrypt one recording (ESDK or PKCS#7) read from ``source``."""
        if self.target.pgp is not None:
            return self._export_pgp(source, name, self.target.pgp)
        sink = _BoundedSink(self.max_bytes)
        recording_id, kek_id = self._decrypt(source, sink, name)
        ciphertext = self._encrypt(sink.data, recording_id)
        return ExportedRecording(
            recording_id,
            sink.size,
            sink.hash.hexdigest(),
            kek_id,
            ciphertext,
            hashlib.sha256(ciphertext).hexdigest(),
        )

    def _decrypt(self, source: BinaryIO, sink: _BoundedSink, name: str) -> tuple[str, str]:
        first = source.read(1)
        stream = cast(BinaryIO, _Prefixed(first, source))
        out = cast(IO[bytes], sink)
        if first and first[0] == _ESDK_MESSAGE_VERSION:
            info = decrypt_stream(stream, out, org=self.org, data_keys=self.decryptor)
            return info.recording_id, info.kek_id
        legacy = decrypt_cms_stream(stream, out, org=self.org, decryptor=self.decryptor, name=name)
        return name, legacy.kek_id

    def _export_pgp(self, source: BinaryIO, name: str, pgp: PgpRecipient) -> ExportedRecording:
        spool = self._spool_dir(pgp)
        output = spool / f"{os.urandom(8).hex()}{PGP_SUFFIX}"

        def feed(pipe: IO[bytes]) -> tuple[str, str, _BoundedSink]:
            sink = _BoundedSink(self.max_bytes, through=pipe)
            return (*self._decrypt(source, sink, name), sink)

        recording_id, kek_id, sink = encrypt_to_file(spool / "recipient.pgp", output, feed)
        return ExportedRecording(
            recording_id, sink.size, sink.hash.hexdigest(), kek_id, output, _sha256_file(output)
        )

    def _spool_dir(self, pgp: PgpRecipient) -> Path:
        if self._spool is None:
            self._spool = Path(tempfile.mkdtemp(prefix="kmsbridge-export-"))  # mode 0700
            (self._spool / "recipient.pgp").write_bytes(pgp.certificate)
        return self._spool

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
    signer: ManifestSigner | None = None,
    replace: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """A zip of re-encrypted recordings and ``manifest.json`` (signed by ``signer`` if
    given, see ``export/signing.py``); all of it, or nothing.

    A PKCS#7 recording's id is its path as given (folders kept, so two ``x.p7m`` in
    different folders stay two recordings). ``progress(done, total, path)`` follows each.
    """
    if not sources:
        raise InvalidRequest("name at least one recording to export")
    check_registered(decryptor.store, org, target)
    entries: list[dict[str, Any]] = []
    names: set[str] = set()
    with (
        Exporter(org, decryptor, target, clients) as exporter,
        atomic_output(archive, replace=replace) as out,
        zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf,
    ):
        for done, path in enumerate(sources, 1):
            with open(path, "rb") as src:
                exported = exporter.export(src, name=Path(path).as_posix().lstrip("/"))
            file = entry_name(exported.recording_id, target.suffix)
            if file in names:
                exported.discard()
                raise InvalidRequest(f"recording {exported.recording_id!r} is named twice")
            names.add(file)
            with exported.open_ciphertext() as body, zf.open(file, "w", force_zip64=True) as dst:
                shutil.copyfileobj(body, dst, _COPY_CHUNK)
            exported.discard()
            entries.append(exported.manifest_entry(file))
            if progress is not None:
                progress(done, len(sources), os.fspath(path))
        manifest = make_manifest(org, target.describe(), entries, now)
        manifest_bytes = manifest_json(manifest)
        zf.writestr(MANIFEST_NAME, manifest_bytes)
        if signer is not None:
            for name, data in signer.sign_manifest(manifest_bytes).items():
                zf.writestr(name, data)
    return manifest


# ---------------------------------------------------------------- internals


class _BoundedSink:
    """Plaintext hashed as it arrives, refused beyond ``limit`` bytes: kept in memory, or
    passed ``through`` to a stream (the PGP child's pipe)."""

    def __init__(self, limit: int, through: IO[bytes] | None = None) -> None:
        self.limit = limit
        self.data = bytearray()
        self.size = 0
        self.hash = hashlib.sha256()
        self._through = through

    def write(self, chunk: Any) -> int:
        n = len(chunk)
        if self.size + n > self.limit:
            raise InvalidRequest(
                f"a recording is larger than the export limit of {self.limit} bytes"
            )
        if self._through is not None:
            self._through.write(chunk)
        else:
            self.data += chunk
        self.size += n
        self.hash.update(chunk)
        return n


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_COPY_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


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

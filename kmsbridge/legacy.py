"""Bring your own key: import an RSA key pair and its X.509 certificate, play PKCS#7 recordings.

Import (``import_key_pair``): a PEM private key (PKCS#1, PKCS#8 or encrypted PKCS#8; the
password comes from the caller, never a command line), a PEM certificate, optionally a CA
bundle (intermediates then root). Refused: RSA under 2048 bits, a key that is not the
certificate's (INVALID_REQUEST), a chain whose signatures do not verify up to a
self-signed root (INTEGRITY). The key is wrapped under the org's KMS keys at once, the
blob unwrapped once as proof, and stored as a KEK item with ``source`` "imported", the
certificate's DER beside it, ``retired`` (decrypt-only) unless activated. A certificate
not yet valid may be imported but is refused for new encryption (``check_for_encryption``);
an expired one still decrypts.

Chain checks use explicit signature checks (``verify_directly_issued_by``), not
``cryptography.x509.verification``: that verifier enforces the Web PKI profile and a
validation time for every certificate, which refuses what legacy recording certificates
are (expired, SHA-1 signed, no EKU or SAN). The operator supplies the root, so this check
proves the bundle is consistent and signed as claimed; it does not establish trust.

Playback (``decrypt_cms_stream``, ``decrypt_cms_file``, ``decrypt_archive``): the
recipient is found by matching the file's RecipientInfo (issuer and serial, or subject key
identifier) to the org's imported certificates, and its content key is decrypted by the
decryptor (``Decryptor.key_transport``): the KEK is unwrapped just in time through KMS,
cached for at most its max age and evicted on revocation, exactly as for recordings.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge import cms
from kmsbridge.decryptor import Decryptor
from kmsbridge.errors import IntegrityError, InvalidRequest, KmsBridgeError, NotFound
from kmsbridge.formats import MIN_IMPORTED_RSA_BITS, validate_org
from kmsbridge.keks import KekPublicKey, private_key_pkcs8
from kmsbridge.kms import KekWrapper
from kmsbridge.lifecycle import iso, utcnow, verify_wrapped
from kmsbridge.recordings import atomic_output
from kmsbridge.store import KekRecord, KeyStore

P7M_SUFFIXES = (".p7m", ".p7", ".pkcs7")


@dataclass(frozen=True)
class ImportedKek:
    """What an import stored (no secrets)."""

    record: KekRecord
    subject: str
    not_before: str
    not_after: str
    validity: str  # "valid", "not-yet-valid" or "expired" at import time
    chain: tuple[str, ...]  # subjects from the certificate up to the root (if a CA was given)


@dataclass(frozen=True)
class LegacyInfo:
    """One PKCS#7 file read: which KEK opened it and how much plaintext it held."""

    org: str
    kek_id: str
    plaintext_bytes: int
    name: str | None = None


@dataclass(frozen=True)
class FileResult:
    """One member of an archive: decrypted to ``output``, or refused with an error code."""

    file: str
    ok: bool
    output: str | None = None
    bytes: int = 0
    kek: str | None = None
    error: dict[str, object] | None = None


# ---------------------------------------------------------------- loading PEM


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidRequest("the certificate is not an X.509 certificate in PEM") from None


def load_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidRequest("the CA bundle is not X.509 certificates in PEM") from None


def is_encrypted_pem(pem: bytes) -> bool:
    """PKCS#8 ``ENCRYPTED PRIVATE KEY`` or a traditional PEM with ``Proc-Type: 4,ENCRYPTED``."""
    return b"ENCRYPTED" in pem


def load_private_key(pem: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM: PKCS#1, PKCS#8, or encrypted with ``password``."""
    encrypted = is_encrypted_pem(pem)
    if encrypted and not password:
        raise InvalidRequest(
            "the private key is encrypted: give its password (--password-env NAME or the prompt)"
        )
    try:
        key = serialization.load_pem_private_key(pem, password if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise InvalidRequest("the private key does not decrypt: wrong password") from None
        raise InvalidRequest("the private key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidRequest("the private key is not an RSA key")
    return key


# ---------------------------------------------------------------- checks


def check_key_pair(certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    """RSA of at least 2048 bits, and the private half of the certificate's public key."""
    if key.key_size < MIN_IMPORTED_RSA_BITS:
        raise InvalidRequest(
            f"RSA keys must have at least {MIN_IMPORTED_RSA_BITS} bits; this one has {key.key_size}"
        )
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        raise InvalidRequest("the private key does not match the certificate's public key")


def verify_chain(
    certificate: x509.Certificate, bundle: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """The path from ``certificate`` to a self-signed root in ``bundle``, all signatures checked."""
    path = [certificate]
    current = certificate
    while current.issuer != current.subject:
        issuer = next((c for c in bundle if c.subject == current.issuer and c not in path), None)
        if issuer is None:
            raise IntegrityError(
                f"the CA bundle has no certificate for {current.issuer.rfc4514_string()!r}, "
                f"the issuer of {current.subject.rfc4514_string()!r}"
            )
        _check_signature(current, issuer)
        _check_ca(issuer)
        path.append(issuer)
        current = issuer
    _check_signature(current, current)  # the root signs itself
    return path


def _check_signature(subject: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise IntegrityError(
            f"the signature on {subject.subject.rfc4514_string()!r} by "
            f"{issuer.subject.rfc4514_string()!r} does not verify"
        ) from None


def _check_ca(issuer: x509.Certificate) -> None:
    try:
        is_ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = issuer.version == x509.Version.v1  # v1 certificates predate the extension
    if not is_ca:
        raise IntegrityError(f"{issuer.subject.rfc4514_string()!r} is not a CA certificate")


def validity(certificate: x509.Certificate, now: datetime) -> str:
    if now < certificate.not_valid_before_utc:
        return "not-yet-valid"
    if now > certificate.not_valid_after_utc:
        return "expired"
    return "valid"


def check_for_encryption(certificate: x509.Certificate, now: datetime | None = None) -> None:
    """Refuse a certificate outside its validity period for any new encryption."""
    state = validity(certificate, now or utcnow())
    if state == "not-yet-valid":
        raise InvalidRequest(
            f"the certificate is not valid before {iso(certificate.not_valid_before_utc)}; "
            "it is refused for new encryption until then"
        )
    if state == "expired":
        raise InvalidRequest(
            f"the certificate expired on {iso(certificate.not_valid_after_utc)}; "
            "it still decrypts old recordings but encrypts nothing new"
        )


# ---------------------------------------------------------------- import


def import_key_pair(
    store: KeyStore,
    kms: KekWrapper,
    org: str,
    *,
    certificate_pem: bytes,
    private_key_pem: bytes,
    password: bytes | None = None,
    ca_bundle_pem: bytes | None = None,
    activate: bool = False,
    now: datetime | None = None,
) -> ImportedKek:
    """Check, wrap under the org's KMS keys, prove the blob, and store an imported KEK."""
    validate_org(org)
    now = now or utcnow()
    certificate = load_certificate(certificate_pem)
    key = load_private_key(private_key_pem, password)
    check_key_pair(certificate, key)
    chain = verify_chain(certificate, load_ca_bundle(ca_bundle_pem)) if ca_bundle_pem else []
    if activate:
        check_for_encryption(certificate, now)
    public = KekPublicKey.from_key(key.public_key())
    org_record = store.get_org(org)
    _check_not_imported(store, org, public.kek_id)
    arns = org_record.kms_keys
    pkcs8 = private_key_pkcs8(key)
    blob = kms.wrap(pkcs8, org=org, kek_id=public.kek_id, kms_key_arns=arns)
    del key, pkcs8
    verify_wrapped(kms, blob, org=org, public=public, kms_key_arns=arns)
    stamp = iso(now)
    record = KekRecord(
        org=org,
        kek_id=public.kek_id,
        public_key=public.spki_der,
        wrapped_private_key=blob,
        kms_keys=tuple(arns),
        state="active" if activate else "retired",
        created_at=stamp,
        source="imported",
        activated_at=stamp if activate else None,
        retired_at=None if activate else stamp,
        certificate=certificate.public_bytes(serialization.Encoding.DER),
    )
    if activate:
        store.activate(org_record, record, stamp)
    else:
        store.put_new_kek(record)
    return ImportedKek(
        record,
        certificate.subject.rfc4514_string(),
        iso(certificate.not_valid_before_utc),
        iso(certificate.not_valid_after_utc),
        validity(certificate, now),
        tuple(c.subject.rfc4514_string() for c in chain),
    )


def _check_not_imported(store: KeyStore, org: str, kek_id: str) -> None:
    try:
        store.get_kek(org, kek_id)
    except NotFound:
        return
    raise InvalidRequest(f"this key pair is already a KEK of org {org!r} ({kek_id})")


# ---------------------------------------------------------------- playback


@dataclass(frozen=True)
class LegacyRecipients:
    """The org's imported certificates, indexed as CMS RecipientInfos name them."""

    by_issuer_serial: dict[tuple[bytes, int], str] = field(repr=False)
    by_key_id: dict[bytes, str] = field(repr=False)

    @classmethod
    def of_org(cls, store: KeyStore, org: str) -> LegacyRecipients:
        by_issuer_serial, by_key_id = {}, {}
        for record in store.list_keks(validate_org(org)):
            if record.certificate is None or record.state == "destroyed":
                continue
            try:
                certificate = x509.load_der_x509_certificate(record.certificate)
            except ValueError:
                continue  # checked on import; an unreadable one names no recipient
            issuer = certificate.issuer.public_bytes()
            by_issuer_serial[(issuer, certificate.serial_number)] = record.kek_id
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
                by_key_id[ski.value.digest] = record.kek_id
            except x509.ExtensionNotFound:
                pass
        return cls(by_issuer_serial, by_key_id)

    def match(self, envelope: cms.Envelope, org: str) -> tuple[str, cms.KeyTransRecipient]:
        for recipient in envelope.recipients:
            if recipient.issuer_der is not None and recipient.serial is not None:
                kek_id = self.by_issuer_serial.get((recipient.issuer_der, recipient.serial))
            else:
                kek_id = self.by_key_id.get(recipient.subject_key_id or b"")
            if kek_id is not None:
                return kek_id, recipient
        raise NotFound(f"no imported certificate of org {org!r} is a recipient of this file")


def decrypt_cms_stream(
    source: BinaryIO,
    sink: IO[bytes],
    *,
    org: str,
    decryptor: Decryptor,
    recipients: LegacyRecipients | None = None,
    name: str | None = None,
) -> LegacyInfo:
    """Decrypt one PKCS#7 EnvelopedData of ``org`` from ``source`` into ``sink``, streaming."""
    validate_org(org)
    envelope = cms.read_envelope(source)
    recipients = recipients or LegacyRecipients.of_org(decryptor.store, org)
    kek_id, recipient = recipients.match(envelope, org)
    key = decryptor.key_transport(
        org, kek_id, recipient.encrypted_key, recipient.padding, recording=name
    )
    total = cms.decrypt_content(source, envelope, key, sink)
    return LegacyInfo(org, kek_id, total, name)


def decrypt_cms_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    org: str,
    decryptor: Decryptor,
) -> LegacyInfo:
    """``decrypt_cms_stream`` to a file that appears only once the whole file decrypted."""
    with open(source, "rb") as src, atomic_output(target) as out:
        return decrypt_cms_stream(src, out, org=org, decryptor=decryptor, name=Path(source).name)


def decrypt_archive(
    source: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    org: str,
    decryptor: Decryptor,
) -> list[FileResult]:
    """Decrypt every file of a zip of PKCS#7 files into ``target_dir``; one result per file."""
    validate_org(org)
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise InvalidRequest(f"{source} is not a zip archive") from None
    out_dir = Path(target_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipients = LegacyRecipients.of_org(decryptor.store, org)
    results: list[FileResult] = []
    written: set[PurePosixPath] = set()
    with archive:
        for member in archive.infolist():
            if not member.is_dir():
                results.append(
                    _decrypt_member(archive, member, out_dir, written, org, decryptor, recipients)
                )
    return results


def _decrypt_member(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    out_dir: Path,
    written: set[PurePosixPath],
    org: str,
    decryptor: Decryptor,
    recipients: LegacyRecipients,
) -> FileResult:
    try:
        relative = _output_name(member.filename, written)
        target = out_dir.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, atomic_output(target) as out:
            info = decrypt_cms_stream(
                src,  # type: ignore[arg-type]
                out,
                org=org,
                decryptor=decryptor,
                recipients=recipients,
                name=member.filename,
            )
    except KmsBridgeError as exc:
        return FileResult(member.filename, False, error=exc.to_dict())
    except (zipfile.BadZipFile, OSError) as exc:
        error = IntegrityError(f"the archive member cannot be read ({type(exc).__name__})")
        return FileResult(member.filename, False, error=error.to_dict())
    return FileResult(member.filename, True, str(target), info.plaintext_bytes, info.kek_id)


def _output_name(name: str, written: set[PurePosixPath]) -> PurePosixPath:
    """A safe relative output path for an archive member (no absolute paths, no ``..``)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or any(part in ("..", "") for part in path.parts) or not path.parts:
        raise InvalidRequest(f"the archive member name {name!r} is not a safe relative path")
    if path.suffix.lower() in P7M_SUFFIXES:
        path = path.with_suffix("")
    if path in written:
        raise InvalidRequest(f"the archive has two members that decrypt to {str(path)!r}")
    written.add(path)
    return path

"""Play PKCS#7 recordings of older recorders with an imported key.

Playback (``decrypt_cms_stream``, ``decrypt_cms_file``, ``decrypt_archive``): the
recipient is found by matching the file's RecipientInfo (issuer and serial, or subject key
identifier) to the org's imported certificates, and its content key is decrypted by the
decryptor (``Decryptor.key_transport``): the KEK is unwrapped just in time through KMS,
cached for at most its max age and evicted on revocation, exactly as for recordings.

"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from cryptography import x509

from kmsbridge.crypto import cms
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import IntegrityError, InvalidRequest, KmsBridgeError, NotFound
from kmsbridge.files import atomic_output
from kmsbridge.formats import validate_org
from kmsbridge.keys.table import KeyStore

P7M_SUFFIXES = (".p7m", ".p7", ".pkcs7")


@dataclass(frozen=True)
class LegacyInfo:
    """One PKCS#7 file read: which KEK opened it and how much plaintext it held."""

    org: str
    kek_id: str
    plaintext_bytes: int
    name: str | None = None
    cipher: str | None = None  # the content cipher, e.g. des-ede3-cbc (no integrity: CBC)


@dataclass(frozen=True)
class FileResult:
    """One member of an archive: decrypted to ``output``, or refused with an error code."""

    file: str
    ok: bool
    output: str | None = None
    bytes: int = 0
    kek: str | None = None
    error: dict[str, object] | None = None
    cipher: str | None = None


# ---------------------------------------------------------------- loading PEM


# ---------------------------------------------------------------- checks


# ---------------------------------------------------------------- import


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
    return LegacyInfo(org, kek_id, total, name, envelope.cipher.name)


def decrypt_cms_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    org: str,
    decryptor: Decryptor,
    name: str | None = None,
    replace: bool = True,
) -> LegacyInfo:
    """``decrypt_cms_stream`` to a file that appears only once the whole file decrypted.

    ``name`` is the recording's name in audit lines (default: the file's name; a folder
    passes the relative path, so two ``x.p7m`` in different folders stay apart).
    """
    with open(source, "rb") as src, atomic_output(target, replace=replace) as out:
        name = name or Path(source).name
        return decrypt_cms_stream(src, out, org=org, decryptor=decryptor, name=name)


def decrypt_archive(
    source: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    org: str,
    decryptor: Decryptor,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[FileResult]:
    """Decrypt every file of a zip of PKCS#7 files into ``target_dir``; one result per file.

    ``progress(done, total, name)`` is called after each member.
    """
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
        members = [m for m in archive.infolist() if not m.is_dir()]
        for done, member in enumerate(members, 1):
            results.append(
                _decrypt_member(archive, member, out_dir, written, org, decryptor, recipients)
            )
            if progress is not None:
                progress(done, len(members), member.filename)
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
    return FileResult(
        member.filename, True, str(target), info.plaintext_bytes, info.kek_id, cipher=info.cipher
    )


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

"""Play PKCS#7 recordings of older recorders with an imported key.

Playback (``decrypt_cms_stream``, ``decrypt_cms_file``, ``decrypt_archive``): the
recipient is found by matching the file's RecipientInfo (issuer and serial, or subject key
identifier) to the org's imported certificates, and its content key is decrypted by the
decryptor (``Decryptor.key_transport``): the KEK is unwrapped just in time through KMS,
cached for at most its max age and evicted on revocation, exactly as for recordings.

An archive is untrusted input, member by member: a member whose declared size is over
``MAX_MEMBER_BYTES`` or whose compression ratio is over ``MAX_MEMBER_RATIO`` (PKCS#7
content is ciphertext: it does not compress; a zip bomb does) is refused before a byte is
inflated, the bytes read are counted against the same cap, and any failure of one member
(every exception) is that member's result with a code: the other members still play.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, cast

from cryptography import x509

from kmsbridge.crypto import cms
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import (
    IntegrityError,
    InternalError,
    InvalidRequest,
    KmsBridgeError,
    NotFound,
)
from kmsbridge.files import atomic_output
from kmsbridge.formats import validate_org
from kmsbridge.keys.table import KeyStore

P7M_SUFFIXES = (".p7m", ".p7", ".pkcs7")
MAX_MEMBER_BYTES = 4 * 1024**3  # larger than any call recording kept as one PKCS#7 file
MAX_MEMBER_RATIO = 100  # ciphertext deflates to about 1:1; deflate's own maximum is ~1032:1


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
    max_member_bytes: int = MAX_MEMBER_BYTES,
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
            reader = _MemberReader(archive, member, max_member_bytes)
            results.append(_decrypt_member(reader, out_dir, written, org, decryptor, recipients))
            if progress is not None:
                progress(done, len(members), member.filename)
    return results


def _decrypt_member(
    reader: _MemberReader,
    out_dir: Path,
    written: set[PurePosixPath],
    org: str,
    decryptor: Decryptor,
    recipients: LegacyRecipients,
) -> FileResult:
    name = reader.member.filename
    try:
        relative = _output_name(name, written)
        target = out_dir.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        reader.check_declared()
        with reader.open() as src, atomic_output(target) as out:
            info = decrypt_cms_stream(
                src, out, org=org, decryptor=decryptor, recipients=recipients, name=name
            )
    except Exception as exc:  # one bad member fails alone, whatever went wrong in it
        return FileResult(name, False, error=member_error(exc).to_dict())
    return FileResult(
        name, True, str(target), info.plaintext_bytes, info.kek_id, cipher=info.cipher
    )


def member_error(exc: Exception) -> KmsBridgeError:
    """The coded error for one member's failure (messages never quote the member's bytes)."""
    if isinstance(exc, KmsBridgeError):
        return exc
    if isinstance(exc, zipfile.BadZipFile | OSError | EOFError | zlib.error | RecursionError):
        return IntegrityError(f"the archive member cannot be read ({type(exc).__name__})")
    return InternalError(f"the archive member failed unexpectedly ({type(exc).__name__})")


class _MemberReader:
    """One zip member, refused above its caps before it is inflated, counted as it is read."""

    def __init__(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int) -> None:
        self.archive = archive
        self.member = member
        self.limit = limit
        self.read_bytes = 0
        self._source: IO[bytes] | None = None

    def check_declared(self) -> None:
        size, packed = self.member.file_size, self.member.compress_size
        if size > self.limit:
            raise InvalidRequest(f"the archive member is larger than {self.limit} bytes")
        if size > packed * MAX_MEMBER_RATIO:
            raise IntegrityError(
                f"the archive member inflates more than {MAX_MEMBER_RATIO}:1, which "
                "encrypted content never does (a compression bomb); it was not read"
            )

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        with self.archive.open(self.member) as source:
            self._source = source
            yield cast(BinaryIO, self)

    def read(self, n: int = -1) -> bytes:
        assert self._source is not None
        data = self._source.read(n if n >= 0 else self.limit + 1 - self.read_bytes)
        self._count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        assert self._source is not None
        n = self._source.readinto(buffer)  # type: ignore[attr-defined]
        self._count(int(n or 0))
        return int(n or 0)

    def _count(self, n: int) -> None:
        self.read_bytes += n
        if self.read_bytes > self.limit:  # the declared size lied
            raise IntegrityError(f"the archive member inflates past {self.limit} bytes")


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

"""CMS / PKCS#7 EnvelopedData (RFC 5652 section 6): a streaming reader and a writer. No AWS.

Reading: ``read_envelope`` parses everything before the encrypted content (at most
``MAX_ENVELOPE_HEADER_BYTES``: the recipients, the content cipher and its IV) from a stream,
in DER or BER, as ``openssl smime -encrypt -outform DER`` (definite lengths, one primitive
content octet string) and ``openssl cms -encrypt -stream`` (indefinite lengths, content in
chunks) write it. ``decrypt_content`` then decrypts the content with AES-CBC as it streams,
in ``CHUNK_BYTES`` pieces, so memory stays bounded whatever the file's size.

cryptography's ``pkcs7_decrypt_der`` takes the whole file and the KEK private key object;
kmsbridge keeps the KEK inside the decryptor and reads recordings of hundreds of MiB, so the
reader is here and the key transport is ``Decryptor.key_transport``. Writing uses
cryptography's ``PKCS7EnvelopeBuilder`` (``encrypt_for``).

CMS EnvelopedData with AES-CBC has no integrity protection: a wrong content key or a
tampered file is noticed only when the CBC padding is wrong, and not always then.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7

from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import PADDING_PKCS1V15, oaep_padding_name

MAX_ENVELOPE_HEADER_BYTES = 1024 * 1024
MAX_RECIPIENTS = 64
# EnvelopedData nests about ten deep (RFC 5652 6.1 with RFC 8017 OAEP parameters); BER's
# constructed strings add a level or two. Anything deeper is refused, never recursed into.
MAX_NESTING = 32
CHUNK_BYTES = 1024 * 1024

OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"  # RSAES-PKCS1-v1_5, what openssl smime uses
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
OID_MGF1 = "1.2.840.113549.1.1.8"


@dataclass(frozen=True)
class ContentCipher:
    """A CBC content cipher of PKCS#7 envelopes: its name, key and block sizes."""

    name: str
    key_bytes: int
    block_bytes: int

    def algorithm(self, key: bytes) -> CipherAlgorithm:
        if self.name == "des-ede3-cbc":
            return TripleDES(key)
        return algorithms.AES(key)


# What older recorders and `openssl smime -encrypt` write: OpenSSL 3 defaults to 3DES.
# CBC carries no integrity protection either way (see decrypt_content).
CONTENT_CIPHERS = {
    "2.16.840.1.101.3.4.1.2": ContentCipher("aes-128-cbc", 16, 16),
    "2.16.840.1.101.3.4.1.22": ContentCipher("aes-192-cbc", 24, 16),
    "2.16.840.1.101.3.4.1.42": ContentCipher("aes-256-cbc", 32, 16),
    "1.2.840.113549.3.7": ContentCipher("des-ede3-cbc", 24, 8),
}
# Names of ciphers kmsbridge recognises but does not read, for a refusal that names them.
_KNOWN_UNREAD = {
    "1.3.14.3.2.7": "des-cbc",
    "1.2.840.113549.3.2": "rc2-cbc",
    "2.16.840.1.101.3.4.1.6": "aes-128-gcm",
    "2.16.840.1.101.3.4.1.46": "aes-256-gcm",
}
_OAEP_HASHES: dict[str, str] = {
    "1.3.14.3.2.26": "sha1",  # the RFC 8017 default when the parameters are absent
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}

_SEQUENCE, _SET, _OID, _INTEGER, _OCTETS, _NULL = 0x30, 0x31, 0x06, 0x02, 0x04, 0x05
_CONTEXT_0_PRIMITIVE, _CONTEXT_0, _CONTEXT_1, _CONTEXT_2 = 0x80, 0xA0, 0xA1, 0xA2


@dataclass(frozen=True)
class KeyTransRecipient:
    """One KeyTransRecipientInfo: who it is for, and the content key encrypted to them."""

    issuer_der: bytes | None  # issuerAndSerialNumber
    serial: int | None
    subject_key_id: bytes | None  # or subjectKeyIdentifier
    padding: str  # a key-transport padding name (formats.CMS_PADDINGS)
    encrypted_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Envelope:
    """What precedes the encrypted content. ``source`` is positioned at the content."""

    recipients: tuple[KeyTransRecipient, ...]
    cipher: ContentCipher
    iv: bytes
    content_chunked: bool  # a constructed OCTET STRING (BER), else one primitive string
    content_length: int | None  # None: indefinite length


# ---------------------------------------------------------------- BER on a stream


class _Stream:
    """A byte stream read by TLV, counting what the envelope header costs."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.used = 0
        self.position = 0

    def take(self, n: int, *, counted: bool = True) -> bytes:
        if counted:
            self.used += n
            if self.used > MAX_ENVELOPE_HEADER_BYTES:
                raise IntegrityError("the PKCS#7 envelope header is implausibly large")
        self.position += n
        data = self.source.read(n)
        if len(data) != n:
            raise IntegrityError("the PKCS#7 file is truncated")
        return data

    def header(self, *, counted: bool = True) -> tuple[int, int | None, bytes]:
        """(tag, length or None for indefinite, the raw identifier and length octets)."""
        raw = self.take(2, counted=counted)
        tag, first = raw[0], raw[1]
        if tag & 0x1F == 0x1F:
            raise IntegrityError("the PKCS#7 file uses a tag kmsbridge does not read")
        if first < 0x80:
            return tag, first, raw
        if first == 0x80:
            if not tag & 0x20:
                raise IntegrityError("the PKCS#7 file has an indefinite primitive element")
            return tag, None, raw
        count = first & 0x7F
        if count > 8:
            raise IntegrityError("the PKCS#7 file has an implausible length")
        more = self.take(count, counted=counted)
        return tag, int.from_bytes(more, "big"), raw + more

    def element(self, expected: int | None = None, depth: int = 0) -> tuple[int, bytes]:
        """One whole element as (tag, raw TLV bytes), indefinite lengths included."""
        _check_depth(depth)
        tag, length, raw = self.header()
        if expected is not None and tag != expected:
            raise IntegrityError("the PKCS#7 file is not CMS EnvelopedData as expected")
        if length is not None:
            return tag, raw + self.take(length)
        parts = [raw]
        while True:
            child_tag, child = self.element(depth=depth + 1)
            parts.append(child)
            if child_tag == 0 and child == b"\x00\x00":
                return tag, b"".join(parts)

    def enter(self, expected: int) -> None:
        tag, _, _ = self.header()
        if tag != expected:
            raise IntegrityError("the PKCS#7 file is not CMS EnvelopedData as expected")


def _check_depth(depth: int) -> None:
    if depth > MAX_NESTING:
        raise IntegrityError(f"the PKCS#7 file nests more than {MAX_NESTING} levels deep")


# ---------------------------------------------------------------- BER in memory


def _children(tlv: bytes) -> list[tuple[int, bytes, bytes]]:
    """The (tag, content, raw) children of one constructed element's raw TLV."""
    stream = _Stream(io.BytesIO(tlv))
    _, length, raw = stream.header(counted=False)
    end = len(raw) + length if length is not None else len(tlv) - 2
    out = []
    while stream.source.tell() < end:
        tag, child = stream.element()
        if tag == 0 and child == b"\x00\x00":
            break
        out.append((tag, _content(child), child))
    return out


def _content(tlv: bytes) -> bytes:
    stream = _Stream(io.BytesIO(tlv))
    _, length, raw = stream.header(counted=False)
    return tlv[len(raw) :] if length is not None else tlv[len(raw) : -2]


def _oid(content: bytes) -> str:
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if value or not arcs:
        raise IntegrityError("the PKCS#7 file has a malformed object identifier")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _expect(child: tuple[int, bytes, bytes], tag: int) -> bytes:
    if child[0] != tag:
        raise IntegrityError("the PKCS#7 file is not CMS EnvelopedData as expected")
    return child[1]


# ---------------------------------------------------------------- reading


def read_envelope(source: BinaryIO) -> Envelope:
    """Parse a CMS EnvelopedData up to its encrypted content, leaving ``source`` there."""
    try:
        return _read_envelope(source)
    except (ValueError, IndexError):  # a structure with missing or surplus fields
        raise IntegrityError("the PKCS#7 file is not CMS EnvelopedData as expected") from None


def _read_envelope(source: BinaryIO) -> Envelope:
    stream = _Stream(source)
    stream.enter(_SEQUENCE)  # ContentInfo
    _, oid = stream.element(_OID)
    if _oid(_content(oid)) != OID_ENVELOPED_DATA:
        raise InvalidRequest("the file is PKCS#7 but not EnvelopedData (an encrypted file)")
    stream.enter(_CONTEXT_0)
    stream.enter(_SEQUENCE)  # EnvelopedData
    stream.element(_INTEGER)  # version
    tag, recipient_set = stream.element()
    if tag == _CONTEXT_0:  # originatorInfo: certificates and CRLs, not needed to decrypt
        tag, recipient_set = stream.element()
    if tag != _SET:
        raise IntegrityError("the PKCS#7 file is not CMS EnvelopedData as expected")
    recipients = _recipients(recipient_set)
    stream.enter(_SEQUENCE)  # EncryptedContentInfo
    stream.element(_OID)  # content type (id-data)
    _, algorithm = stream.element(_SEQUENCE)
    cipher, iv = _content_cipher(algorithm)
    tag, length, _ = stream.header()
    if tag in (_CONTEXT_0_PRIMITIVE, _CONTEXT_0):
        return Envelope(recipients, cipher, iv, tag == _CONTEXT_0, length)
    raise IntegrityError("the PKCS#7 file has no encrypted content")


def _recipients(recipient_set: bytes) -> tuple[KeyTransRecipient, ...]:
    children = _children(recipient_set)
    if len(children) > MAX_RECIPIENTS:
        raise IntegrityError(f"the PKCS#7 file has more than {MAX_RECIPIENTS} recipients")
    # Only KeyTransRecipientInfo (a SEQUENCE); key agreement, KEK and password recipients
    # are tagged [1]..[4] and cannot be for an RSA key.
    out = tuple(_key_trans(raw) for tag, _, raw in children if tag == _SEQUENCE)
    if not out:
        raise InvalidRequest("the PKCS#7 file has no RSA key-transport recipient")
    return out


def _key_trans(raw: bytes) -> KeyTransRecipient:
    fields = _children(raw)
    if len(fields) != 4:
        raise IntegrityError("a PKCS#7 recipient is malformed")
    rid, algorithm, encrypted_key = fields[1], fields[2], fields[3]
    issuer = serial = ski = None
    if rid[0] == _SEQUENCE:
        name, number = _children(rid[2])
        issuer = _expect_raw(name, _SEQUENCE)
        serial = int.from_bytes(_expect(number, _INTEGER), "big", signed=True)
    elif rid[0] == _CONTEXT_0_PRIMITIVE:
        ski = rid[1]
    else:
        raise IntegrityError("a PKCS#7 recipient identifier is malformed")
    return KeyTransRecipient(
        issuer, serial, ski, _key_transport_padding(algorithm), _expect(encrypted_key, _OCTETS)
    )


def _expect_raw(child: tuple[int, bytes, bytes], tag: int) -> bytes:
    _expect(child, tag)
    return child[2]


def _key_transport_padding(algorithm: tuple[int, bytes, bytes]) -> str:
    parts = _children(_expect_raw(algorithm, _SEQUENCE))
    oid = _oid(_expect(parts[0], _OID))
    if oid == OID_RSA_ENCRYPTION:
        return PADDING_PKCS1V15
    if oid != OID_RSAES_OAEP:
        raise InvalidRequest("the PKCS#7 key transport is not RSA (PKCS#1 v1.5 or OAEP)")
    # SHA-1 is RFC 8017's default for OAEP in legacy files; OAEP-SHA1 remains sound there.
    digest = mgf_digest = "sha1"
    params = _children(parts[1][2]) if len(parts) > 1 and parts[1][0] == _SEQUENCE else []
    # RSAES-OAEP-params (RFC 8017 A.2.1): [0] hash, [1] MGF1 with its hash, [2] label.
    for tag, explicit, _ in params:
        if tag == _CONTEXT_0:
            digest = _oaep_hash(explicit)
        elif tag == _CONTEXT_1:
            mgf = _children(explicit)
            if len(mgf) != 2 or _oid(_expect(mgf[0], _OID)) != OID_MGF1:
                raise InvalidRequest("the PKCS#7 OAEP mask generation is not MGF1")
            mgf_digest = _oaep_hash(mgf[1][2])
        elif tag == _CONTEXT_2:
            raise InvalidRequest("PKCS#7 OAEP with a label is not supported")
    return oaep_padding_name(digest, mgf_digest)


def _oaep_hash(algorithm_tlv: bytes) -> str:
    oid = _oid(_expect(_children(algorithm_tlv)[0], _OID))
    if oid not in _OAEP_HASHES:
        raise InvalidRequest("the PKCS#7 OAEP hash is not SHA-1 or SHA-2")
    return _OAEP_HASHES[oid]


def _content_cipher(algorithm: bytes) -> tuple[ContentCipher, bytes]:
    parts = _children(algorithm)
    oid = _oid(_expect(parts[0], _OID))
    cipher = CONTENT_CIPHERS.get(oid)
    if cipher is None:
        readable = ", ".join(c.name for c in CONTENT_CIPHERS.values())
        raise InvalidRequest(
            f"the PKCS#7 content cipher {_KNOWN_UNREAD.get(oid, 'with OID ' + oid)} is not "
            f"supported; kmsbridge reads {readable}"
        )
    iv = _expect(parts[1], _OCTETS) if len(parts) > 1 else b""
    if len(iv) != cipher.block_bytes:
        raise IntegrityError(f"the PKCS#7 {cipher.name} IV is not {cipher.block_bytes} bytes")
    return cipher, iv


# ---------------------------------------------------------------- content


def decrypt_content(source: BinaryIO, envelope: Envelope, key: bytes, sink: IO[bytes]) -> int:
    """CBC-decrypt the content that follows ``read_envelope``; returns plaintext bytes.

    The last plaintext block is held back until the end, where its padding is removed, so
    ``sink`` receives exactly the plaintext. A wrong key or a damaged file is one
    IntegrityError (usually noticed at the padding: CBC carries no authentication).
    """
    cipher, block = envelope.cipher, envelope.cipher.block_bytes
    if len(key) != cipher.key_bytes:
        raise IntegrityError(_UNDECRYPTABLE)
    decryptor = Cipher(cipher.algorithm(key), modes.CBC(envelope.iv)).decryptor()
    out = memoryview(bytearray(CHUNK_BYTES + block))
    held, total = bytearray(), 0
    for chunk in _content_chunks(_Stream(source), envelope):
        n = decryptor.update_into(chunk, out)
        if n >= block:  # release everything but the last block, without copying the chunk
            sink.write(held)
            sink.write(out[: n - block])
            total += len(held) + n - block
            held = bytearray(out[n - block : n])
        else:
            held += out[:n]
    try:
        held += decryptor.finalize()
        unpadder = symmetric_padding.PKCS7(block * 8).unpadder()
        last = unpadder.update(bytes(held)) + unpadder.finalize()
    except ValueError:
        raise IntegrityError(_UNDECRYPTABLE) from None
    if len(held) != block:
        raise IntegrityError(_UNDECRYPTABLE)
    sink.write(last)
    return total + len(last)


_UNDECRYPTABLE = "the PKCS#7 file does not decrypt under its recipient's key (wrong key or damaged)"


def _content_chunks(stream: _Stream, envelope: Envelope) -> Iterator[memoryview]:
    buffer = memoryview(bytearray(CHUNK_BYTES))
    if envelope.content_chunked:
        yield from _constructed(stream, envelope.content_length, buffer)
    elif envelope.content_length is not None:
        yield from _primitive(stream, envelope.content_length, buffer)


def _primitive(stream: _Stream, length: int, buffer: memoryview) -> Iterator[memoryview]:
    left = length
    while left:
        n = min(left, len(buffer))
        if _read_into(stream.source, buffer[:n]) != n:
            raise IntegrityError("the PKCS#7 file is truncated")
        stream.position += n
        left -= n
        yield buffer[:n]


def _constructed(
    stream: _Stream, length: int | None, buffer: memoryview, depth: int = 0
) -> Iterator[memoryview]:
    """The pieces of a constructed OCTET STRING of ``length`` bytes, or up to end-of-contents."""
    _check_depth(depth)
    end = None if length is None else stream.position + length
    while end is None or stream.position < end:
        tag, size, _ = stream.header(counted=False)
        if tag == 0 and size == 0 and end is None:
            return
        if tag == _OCTETS and size is not None:
            yield from _primitive(stream, size, buffer)
        elif tag == _OCTETS | 0x20:
            yield from _constructed(stream, size, buffer, depth + 1)
        else:
            raise IntegrityError("the PKCS#7 file's content is malformed")
    if stream.position != end:
        raise IntegrityError("the PKCS#7 file's content is malformed")


def _read_into(source: BinaryIO, buffer: memoryview) -> int:
    got = 0
    while got < len(buffer):
        n = source.readinto(buffer[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


# ---------------------------------------------------------------- writing


def encrypt_for(certificate: x509.Certificate, data: bytes | bytearray) -> bytes:
    """CMS EnvelopedData (DER, AES-256-CBC, RSA PKCS#1 v1.5 key transport) that
    ``openssl smime -decrypt -inform DER -binary`` reads back to ``data`` byte for byte."""
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)  # any bytes-like (a bytearray avoids a copy of the recording)
        .add_recipient(certificate)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )

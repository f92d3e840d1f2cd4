"""The AWS Encryption SDK message format v2, for suite AES_256_GCM_HKDF_SHA512_COMMIT_KEY.

Header and frame serialisation mirror each other field by field, following the ESDK
message-format specification (docs.aws.amazon.com/encryption-sdk, "Message format
reference" and "Body AAD"). Parsing is strict: every length is bounded before it is
read, and anything unexpected is one ``IntegrityError``.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsbridge.errors import IntegrityError
from kmsbridge.formats import (
    COMMITMENT_BYTES,
    DATA_KEY_BYTES,
    IV_BYTES,
    MAX_ENCRYPTED_DATA_KEYS,
    MAX_FRAME_COUNT,
    MAX_FRAME_LENGTH,
    MAX_HEADER_BYTES,
    MESSAGE_ID_BYTES,
    MESSAGE_VERSION,
    RECORDING_SUITE_ID,
    TAG_BYTES,
)

CONTENT_NON_FRAMED = 1
CONTENT_FRAMED = 2
FINAL_FRAME_MARKER = 0xFFFFFFFF
# Body AAD content strings (spec "Body AAD").
AAD_FRAME = b"AWSKMSEncryptionClient Frame"
AAD_FINAL_FRAME = b"AWSKMSEncryptionClient Final Frame"
AAD_SINGLE_BLOCK = b"AWSKMSEncryptionClient Single Block"
_KEY_LABEL = b"DERIVEKEY"
_KEY_INFO = struct.pack(">H", RECORDING_SUITE_ID) + _KEY_LABEL  # suite id || "DERIVEKEY"
_COMMIT_LABEL = b"COMMITKEY"
_HEADER_AUTH_IV = bytes(IV_BYTES)
# Fixed sizes of a regular frame around its content: sequence number, IV, tag.
FRAME_OVERHEAD = 4 + IV_BYTES + TAG_BYTES
# A final frame adds the end marker and the content length.
FINAL_FRAME_OVERHEAD = 4 + 4 + IV_BYTES + 4 + TAG_BYTES


@dataclass(frozen=True)
class EncryptedDataKey:
    provider_id: str
    key_info: bytes
    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True)
class MessageHeader:
    """A parsed v2 header. ``raw`` is the header body plus its authentication tag."""

    message_id: bytes
    encryption_context: Mapping[str, str]
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    content_type: int
    frame_length: int
    commitment: bytes = field(repr=False)
    body: bytes = field(repr=False)
    auth_tag: bytes = field(repr=False)

    @property
    def raw(self) -> bytes:
        return self.body + self.auth_tag

    @property
    def message_id_hex(self) -> str:
        return self.message_id.hex()


@dataclass(frozen=True)
class MessageKeys:
    """The per-message AES key derived from the data key (never printed)."""

    aead: AESGCM = field(repr=False)


def serialize_context(context: Mapping[str, str]) -> bytes:
    """Count, then (key, value) pairs sorted by UTF-8 key bytes; empty context: no bytes."""
    if not context:
        return b""
    pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in context.items())
    out = bytearray(struct.pack(">H", len(pairs)))
    for key, value in pairs:
        out += struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value
    return bytes(out)


def serialize_header_body(
    message_id: bytes,
    context: Mapping[str, str],
    edks: tuple[EncryptedDataKey, ...],
    frame_length: int,
    commitment: bytes,
) -> bytes:
    aad = serialize_context(context)
    out = bytearray()
    out += struct.pack(">BH", MESSAGE_VERSION, RECORDING_SUITE_ID)  # version, suite id
    out += message_id  # 32-byte message id
    out += struct.pack(">H", len(aad)) + aad  # encryption context
    out += struct.pack(">H", len(edks))  # encrypted data key count
    for edk in edks:
        provider = edk.provider_id.encode("utf-8")
        out += struct.pack(">H", len(provider)) + provider
        out += struct.pack(">H", len(edk.key_info)) + edk.key_info
        out += struct.pack(">H", len(edk.ciphertext)) + edk.ciphertext
    out += struct.pack(">BI", CONTENT_FRAMED, frame_length)  # content type, frame length
    out += commitment  # algorithm suite data: the commitment key
    return bytes(out)


def derive_message_keys(dek: bytes, message_id: bytes) -> tuple[MessageKeys, bytes]:
    """HKDF-SHA512 (salt = message id) gives the AES key and the 32-byte commitment.

    Both outputs are one HKDF block, so HKDF (RFC 5869) is one extract and one expand
    step each, done with the standard library's OpenSSL HMAC: a third of the cost of two
    ``cryptography`` HKDF objects on the unwrap path. A test checks it against ``HKDF``.
    """
    if len(dek) != DATA_KEY_BYTES:
        raise IntegrityError("a data key must be 32 bytes")
    prk = hmac.digest(message_id, dek, "sha512")  # HKDF-Extract(salt, IKM)
    key = hmac.digest(prk, _KEY_INFO + b"\x01", "sha512")[:DATA_KEY_BYTES]  # T(1)
    commitment = hmac.digest(prk, _COMMIT_LABEL + b"\x01", "sha512")[:COMMITMENT_BYTES]
    return MessageKeys(AESGCM(key)), commitment


def header_auth_tag(keys: MessageKeys, header_body: bytes) -> bytes:
    return keys.aead.encrypt(_HEADER_AUTH_IV, b"", header_body)


def verify_header(header: MessageHeader, dek: bytes) -> MessageKeys:
    """Check the key commitment and the header tag; only then may the data key be used."""
    keys, commitment = derive_message_keys(dek, header.message_id)
    if not hmac.compare_digest(commitment, header.commitment):
        raise IntegrityError("the recording's key commitment does not match its data key")
    try:
        keys.aead.decrypt(_HEADER_AUTH_IV, header.auth_tag, header.body)
    except InvalidTag:
        raise IntegrityError("the recording's header failed authentication") from None
    return keys


def frame_iv(sequence_number: int) -> bytes:
    """The deterministic IV: the sequence number, big-endian, left-padded to 12 bytes."""
    return sequence_number.to_bytes(IV_BYTES, "big")


def body_aad(message_id: bytes, content: bytes, sequence_number: int, length: int) -> bytes:
    return message_id + content + struct.pack(">IQ", sequence_number, length)


# ---------------------------------------------------------------- frames
#
# Regular frame: sequence number (4) | IV (12) | ciphertext (frame length) | tag (16).
# Final frame: 0xFFFFFFFF (4) | sequence number (4) | IV (12) | content length (4) |
# ciphertext (content length, at most the frame length) | tag (16).
# These work in place on caller-owned buffers: the codec's hot loop allocates nothing
# per frame but the IV and the AAD (a few dozen bytes).

_FINAL_HEAD = struct.Struct(">II12sI")  # marker, sequence number, IV, content length


class FrameCipher:
    """Seals and opens the frames of one message, in place, with its derived key."""

    __slots__ = ("_aead", "_final_aad", "_regular_aad")

    def __init__(self, keys: MessageKeys, message_id: bytes) -> None:
        self._aead = keys.aead
        self._regular_aad = message_id + AAD_FRAME
        self._final_aad = message_id + AAD_FINAL_FRAME

    def seal_into(self, seq: int, plain: memoryview, out: memoryview) -> int:
        """Write regular frame ``seq`` of ``plain`` at the start of ``out``; its size."""
        n = len(plain)
        iv = frame_iv(seq)
        out[:4] = seq.to_bytes(4, "big")
        out[4:16] = iv
        aad = self._regular_aad + struct.pack(">IQ", seq, n)
        self._aead.encrypt_into(iv, plain, aad, out[16 : 32 + n])
        return 32 + n

    def seal_final_into(self, seq: int, plain: memoryview, out: memoryview) -> int:
        """Write the final frame ``seq`` of ``plain`` at the start of ``out``; its size."""
        n = len(plain)
        iv = frame_iv(seq)
        _FINAL_HEAD.pack_into(out, 0, FINAL_FRAME_MARKER, seq, iv, n)
        aad = self._final_aad + struct.pack(">IQ", seq, n)
        self._aead.encrypt_into(iv, plain, aad, out[24 : 40 + n])
        return 40 + n

    def open_into(self, seq: int, frame: memoryview, plain: memoryview) -> None:
        """Authenticate regular frame ``seq`` (all of its bytes) and decrypt it into ``plain``."""
        iv = frame_iv(seq)
        if int.from_bytes(frame[:4], "big") != seq:
            raise IntegrityError("the recording's frames are out of order")
        if frame[4:16] != iv:
            raise IntegrityError("a frame of the recording has an unexpected IV")
        aad = self._regular_aad + struct.pack(">IQ", seq, len(plain))
        self._open(iv, frame[16:], aad, plain)

    def open_final_into(self, seq: int, frame: memoryview, plain: memoryview) -> int:
        """Authenticate the final frame ``seq`` (exactly its bytes) into ``plain``; its length."""
        marker, final_seq, iv, n = _FINAL_HEAD.unpack_from(frame)
        if marker != FINAL_FRAME_MARKER:
            raise IntegrityError("the recording's final frame is missing")
        if final_seq != seq:
            raise IntegrityError("the recording's final frame is out of order")
        if iv != frame_iv(seq):
            raise IntegrityError("a frame of the recording has an unexpected IV")
        if len(frame) != FINAL_FRAME_OVERHEAD + n or n > len(plain):
            raise IntegrityError("the recording's final frame has the wrong length")
        aad = self._final_aad + struct.pack(">IQ", seq, n)
        self._open(iv, frame[24:], aad, plain[:n])
        return int(n)

    def _open(self, iv: bytes, sealed: memoryview, aad: bytes, plain: memoryview) -> None:
        try:
            self._aead.decrypt_into(iv, sealed, aad, plain)
        except InvalidTag:
            raise IntegrityError("a frame of the recording failed authentication") from None


def final_frame_content_length(head: memoryview | bytes) -> int:
    """The content length a final frame's first 24 bytes announce (not yet authenticated)."""
    length: int = _FINAL_HEAD.unpack_from(head)[3]
    return length


class _Reader:
    """Reads exact field lengths from a byte source and keeps what it read (the header)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.consumed = bytearray()

    def take(self, n: int) -> bytes:
        if len(self.consumed) + n > MAX_HEADER_BYTES:
            raise IntegrityError(f"the recording header is longer than {MAX_HEADER_BYTES} bytes")
        data = self._read(n)
        if len(data) != n:
            data = data + read_exactly(self._read, n - len(data))
        self.consumed += data
        return data

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def sized(self) -> bytes:
        return self.take(self.u16())


def read_exactly(read: Callable[[int], bytes], n: int) -> bytes:
    """Read n bytes or fail: a short read means a truncated message."""
    first = read(n)
    if len(first) == n:  # the usual case: files and buffers return all that is asked
        return first
    chunks, remaining = [first], n - len(first)
    while remaining:
        chunk = read(remaining)
        if not chunk:
            raise IntegrityError("the recording is truncated")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# Version, suite id, message id, context length.
_HEAD = struct.Struct(f">BH{MESSAGE_ID_BYTES}sH")
# Content type, frame length, commitment (the suite's data), the header's tag.
_TAIL = struct.Struct(f">BI{COMMITMENT_BYTES}s{TAG_BYTES}s")


def parse_header(read: Callable[[int], bytes]) -> MessageHeader:
    """Parse a v2 header and its tag; the cheapest checks come first.

    Fixed-size runs of fields are read at once (fewer calls on the unwrap path), never
    past the header's tag: the body follows it in a stream.
    """
    r = _Reader(read)
    version, suite, message_id, context_length = _HEAD.unpack(r.take(_HEAD.size))
    if version != MESSAGE_VERSION:
        raise IntegrityError(f"unsupported message format version {version}; expected 2")
    if suite != RECORDING_SUITE_ID:
        raise IntegrityError(
            f"algorithm suite 0x{suite:04x} is not accepted; recordings use "
            "AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0478), unsigned"
        )
    context = _parse_context(r.take(context_length))
    edks = _parse_edks(r)
    content_type, frame_length, commitment, auth_tag = _TAIL.unpack(r.take(_TAIL.size))
    _check_content_type(content_type, frame_length)
    body = bytes(r.consumed[:-TAG_BYTES])
    return MessageHeader(
        message_id, context, edks, content_type, frame_length, commitment, body, auth_tag
    )


def _parse_context(aad: bytes) -> dict[str, str]:
    if not aad:
        return {}
    try:
        (count,) = struct.unpack_from(">H", aad, 0)
        offset, context = 2, {}
        for _ in range(count):
            key, offset = _sized_at(aad, offset)
            value, offset = _sized_at(aad, offset)
            name = key.decode("utf-8")
            if name in context:
                raise IntegrityError("the encryption context repeats a key")
            context[name] = value.decode("utf-8")
    except (struct.error, UnicodeDecodeError):
        raise IntegrityError("the encryption context is malformed") from None
    if offset != len(aad):
        raise IntegrityError("the encryption context has trailing bytes")
    if list(context) != sorted(context, key=lambda k: k.encode("utf-8")):
        raise IntegrityError("the encryption context is not in canonical order")
    return context


def _sized_at(data: bytes, offset: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from(">H", data, offset)
    end = offset + 2 + n
    if end > len(data):
        raise struct.error("short field")
    return data[offset + 2 : end], end


def _parse_edks(r: _Reader) -> tuple[EncryptedDataKey, ...]:
    count = r.u16()
    if count == 0:
        raise IntegrityError("the recording has no encrypted data key")
    if count > MAX_ENCRYPTED_DATA_KEYS:
        raise IntegrityError(
            f"the recording has {count} encrypted data keys; at most "
            f"{MAX_ENCRYPTED_DATA_KEYS} are accepted"
        )
    edks = []
    for _ in range(count):
        try:
            provider = r.sized().decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError("an encrypted data key has a malformed provider id") from None
        edks.append(EncryptedDataKey(provider, r.sized(), r.sized()))
    return tuple(edks)


def _check_content_type(content_type: int, frame_length: int) -> None:
    if content_type == CONTENT_FRAMED and frame_length == 0:
        raise IntegrityError("a framed recording must have a non-zero frame length")
    if frame_length > MAX_FRAME_LENGTH:  # before any reader sizes a buffer by it
        raise IntegrityError(
            f"the recording's frame length {frame_length} is over the {MAX_FRAME_LENGTH} "
            "bytes accepted"
        )
    if content_type == CONTENT_NON_FRAMED and frame_length != 0:
        raise IntegrityError("a non-framed message must have frame length 0")
    if content_type not in (CONTENT_FRAMED, CONTENT_NON_FRAMED):
        raise IntegrityError(f"unknown content type {content_type}")


def frame_offset(header_length: int, frame_length: int, index: int) -> int:
    """Byte offset of regular frame ``index`` (0-based) in a framed message."""
    return header_length + index * (FRAME_OVERHEAD + frame_length)


__all__ = [
    "AAD_FINAL_FRAME",
    "AAD_FRAME",
    "AAD_SINGLE_BLOCK",
    "CONTENT_FRAMED",
    "CONTENT_NON_FRAMED",
    "FINAL_FRAME_MARKER",
    "FINAL_FRAME_OVERHEAD",
    "FRAME_OVERHEAD",
    "MAX_FRAME_COUNT",
    "EncryptedDataKey",
    "FrameCipher",
    "MessageHeader",
    "MessageKeys",
    "body_aad",
    "derive_message_keys",
    "final_frame_content_length",
    "frame_iv",
    "frame_offset",
    "header_auth_tag",
    "parse_header",
    "read_exactly",
    "serialize_header_body",
    "verify_header",
]

"""Recordings: ESDK v2 messages written and read by our own codec with direct AES-GCM calls.

Encrypting needs only the org's KEK public key. Decrypting needs a *data-key source*: a
callable ``(org, raw_header) -> data_key`` (a local ``Decryptor``, or the Lambda client),
which must release a key only for a header that names the org and authenticates.

Streams release each frame's plaintext only after that frame authenticated, but a stream
that ends in an error may have released a prefix of the recording. The path functions
(``encrypt_file``, ``decrypt_file``) publish nothing unless the whole message authenticated:
they write a 0600 temporary file beside the target and rename it at the end.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.crypto.kek import KekPublicKey, unwrap_dek
from kmsbridge.crypto.message import (
    AAD_SINGLE_BLOCK,
    CONTENT_NON_FRAMED,
    FINAL_FRAME_MARKER,
    FINAL_FRAME_OVERHEAD,
    FRAME_OVERHEAD,
    EncryptedDataKey,
    FrameCipher,
    MessageHeader,
    MessageKeys,
    body_aad,
    derive_message_keys,
    final_frame_content_length,
    header_auth_tag,
    parse_header,
    read_exactly,
    serialize_header_body,
    verify_header,
)
from kmsbridge.errors import IntegrityError, InvalidRequest, WrongOrg
from kmsbridge.files import atomic_output
from kmsbridge.formats import (
    CONTEXT_ORG,
    CONTEXT_RECORDING,
    DATA_KEY_BYTES,
    FRAME_LENGTH,
    IV_BYTES,
    MAX_FRAME_COUNT,
    MAX_FRAME_LENGTH,
    MAX_NON_FRAMED_BYTES,
    MESSAGE_ID_BYTES,
    PROVIDER_ID,
    TAG_BYTES,
    is_kek_id,
    recording_context,
)

# Frames are read and written in batches of about this many bytes: one read and one
# write call per batch instead of per frame (system calls dominate at small frames).
# 1 MiB measured best (bench/): the batch stays in the CPU's cache between the copy in,
# AES-GCM and the copy out; 4 MiB batches were 10-20 % slower in memory.
IO_BATCH_BYTES = 1024 * 1024
# A final frame is longer than a regular one by its marker and content length.
FINAL_EXTRA = FINAL_FRAME_OVERHEAD - FRAME_OVERHEAD
_FINAL_MARKER = FINAL_FRAME_MARKER.to_bytes(4, "big")
# Each thread keeps the batch buffers of its last stream for the next one: a fresh pair
# costs 2 MiB of page faults and zeroing, more than AES-GCM over a 1 MB recording.
_POOL = threading.local()


class DataKeySource(Protocol):
    """Returns the data key of the recording whose raw header is given, for that org."""

    def __call__(self, org: str, header: bytes) -> bytes: ...


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording says about itself once read or written (no secrets)."""

    org: str
    recording_id: str
    kek_id: str
    message_id: str
    context: Mapping[str, str] = field(repr=False)
    plaintext_bytes: int
    frame_length: int


# ---------------------------------------------------------------- header checks


def read_header(source: BinaryIO) -> MessageHeader:
    """Parse a recording's header (and its tag) from the start of a stream."""
    return parse_header(source.read)


def kek_data_key(header: MessageHeader) -> tuple[str, bytes]:
    """The KEK id and RSA-wrapped data key of the one ``kmsbridge`` EDK of a header."""
    ours = [edk for edk in header.encrypted_data_keys if edk.provider_id == PROVIDER_ID]
    if len(ours) != 1:
        raise IntegrityError(
            f"a recording must carry exactly one '{PROVIDER_ID}' data key; found {len(ours)}"
        )
    try:
        kek_id = ours[0].key_info.decode("ascii")
    except UnicodeDecodeError:
        raise IntegrityError("the recording's KEK id is malformed") from None
    if not is_kek_id(kek_id):
        raise IntegrityError("the recording's KEK id is malformed")
    return kek_id, ours[0].ciphertext


def check_org(header: MessageHeader, org: str) -> str:
    """Refuse a recording whose context names another org; return its recording id."""
    named = header.encryption_context.get(CONTEXT_ORG)
    if named is None:
        raise IntegrityError("the recording's encryption context names no org")
    if named != org:
        raise WrongOrg(f"the recording belongs to another org than {org!r}")
    recording_id = header.encryption_context.get(CONTEXT_RECORDING)
    if recording_id is None:
        raise IntegrityError("the recording's encryption context has no recording id")
    return recording_id


def private_key_data_keys(private: rsa.RSAPrivateKey) -> DataKeySource:
    """A ``DataKeySource`` from a KEK private key held locally (tools, tests, benchmarks).

    It releases the key of any recording wrapped for this KEK; ``decrypt_stream`` then
    checks the commitment and the header tag under it.
    """

    def data_key(org: str, header: bytes) -> bytes:
        parsed = parse_header(io.BytesIO(header).read)
        check_org(parsed, org)
        return unwrap_dek(private, kek_data_key(parsed)[1])

    return data_key


# ---------------------------------------------------------------- encrypt


def encrypt_stream(
    source: BinaryIO,
    sink: IO[bytes],
    *,
    public_key: KekPublicKey,
    org: str,
    recording_id: str,
    metadata: Mapping[str, str] | None = None,
    frame_length: int = FRAME_LENGTH,
) -> RecordingInfo:
    """Encrypt a recording for an org with its KEK public key; no KMS call, no secret."""
    context = recording_context(org, recording_id, metadata)
    if not 0 < frame_length <= MAX_FRAME_LENGTH or frame_length % 16:
        raise InvalidRequest(
            f"frame length must be a multiple of 16 bytes, at most {MAX_FRAME_LENGTH} bytes"
        )
    dek = os.urandom(DATA_KEY_BYTES)
    message_id = os.urandom(MESSAGE_ID_BYTES)
    keys, commitment = derive_message_keys(dek, message_id)
    edk = EncryptedDataKey(PROVIDER_ID, public_key.kek_id.encode("ascii"), public_key.wrap_dek(dek))
    del dek
    body = serialize_header_body(message_id, context, (edk,), frame_length, commitment)
    sink.write(body)
    sink.write(header_auth_tag(keys, body))
    total = _encrypt_frames(source, sink, keys, message_id, frame_length)
    return RecordingInfo(
        org, recording_id, public_key.kek_id, message_id.hex(), context, total, frame_length
    )


def _encrypt_frames(
    source: BinaryIO, sink: IO[bytes], keys: MessageKeys, message_id: bytes, frame_length: int
) -> int:
    """Seal whole batches of frames into one buffer and write each batch at once.

    The last frame read is held back until the next read shows whether it is the final one.
    """
    cipher = FrameCipher(keys, message_id)
    buffers, total = _take_buffers(frame_length), 0
    try:
        total = _encrypt_batches(source, sink, cipher, frame_length, buffers.plain, buffers.sealed)
        return total
    finally:
        buffers.give_back(total)


def _encrypt_batches(
    source: BinaryIO,
    sink: IO[bytes],
    cipher: FrameCipher,
    frame_length: int,
    plain: memoryview,
    out: memoryview,
) -> int:
    held = _fill(source, plain)
    seq, total = 1, 0
    while held == len(plain):
        # A full batch: every frame but the last is regular; the last moves to the front.
        seq, size = _seal_frames(cipher, seq, plain[: held - frame_length], frame_length, out)
        sink.write(out[:size])
        total += held - frame_length
        plain[:frame_length] = plain[held - frame_length : held]
        held = frame_length + _fill(source, plain[frame_length:])
    regular = max(0, held - 1) // frame_length * frame_length
    seq, size = _seal_frames(cipher, seq, plain[:regular], frame_length, out)
    _check_frame_count(seq)
    size += cipher.seal_final_into(seq, plain[regular:held], out[size:])
    sink.write(out[:size])
    return total + held


def _seal_frames(
    cipher: FrameCipher, seq: int, plain: memoryview, frame_length: int, out: memoryview
) -> tuple[int, int]:
    """Seal ``plain`` (whole frames) as regular frames into ``out``: next seq, bytes written."""
    size = 0
    for offset in range(0, len(plain), frame_length):
        _check_frame_count(seq)
        size += cipher.seal_into(seq, plain[offset : offset + frame_length], out[size:])
        seq += 1
    return seq, size


def _take_buffers(frame_length: int) -> _Buffers:
    """This thread's pooled batch buffers for this frame length, or new ones.

    Taken out of the pool while in use, so a nested stream in the same thread (a sink
    that encrypts, say) gets buffers of its own.
    """
    pooled: _Buffers | None = getattr(_POOL, "buffers", None)
    _POOL.buffers = None
    if pooled is not None and pooled.sizes == (frame_length, IO_BATCH_BYTES):
        return pooled
    return _Buffers(frame_length)


class _Buffers:
    """A batch of whole frames' plaintext, and room for the same frames sealed."""

    __slots__ = ("plain", "sealed", "sizes", "zeros")

    def __init__(self, frame_length: int) -> None:
        per_batch = max(2, IO_BATCH_BYTES // frame_length)
        self.sizes = (frame_length, IO_BATCH_BYTES)
        self.plain = memoryview(bytearray(per_batch * frame_length))
        self.sealed = memoryview(
            bytearray(per_batch * (frame_length + FRAME_OVERHEAD) + FINAL_EXTRA)
        )
        # Never written: its pages stay the kernel's shared zero page, so wiping with it
        # reads one cached page instead of a megabyte of memory.
        self.zeros = memoryview(bytes(len(self.plain)))

    def give_back(self, plaintext_bytes: int) -> None:
        """Wipe the plaintext this stream left (all of it after an error) and pool them."""
        used = min(plaintext_bytes or len(self.plain), len(self.plain))
        self.plain[:used] = self.zeros[:used]
        _POOL.buffers = self


def release_buffers() -> None:
    """Drop this thread's pooled batch buffers (before a Lambda snapshot, for one)."""
    _POOL.buffers = None


def _check_frame_count(seq: int) -> None:
    if seq > MAX_FRAME_COUNT:
        raise InvalidRequest("the recording is too long for this frame length")


def _fill(source: BinaryIO, buf: memoryview) -> int:
    """Fill buf from source as far as it goes; fewer bytes only at the end of the stream."""
    got = 0
    readinto = getattr(source, "readinto", None)
    while got < len(buf):
        if readinto is not None:
            n = readinto(buf[got:])
        else:
            chunk = source.read(len(buf) - got)
            n = len(chunk)
            buf[got : got + n] = chunk
        if not n:
            break
        got += n
    return got


# ---------------------------------------------------------------- decrypt


def decrypt_stream(
    source: BinaryIO, sink: IO[bytes], *, org: str, data_keys: DataKeySource
) -> RecordingInfo:
    """Decrypt a recording of ``org``; every frame is authenticated before it is written.

    Refuses, before asking for any key: another org's context, too many data keys, a
    signing or unknown suite. Then: a bad commitment or header tag, a bad, reordered,
    truncated or missing frame, and bytes after the final frame.
    """
    header = read_header(source)
    recording_id = check_org(header, org)
    kek_id, _ = kek_data_key(header)
    keys = verify_header(header, data_keys(org, header.raw))
    if header.content_type == CONTENT_NON_FRAMED:
        total = _decrypt_non_framed(source, sink, keys, header)
    else:
        total = _decrypt_frames(source, sink, keys, header)
    if source.read(1):
        raise IntegrityError("the recording has bytes after its final frame")
    return RecordingInfo(
        org,
        recording_id,
        kek_id,
        header.message_id_hex,
        header.encryption_context,
        total,
        header.frame_length,
    )


def _decrypt_frames(
    source: BinaryIO, sink: IO[bytes], keys: MessageKeys, header: MessageHeader
) -> int:
    """Read whole batches of frames, open each in place, write each batch's plaintext at once."""
    cipher = FrameCipher(keys, header.message_id)
    frame_length = header.frame_length
    if frame_length != FRAME_LENGTH:
        # Another writer's frame length: buffers sized by the bytes actually there.
        per_batch = max(2, IO_BATCH_BYTES // frame_length)
        sealed, plain, have = _first_batch(
            source,
            per_batch * (frame_length + FRAME_OVERHEAD) + FINAL_EXTRA,
            per_batch * frame_length,
        )
        return _decrypt_batches(source, sink, cipher, frame_length, sealed, plain, have)
    # Ours: the pooled buffers, of a size fixed here, not announced by the recording.
    buffers, total = _take_buffers(frame_length), 0
    try:
        have = _fill(source, buffers.sealed)
        total = _decrypt_batches(
            source, sink, cipher, frame_length, buffers.sealed, buffers.plain, have
        )
        return total
    finally:
        buffers.give_back(total)


def _decrypt_batches(
    source: BinaryIO,
    sink: IO[bytes],
    cipher: FrameCipher,
    frame_length: int,
    sealed: memoryview,
    plain: memoryview,
    have: int,
) -> int:
    seq, total = 1, 0
    while True:
        used, written, seq, done = _open_frames(cipher, seq, sealed[:have], plain, frame_length)
        sink.write(plain[:written])
        total += written
        if done:
            if used != have:
                raise IntegrityError("the recording has bytes after its final frame")
            return total
        rest = have - used
        sealed[:rest] = sealed[used:have]
        got = _fill(source, sealed[rest:])
        if not got:
            raise IntegrityError("the recording is truncated")
        have = rest + got


def _first_batch(
    source: BinaryIO, batch_bytes: int, plain_bytes: int
) -> tuple[memoryview, memoryview, int]:
    """The sealed and plaintext batch buffers, holding the first batch read, and its size.

    Read in growing steps, so a short recording costs buffers of its own size, not of a
    batch of frames its header announces (the bytes actually there bound the memory).
    """
    first, step = bytearray(), 64 * 1024
    while len(first) < batch_bytes:
        chunk = source.read(min(step, batch_bytes - len(first)))
        if not chunk:  # the whole recording is in ``first``: no room for more is needed
            return memoryview(first), memoryview(bytearray(len(first))), len(first)
        first += chunk
        step *= 2
    return memoryview(first), memoryview(bytearray(plain_bytes)), len(first)


def _open_frames(
    cipher: FrameCipher, seq: int, sealed: memoryview, plain: memoryview, frame_length: int
) -> tuple[int, int, int, bool]:
    """Open the complete frames at the start of ``sealed``.

    Returns the bytes consumed, plaintext bytes written, the next sequence number, and
    whether the final frame was among them.
    """
    pos, written, regular = 0, 0, frame_length + FRAME_OVERHEAD
    while len(sealed) - pos >= 4:
        if sealed[pos : pos + 4] == _FINAL_MARKER:
            if len(sealed) - pos < FINAL_FRAME_OVERHEAD:
                break
            n = final_frame_content_length(sealed[pos : pos + FINAL_FRAME_OVERHEAD])
            if n > frame_length:
                raise IntegrityError("the recording's final frame is longer than its frame length")
            end = pos + FINAL_FRAME_OVERHEAD + n
            if end > len(sealed):
                break
            written += cipher.open_final_into(seq, sealed[pos:end], plain[written:])
            return end, written, seq, True
        if len(sealed) - pos < regular:
            break
        cipher.open_into(seq, sealed[pos : pos + regular], plain[written : written + frame_length])
        pos, written, seq = pos + regular, written + frame_length, seq + 1
        if seq > MAX_FRAME_COUNT:
            raise IntegrityError("the recording has too many frames")
    return pos, written, seq, False


def _decrypt_non_framed(
    source: BinaryIO, sink: IO[bytes], keys: MessageKeys, header: MessageHeader
) -> int:
    iv = read_exactly(source.read, IV_BYTES)
    n = int.from_bytes(read_exactly(source.read, 8), "big")
    if n > MAX_NON_FRAMED_BYTES:
        raise IntegrityError(
            f"non-framed messages over {MAX_NON_FRAMED_BYTES} bytes are refused; "
            "kmsbridge writes framed recordings"
        )
    sealed = read_exactly(source.read, n + TAG_BYTES)
    try:
        plain = keys.aead.decrypt(iv, sealed, body_aad(header.message_id, AAD_SINGLE_BLOCK, 1, n))
    except InvalidTag:
        raise IntegrityError("the recording's body failed authentication") from None
    sink.write(plain)
    return n


# ---------------------------------------------------------------- paths


def encrypt_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    public_key: KekPublicKey,
    org: str,
    recording_id: str,
    metadata: Mapping[str, str] | None = None,
    frame_length: int = FRAME_LENGTH,
) -> RecordingInfo:
    """``encrypt_stream`` from a file to a file that appears only once complete."""
    with open(source, "rb") as src, atomic_output(target) as out:
        return encrypt_stream(
            src,
            out,
            public_key=public_key,
            org=org,
            recording_id=recording_id,
            metadata=metadata,
            frame_length=frame_length,
        )


def decrypt_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    org: str,
    data_keys: DataKeySource,
) -> RecordingInfo:
    """``decrypt_stream`` to a file that appears only if the whole recording authenticated."""
    with open(source, "rb") as src, atomic_output(target) as out:
        return decrypt_stream(src, out, org=org, data_keys=data_keys)

"""Range decryption: plaintext bytes [start, end) of a recording, for seeking in playback.

Only the frames that cover the range are read and authenticated, from a seekable file
or from S3 with ranged GETs, so a seek costs what the range costs, not what its offset
costs. The frames' positions follow from the header (its length and frame length) and
the object's size: regular frames are ``frame length + 28`` bytes each and the final
frame ``content length + 40`` bytes, so the final frame's content length and the number
of regular frames are fixed by the size (spec "Message body"). A range that reaches into
the final frame reads it there and authenticates that it is the final frame, with the
sequence number and content length that position implies.

What a range proves, precisely: every returned byte comes from frames that authenticated
under this recording's data key (after its key commitment and header tag checked out),
each with the message id and the sequence number of its position, so the bytes are this
recording's plaintext at exactly [start, end). A range does NOT prove that the file is
complete or unaltered elsewhere: frames outside the range are not read, so a truncated,
extended or damaged file can still serve ranges from its intact frames. Only a whole
decryption (``recordings.decrypt_stream``) proves the whole recording.

No byte is returned unless every frame of the range authenticated: the range is decrypted
into memory, which is why a range is at most ``MAX_RANGE_BYTES`` (64 MiB). A range past
the end (unless clamped to it), start > end, or a frame that fails authentication is an
error and returns nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

from kmsbridge.crypto.message import (
    CONTENT_FRAMED,
    FINAL_FRAME_OVERHEAD,
    FRAME_OVERHEAD,
    FrameCipher,
    MessageHeader,
    parse_header,
    verify_header,
)
from kmsbridge.errors import IntegrityError, InvalidRequest, NotFound
from kmsbridge.formats import MAX_FRAME_COUNT, MAX_HEADER_BYTES, MAX_RANGE_BYTES, TAG_BYTES
from kmsbridge.recordings.codec import DataKeySource, check_org, kek_data_key

# The first read of an S3 object: a header with one RSA-3072 data key and a usual context
# is under 1 KiB; a larger one (up to MAX_HEADER_BYTES) costs one more GET.
HEADER_PROBE_BYTES = 4096


@dataclass(frozen=True)
class DecryptedRange:
    """Plaintext bytes [start, end) of a recording, every frame of them authenticated."""

    org: str
    recording_id: str
    kek_id: str
    message_id: str
    start: int
    end: int
    plaintext_bytes: int  # the whole recording's, as its size implies (see module doc)
    data: bytes = field(repr=False)


@runtime_checkable
class RemoteRecording(Protocol):
    """A recording elsewhere (an S3 object: ``integrations.s3.S3Object``) opened for reading."""

    def open_blob(self) -> Blob: ...


Source = str | os.PathLike[str] | BinaryIO | RemoteRecording


def decrypt_range(
    source: Source,
    start: int,
    end: int | None,
    *,
    org: str,
    data_keys: DataKeySource,
    clamp: bool = False,
) -> DecryptedRange:
    """Decrypt plaintext bytes [start, end) of a recording of ``org`` (end exclusive).

    ``end=None`` reads to the end. With ``clamp``, an end past the end of the recording
    stops at its end, as HTTP ranges do; a start past the end is refused either way.
    """
    _check_bounds(start, end, length=not clamp)
    with _blob(source) as blob:
        header = _read_header(blob)
        recording_id = check_org(header, org)
        kek_id, _ = kek_data_key(header)
        layout = Layout.of(header, blob.size)
        size = layout.plaintext_bytes
        if end is None or (clamp and end > size):
            end = size
        if start > size or end > size:
            raise InvalidRequest(
                f"range {start}-{end} is past the end of the recording ({size} bytes)"
            )
        _check_length(start, end)
        keys = verify_header(header, data_keys(org, header.raw))
        cipher = FrameCipher(keys, header.message_id)
        data = _decrypt_frames(blob, layout, cipher, start, end) if end > start else b""
    return DecryptedRange(org, recording_id, kek_id, header.message_id_hex, start, end, size, data)


def _check_bounds(start: int, end: int | None, *, length: bool = True) -> None:
    if not isinstance(start, int) or start < 0 or not isinstance(end, int | None):
        raise InvalidRequest("a range is two byte offsets, START and END, both 0 or more")
    if end is None:
        return
    if end < 0:
        raise InvalidRequest("a range is two byte offsets, START and END, both 0 or more")
    if start > end:
        raise InvalidRequest(f"range start {start} is after its end {end}")
    if length:  # cheapest first: before any read (a clamped end is checked once known)
        _check_length(start, end)


def _check_length(start: int, end: int) -> None:
    if end - start > MAX_RANGE_BYTES:
        raise InvalidRequest(f"a range is at most {MAX_RANGE_BYTES} bytes; ask for several")


@dataclass(frozen=True)
class Layout:
    """Where a framed recording's frames are, from its header and its size in bytes."""

    header_bytes: int
    frame_length: int
    regular_frames: int
    final_length: int

    @classmethod
    def of(cls, header: MessageHeader, size: int) -> Layout:
        if header.content_type != CONTENT_FRAMED:
            raise InvalidRequest(
                "range decryption needs a framed recording (kmsbridge writes them)"
            )
        header_bytes, frame_length = len(header.raw), header.frame_length
        body = size - header_bytes - FINAL_FRAME_OVERHEAD
        if body < 0:
            raise IntegrityError("the recording is truncated")
        regular_frames, final_length = divmod(body, frame_length + FRAME_OVERHEAD)
        if final_length > frame_length or regular_frames >= MAX_FRAME_COUNT:
            raise IntegrityError("the recording's size does not fit its frame length")
        return cls(header_bytes, frame_length, regular_frames, final_length)

    @property
    def plaintext_bytes(self) -> int:
        return self.regular_frames * self.frame_length + self.final_length

    def offset(self, index: int) -> int:
        """Byte offset of frame ``index`` (0-based; ``regular_frames`` is the final one)."""
        return self.header_bytes + index * (self.frame_length + FRAME_OVERHEAD)

    def content_end(self, index: int) -> int:
        """Plaintext offset just past frame ``index``."""
        if index < self.regular_frames:
            return (index + 1) * self.frame_length
        return self.plaintext_bytes

    def size_of(self, index: int) -> int:
        if index < self.regular_frames:
            return self.frame_length + FRAME_OVERHEAD
        return self.final_length + FINAL_FRAME_OVERHEAD


def _decrypt_frames(blob: Blob, layout: Layout, cipher: FrameCipher, start: int, end: int) -> bytes:
    """Read frames first..last in one request and open each; only then release the range."""
    first, last = start // layout.frame_length, (end - 1) // layout.frame_length
    offset = layout.offset(first)
    sealed = memoryview(blob.read_at(offset, layout.offset(last) + layout.size_of(last) - offset))
    # Sized by the frames' contents (the final one's may be short), never by the header's
    # frame length alone: a short file announcing large frames costs what it holds.
    plain = memoryview(bytearray(layout.content_end(last) - first * layout.frame_length))
    position, written = 0, 0
    for index in range(first, last + 1):
        size = layout.size_of(index)
        frame, out = sealed[position : position + size], plain[written:]
        if index < layout.regular_frames:
            cipher.open_into(index + 1, frame, out[: layout.frame_length])
            written += layout.frame_length
        else:
            written += cipher.open_final_into(index + 1, frame, out)
        position += size
    skip = first * layout.frame_length
    return bytes(plain[start - skip : end - skip])


# ---------------------------------------------------------------- sources


class Blob(Protocol):
    """Random access to a recording's bytes."""

    size: int

    def read_at(self, offset: int, length: int) -> bytes | bytearray: ...


def _read_header(blob: Blob) -> MessageHeader:
    """Parse the header from a first probe of the object; a long header costs one more read."""
    probes = (HEADER_PROBE_BYTES, MAX_HEADER_BYTES + TAG_BYTES)
    for probe in probes:
        head = blob.read_at(0, min(probe, blob.size))
        try:
            return parse_header(io.BytesIO(head).read)
        except IntegrityError:
            if len(head) == blob.size or probe == probes[-1]:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _blob(source: Source) -> Iterator[Blob]:
    if isinstance(source, RemoteRecording):
        yield source.open_blob()
    elif isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as f:
                yield _FileBlob(f)
        except FileNotFoundError:
            raise NotFound(f"no recording at {os.fspath(source)}") from None
    else:
        yield _FileBlob(source)


class _FileBlob:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.size = f.seek(0, os.SEEK_END)

    def read_at(self, offset: int, length: int) -> bytearray:
        self._f.seek(offset)
        buf = bytearray(length)
        view, got = memoryview(buf), 0
        while got < length:
            n = self._f.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise IntegrityError("the recording is truncated (did it change while read?)")
            got += n
        return buf


__all__ = ["HEADER_PROBE_BYTES", "DecryptedRange", "Layout", "RemoteRecording", "decrypt_range"]

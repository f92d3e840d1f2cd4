"""The codec's pooled batch buffers: reused from stream to stream, never holding plaintext
once a stream is over, whether it succeeded or failed."""

from __future__ import annotations

import io
import os

import pytest

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.errors import IntegrityError
from kmsbridge.recordings import codec

ORG = "acme"


def encrypt(public: KekPublicKey, data: bytes) -> bytes:
    out = io.BytesIO()
    codec.encrypt_stream(io.BytesIO(data), out, public_key=public, org=ORG, recording_id="r")
    return out.getvalue()


def pooled_plaintext() -> bytes:
    buffers = codec._POOL.buffers
    assert buffers is not None
    return bytes(buffers.plain)


def test_buffers_are_reused_and_wiped_after_encrypt_and_decrypt(kek_pair: tuple) -> None:
    private, public = kek_pair
    data = os.urandom(3 * 1024 * 1024 + 12345)
    blob = encrypt(public, data)
    first = codec._POOL.buffers
    assert pooled_plaintext() == bytes(len(pooled_plaintext()))
    out = io.BytesIO()
    codec.decrypt_stream(
        io.BytesIO(blob), out, org=ORG, data_keys=codec.private_key_data_keys(private)
    )
    assert out.getvalue() == data
    assert codec._POOL.buffers is first  # the same buffers, no fresh pages
    assert pooled_plaintext() == bytes(len(pooled_plaintext()))


def test_a_failed_decrypt_leaves_no_plaintext_in_the_pool(kek_pair: tuple) -> None:
    private, public = kek_pair
    blob = bytearray(encrypt(public, os.urandom(2 * 1024 * 1024)))
    blob[-100] ^= 1  # the final frame fails after earlier batches were decrypted
    with pytest.raises(IntegrityError):
        codec.decrypt_stream(
            io.BytesIO(bytes(blob)),
            io.BytesIO(),
            org=ORG,
            data_keys=codec.private_key_data_keys(private),
        )
    assert pooled_plaintext() == bytes(len(pooled_plaintext()))


def test_a_nested_stream_gets_buffers_of_its_own(kek_pair: tuple) -> None:
    """A sink that encrypts again in the same thread must not share the outer buffers."""
    private, public = kek_pair
    inner, outer = io.BytesIO(), io.BytesIO()

    class EncryptingSink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            data = bytes(b)  # type: ignore[call-overload]
            outer.write(data)
            codec.encrypt_stream(
                io.BytesIO(data), inner, public_key=public, org=ORG, recording_id="i"
            )
            return len(data)

    data = os.urandom(3 * 1024 * 1024 + 7)
    codec.encrypt_stream(
        io.BytesIO(data), EncryptingSink(), public_key=public, org=ORG, recording_id="o"
    )
    assert inner.getvalue()  # the inner streams ran
    plain = io.BytesIO()
    keys = codec.private_key_data_keys(private)
    codec.decrypt_stream(io.BytesIO(outer.getvalue()), plain, org=ORG, data_keys=keys)
    assert plain.getvalue() == data  # and the outer one was not disturbed by them


def test_pool_follows_the_batch_size(kek_pair: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    _, public = kek_pair
    encrypt(public, b"x")
    monkeypatch.setattr(codec, "IO_BATCH_BYTES", 4 * codec.FRAME_LENGTH)
    encrypt(public, b"x")
    assert len(codec._POOL.buffers.plain) == 4 * codec.FRAME_LENGTH

"""Our codec and the official aws-encryption-sdk read each other's recordings, byte for byte.

The ESDK side is a raw RSA master key provider (provider id ``kmsbridge``, key id = the
KEK id, RSA-OAEP-SHA256-MGF1): exactly how a recording's data key is wrapped. Our side
is ``encrypt_stream`` / ``decrypt_stream`` with a data-key source from the private key.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
)
from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import CONTENT_NON_FRAMED, derive_message_keys
from kmsbridge.errors import IntegrityError
from kmsbridge.formats import (
    CONTEXT_ORG,
    CONTEXT_RECORDING,
    FRAME_LENGTH,
    RECORDING_SUITE_ID,
)
from kmsbridge.integrations.esdk import esdk_kek_provider
from kmsbridge.recordings import codec as recordings
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream, private_key_data_keys

ORG = "acme"
MIB = 1024 * 1024
# Every frame length we may write: the ESDK's default, ours, tiny and large ones.
FRAME_LENGTHS = sorted({128, 4096, FRAME_LENGTH, MIB})


@pytest.fixture(scope="module")
def esdk(kek_pair: tuple[rsa.RSAPrivateKey, KekPublicKey]) -> Esdk:
    private, public = kek_pair
    return Esdk(esdk_kek_provider(public, private), private, public)


class Esdk:
    """The official SDK with the KEK as its master key, and our side of the same key."""

    def __init__(
        self, provider: RawMasterKeyProvider, private: rsa.RSAPrivateKey, public: KekPublicKey
    ) -> None:
        self.provider = provider
        self.public = public
        self.data_keys = private_key_data_keys(private)
        self.client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )

    def encrypt(self, data: bytes, frame_length: int) -> bytes:
        blob, _ = self.client.encrypt(
            source=data,
            key_provider=self.provider,
            encryption_context={CONTEXT_ORG: ORG, CONTEXT_RECORDING: "call-esdk"},
            algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
            frame_length=frame_length,
        )
        return bytes(blob)

    def decrypt(self, blob: bytes) -> tuple[bytes, dict[str, str]]:
        plain, header = self.client.decrypt(source=blob, key_provider=self.provider)
        return bytes(plain), dict(header.encryption_context)

    def ours_encrypt(self, data: bytes, frame_length: int, source: Any = None) -> bytes:
        out = io.BytesIO()
        encrypt_stream(
            source or io.BytesIO(data),
            out,
            public_key=self.public,
            org=ORG,
            recording_id="call-ours",
            metadata={"kmsbridge:media": "audio/wav"},
            frame_length=frame_length,
        )
        return out.getvalue()

    def ours_decrypt(self, blob: bytes, source: Any = None) -> bytes:
        out = io.BytesIO()
        info = decrypt_stream(source or io.BytesIO(blob), out, org=ORG, data_keys=self.data_keys)
        assert info.plaintext_bytes == len(out.getvalue())
        return out.getvalue()


def sizes_around(frame_length: int) -> list[int]:
    f = frame_length
    return [0, 1, f - 1, f, f + 1, 3 * f, 3 * f + 5]


CASES = [(f, n) for f in FRAME_LENGTHS for n in sizes_around(f)]


@pytest.mark.parametrize(("frame_length", "size"), CASES)
def test_esdk_decrypts_what_we_write(esdk: Esdk, frame_length: int, size: int) -> None:
    data = os.urandom(size)
    plain, context = esdk.decrypt(esdk.ours_encrypt(data, frame_length))
    assert plain == data
    assert context[CONTEXT_ORG] == ORG
    assert context["kmsbridge:media"] == "audio/wav"


@pytest.mark.parametrize(("frame_length", "size"), CASES)
def test_we_decrypt_what_the_esdk_writes(esdk: Esdk, frame_length: int, size: int) -> None:
    data = os.urandom(size)
    assert esdk.ours_decrypt(esdk.encrypt(data, frame_length)) == data


@pytest.mark.parametrize("size", [0, 1, 4095, 100_000])
def test_we_decrypt_the_esdks_non_framed_body(esdk: Esdk, size: int) -> None:
    data = os.urandom(size)
    blob = esdk.encrypt(data, frame_length=0)
    assert recordings.read_header(io.BytesIO(blob)).content_type == CONTENT_NON_FRAMED
    assert esdk.ours_decrypt(blob) == data


def test_exact_frames_end_in_a_full_final_frame_and_we_read_an_empty_one_too(esdk: Esdk) -> None:
    """Spec (message-body "Final Frame"): for a multiple of the frame length the final frame
    SHOULD hold a full frame (what we write) but MAY be empty (what the Python ESDK writes)."""
    data = os.urandom(2 * 128)
    ours, theirs = esdk.ours_encrypt(data, 128), esdk.encrypt(data, 128)
    body_ours = len(ours) - len(recordings.read_header(io.BytesIO(ours)).raw)
    body_theirs = len(theirs) - len(recordings.read_header(io.BytesIO(theirs)).raw)
    assert body_ours == (4 + 12 + 128 + 16) + (4 + 4 + 12 + 4 + 128 + 16)
    assert body_theirs == 2 * (4 + 12 + 128 + 16) + (4 + 4 + 12 + 4 + 0 + 16)
    assert esdk.ours_decrypt(theirs) == esdk.decrypt(ours)[0] == data


class Trickle(io.RawIOBase):
    """A source that returns at most ``step`` bytes per call, like a pipe or a socket."""

    def __init__(self, data: bytes, step: int, readinto: bool = True) -> None:
        self._data = io.BytesIO(data)
        self._step = step
        if not readinto:
            self.readinto = None  # type: ignore[assignment]

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._data.read(self._step if n < 0 else min(n, self._step))

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("readinto", [True, False])
def test_short_reads_from_the_source_change_nothing(esdk: Esdk, readinto: bool) -> None:
    data = os.urandom(10 * 128 + 7)
    blob = esdk.ours_encrypt(b"", 128, source=Trickle(data, 37, readinto))
    assert esdk.decrypt(blob)[0] == data
    assert esdk.ours_decrypt(b"", source=Trickle(blob, 53, readinto)) == data


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frames=st.integers(min_value=1, max_value=8),
    frame_units=st.integers(min_value=1, max_value=8),
    size=st.integers(min_value=0, max_value=3000),
)
def test_batches_of_any_size_keep_the_format(
    esdk: Esdk, monkeypatch: pytest.MonkeyPatch, frames: int, frame_units: int, size: int
) -> None:
    """Small I/O batches put every batch boundary in play; the bytes must stay the ESDK's.

    We write any multiple of 16; the Python ESDK writes multiples of 128 only."""
    monkeypatch.setattr(recordings, "IO_BATCH_BYTES", frames * 16 * frame_units)
    data = os.urandom(size)
    assert esdk.decrypt(esdk.ours_encrypt(data, 16 * frame_units))[0] == data
    monkeypatch.setattr(recordings, "IO_BATCH_BYTES", frames * 128 * frame_units)
    assert esdk.ours_decrypt(esdk.encrypt(data, 128 * frame_units)) == data


@pytest.mark.parametrize("where", ["first", "last", "final"])
def test_a_tampered_frame_fails_on_both_sides(esdk: Esdk, where: str) -> None:
    data = os.urandom(5 * 128 + 3)
    blob = bytearray(esdk.ours_encrypt(data, 128))
    header = len(recordings.read_header(io.BytesIO(bytes(blob))).raw)
    offset = {"first": header + 20, "last": header + 4 * 160 + 20, "final": len(blob) - 20}
    blob[offset[where]] ^= 1
    with pytest.raises(IntegrityError):
        esdk.ours_decrypt(bytes(blob))
    with pytest.raises(InvalidTag):
        esdk.decrypt(bytes(blob))


@pytest.mark.parametrize("cut", [1, 16, 40, 200])
def test_a_truncated_recording_is_refused(esdk: Esdk, cut: int) -> None:
    blob = esdk.ours_encrypt(os.urandom(5 * 128 + 3), 128)
    with pytest.raises(IntegrityError):
        esdk.ours_decrypt(blob[:-cut])


def test_bytes_after_the_final_frame_are_refused(esdk: Esdk) -> None:
    blob = esdk.ours_encrypt(os.urandom(300), 128)
    with pytest.raises(IntegrityError, match="after its final frame"):
        esdk.ours_decrypt(blob + b"\0")


def test_key_derivation_is_hkdf_sha512_as_the_library_computes_it() -> None:
    """derive_message_keys computes HKDF with stdlib HMAC; it must equal cryptography's HKDF."""
    for _ in range(20):
        dek, message_id = os.urandom(32), os.urandom(32)
        keys, commitment = derive_message_keys(dek, message_id)

        def hkdf(info: bytes, dek: bytes = dek, salt: bytes = message_id) -> bytes:
            return HKDF(algorithm=hashes.SHA512(), length=32, salt=salt, info=info).derive(dek)

        key = hkdf(struct.pack(">H", RECORDING_SUITE_ID) + b"DERIVEKEY")
        assert commitment == hkdf(b"COMMITKEY")
        iv, aad = os.urandom(12), os.urandom(9)
        assert keys.aead.encrypt(iv, b"probe", aad) == AESGCM(key).encrypt(iv, b"probe", aad)

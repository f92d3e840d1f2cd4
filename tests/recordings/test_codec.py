"""Recordings: the ESDK v2 message our codec writes and reads, its refusals, the path API."""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
)
from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.errors import IntegrityError, InvalidRequest, WrongOrg
from kmsbridge.integrations.esdk import esdk_kek_provider
from kmsbridge.recordings.codec import (
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    kek_data_key,
    private_key_data_keys,
    read_header,
)

ORG = "acme"
CONTEXT = {"kmsbridge:org": ORG, "kmsbridge:recording": "call-9"}


ESDK = aws_encryption_sdk.EncryptionSDKClient(
    commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
)


def encrypt(public: KekPublicKey, data: bytes, frame_length: int = 4096, **kw: Any) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data),
        out,
        public_key=public,
        org=ORG,
        recording_id="call-9",
        frame_length=frame_length,
        **kw,
    )
    return out.getvalue()


def decrypt(private: rsa.RSAPrivateKey, blob: bytes, org: str = ORG) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, org=org, data_keys=private_key_data_keys(private))
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 50_000])
def test_round_trip_and_the_official_esdk_reads_it(kek_pair: Any, size: int) -> None:
    private, public = kek_pair
    data = os.urandom(size)
    blob = encrypt(public, data)
    assert decrypt(private, blob) == data
    plaintext, header = ESDK.decrypt(source=blob, key_provider=esdk_kek_provider(public, private))
    assert plaintext == data
    assert header.encryption_context == CONTEXT
    assert header.algorithm == Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY


@pytest.mark.parametrize("frame_length", [0, 128, 4096])
def test_we_read_what_the_official_esdk_writes(kek_pair: Any, frame_length: int) -> None:
    private, public = kek_pair
    data = os.urandom(10_000)
    blob, _ = ESDK.encrypt(
        source=data,
        key_provider=esdk_kek_provider(public, private),
        encryption_context=CONTEXT,
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        frame_length=frame_length,
    )
    assert decrypt(private, blob) == data


def test_header_carries_one_rsa_edk_named_by_the_kek_id(kek_pair: Any) -> None:
    _, public = kek_pair
    header = read_header(
        io.BytesIO(encrypt(public, b"x", metadata={"kmsbridge:media": "audio/wav"}))
    )
    kek_id, edk = kek_data_key(header)
    assert kek_id == public.kek_id
    assert len(edk) == 384  # RSA-3072
    assert header.encryption_context == {**CONTEXT, "kmsbridge:media": "audio/wav"}


def test_another_org_is_refused_before_any_key_is_asked(kek_pair: Any) -> None:
    _, public = kek_pair
    asked = []
    with pytest.raises(WrongOrg):
        decrypt_stream(
            io.BytesIO(encrypt(public, b"x")),
            io.BytesIO(),
            org="other",
            data_keys=lambda org, header: asked.append(org) or b"",
        )
    assert asked == []


def test_a_signing_suite_is_refused(kek_pair: Any) -> None:
    private, public = kek_pair
    blob, _ = ESDK.encrypt(
        source=b"data",
        key_provider=esdk_kek_provider(public, private),
        encryption_context=CONTEXT,
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    )
    with pytest.raises(IntegrityError, match="suite"):
        decrypt(private, blob)


def test_too_many_data_keys_are_refused(kek_pair: Any) -> None:
    private, public = kek_pair
    blob = bytearray(encrypt(public, b"x"))
    header = read_header(io.BytesIO(bytes(blob)))
    count_at = (
        1 + 2 + 32 + 2 + len(header.body[37 : 37 + struct.unpack(">H", header.body[35:37])[0]])
    )
    blob[count_at : count_at + 2] = struct.pack(">H", 4)
    with pytest.raises(IntegrityError, match="at most 3"):
        decrypt(private, bytes(blob))


def test_trailing_bytes_are_refused(kek_pair: Any) -> None:
    private, public = kek_pair
    with pytest.raises(IntegrityError, match="after its final frame"):
        decrypt(private, encrypt(public, b"x" * 5000) + b"\0")


@pytest.mark.parametrize("cut", [1, 16, 100, 4096 + 300, -1, -17])
def test_truncation_is_refused(kek_pair: Any, cut: int) -> None:
    private, public = kek_pair
    blob = encrypt(public, os.urandom(10_000))
    with pytest.raises(IntegrityError):
        decrypt(private, blob[:cut])


def test_tampered_header_and_body_are_refused(kek_pair: Any) -> None:
    private, public = kek_pair
    blob = encrypt(public, os.urandom(10_000))
    header_len = len(read_header(io.BytesIO(blob)).raw)
    for position in (header_len - 20, header_len - 3, header_len + 40, len(blob) - 5):
        bad = bytearray(blob)
        bad[position] ^= 0x40
        with pytest.raises(IntegrityError):
            decrypt(private, bytes(bad))


def test_reserved_metadata_and_bad_frame_lengths_are_refused(kek_pair: Any) -> None:
    _, public = kek_pair
    with pytest.raises(InvalidRequest):
        encrypt(public, b"x", metadata={"kmsbridge:org": "other"})
    with pytest.raises(InvalidRequest):
        encrypt(public, b"x", metadata={"aws-crypto-public-key": "x"})
    with pytest.raises(InvalidRequest):
        encrypt(public, b"x", frame_length=100)


def test_path_api_publishes_only_a_whole_authenticated_recording(
    kek_pair: Any, tmp_path: Path
) -> None:
    private, public = kek_pair
    data = os.urandom(20_000)
    encrypt_file_path = tmp_path / "rec.enc"
    (tmp_path / "rec.wav").write_bytes(data)
    encrypt_file(
        tmp_path / "rec.wav", encrypt_file_path, public_key=public, org=ORG, recording_id="call-9"
    )
    out = tmp_path / "out.wav"
    info = decrypt_file(encrypt_file_path, out, org=ORG, data_keys=private_key_data_keys(private))
    assert out.read_bytes() == data and info.plaintext_bytes == len(data)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    bad = bytearray(encrypt_file_path.read_bytes())
    bad[-5] ^= 1  # the final frame's tag: every earlier frame authenticates
    encrypt_file_path.write_bytes(bytes(bad))
    target = tmp_path / "never.wav"
    with pytest.raises(IntegrityError):
        decrypt_file(encrypt_file_path, target, org=ORG, data_keys=private_key_data_keys(private))
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav", "rec.enc", "rec.wav"]


def test_a_missing_output_directory_is_an_invalid_request(kek_pair: Any, tmp_path: Path) -> None:
    _, public = kek_pair
    (tmp_path / "in").write_bytes(b"x")
    with pytest.raises(InvalidRequest):
        encrypt_file(
            tmp_path / "in", tmp_path / "nope" / "out", public_key=public, org=ORG, recording_id="r"
        )

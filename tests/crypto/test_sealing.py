"""HPKE sealing of data keys: both KEMs, the info binding, the raw public-key encodings."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from kmsbridge.crypto.sealing import (
    KEMS,
    MLKEM768_X25519,
    PUBLIC_KEY_BYTES,
    X25519,
    EphemeralKey,
    load_public_key,
    seal,
    seal_info,
    sealed_length,
)
from kmsbridge.errors import IntegrityError, InvalidRequest

BINDING = {"org": "acme", "kek_id": "ab" * 32, "message_id": "cd" * 32}


@pytest.mark.parametrize("kem", KEMS)
def test_sealed_key_opens_only_with_its_private_key(kem: str) -> None:
    dek = os.urandom(32)
    key = EphemeralKey.generate(kem)
    sealed = seal(dek, kem, key.public_bytes, **BINDING)
    assert len(sealed) == sealed_length(kem, 32)
    assert dek not in sealed
    assert key.open(sealed, **BINDING) == dek
    with pytest.raises(IntegrityError):
        EphemeralKey.generate(kem).open(sealed, **BINDING)


@pytest.mark.parametrize("kem", KEMS)
@pytest.mark.parametrize(
    "changed", [{"org": "other"}, {"kek_id": "ef" * 32}, {"message_id": "00" * 32}]
)
def test_sealed_key_is_bound_to_org_kek_and_message(kem: str, changed: dict[str, str]) -> None:
    key = EphemeralKey.generate(kem)
    sealed = seal(os.urandom(32), kem, key.public_bytes, **BINDING)
    with pytest.raises(IntegrityError):
        key.open(sealed, **(BINDING | changed))


def test_info_is_the_designs_string() -> None:
    assert seal_info("acme", "k" * 3, "0a1b") == b"kmsbridge unwrap v1|acme|kkk|0a1b"


def test_raw_public_keys_have_the_documented_sizes() -> None:
    assert PUBLIC_KEY_BYTES == {X25519: 32, MLKEM768_X25519: 1216}
    assert len(EphemeralKey.generate(X25519).public_bytes) == 32
    assert len(EphemeralKey.generate(MLKEM768_X25519).public_bytes) == 1216


def test_hybrid_raw_key_is_mlkem_encapsulation_key_then_x25519() -> None:
    """The mapping to cryptography's MLKEM768X25519PublicKey, from independent parts."""
    m, x = mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    raw = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
    sealed = seal(b"k" * 32, MLKEM768_X25519, raw, **BINDING)
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = seal_info(BINDING["org"], BINDING["kek_id"], BINDING["message_id"])
    assert suite.decrypt(sealed, hpke.MLKEM768X25519PrivateKey(m, x), info=info) == b"k" * 32
    swapped = x.public_key().public_bytes_raw() + m.public_key().public_bytes_raw()
    with pytest.raises(InvalidRequest):
        load_public_key(MLKEM768_X25519, swapped)


def test_x25519_output_is_rfc9180_base_mode_with_aes_256_gcm() -> None:
    x = x25519.X25519PrivateKey.generate()
    sealed = seal(b"k" * 32, X25519, x.public_key().public_bytes_raw(), **BINDING)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = seal_info(BINDING["org"], BINDING["kek_id"], BINDING["message_id"])
    assert suite.decrypt(sealed, x, info=info) == b"k" * 32


@pytest.mark.parametrize(
    ("kem", "raw", "words"),
    [
        ("RSA", bytes(32), "kem must be one of"),
        (X25519, bytes(31), "must be 32 bytes"),
        (MLKEM768_X25519, bytes(32), "must be 1216 bytes"),
        (MLKEM768_X25519, b"\xff" * 1216, "not a valid"),
        (X25519, bytes(32), "not a usable"),  # the zero point: an all-zero shared secret
    ],
)
def test_unusable_public_keys_are_invalid_requests(kem: str, raw: bytes, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        seal(b"k" * 32, kem, raw, **BINDING)


def test_ephemeral_key_repr_shows_no_private_key() -> None:
    key = EphemeralKey.generate(X25519)
    assert "_private" not in repr(key)

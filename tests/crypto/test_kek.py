"""KEKs and the pure formats: sizes, fingerprints, the fast authenticated load, names."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kmsbridge.crypto.kek import (
    KekPublicKey,
    generate_kek,
    load_unwrapped_private_key,
    private_key_pkcs8,
    unwrap_dek,
)
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import (
    kek_context,
    recording_context,
    validate_kek_id,
    validate_org,
    validate_recording_id,
)


def test_kek_id_is_sha256_of_the_spki_der(kek_pair: Any) -> None:
    private, public = kek_pair
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.kek_id == hashlib.sha256(der).hexdigest()
    assert private.key_size == 3072
    assert KekPublicKey.from_der(der) == public


def test_4096_is_an_option_and_other_sizes_are_refused() -> None:
    assert generate_kek(4096)[0].key_size == 4096
    with pytest.raises(InvalidRequest):
        generate_kek(2048)


def test_unwrapped_key_must_match_the_stored_public_key(kek_pair: Any) -> None:
    private, public = kek_pair
    pkcs8 = private_key_pkcs8(private)
    assert load_unwrapped_private_key(pkcs8, public).private_numbers() == private.private_numbers()
    other_private, other_public = generate_kek()
    with pytest.raises(IntegrityError, match="does not match"):
        load_unwrapped_private_key(pkcs8, other_public)
    with pytest.raises(IntegrityError):
        load_unwrapped_private_key(b"not a key", public)
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(IntegrityError, match="not an RSA"):
        load_unwrapped_private_key(ec_key, public)


def test_data_key_wrapping_round_trip_and_failure(kek_pair: Any) -> None:
    private, public = kek_pair
    dek = bytes(range(32))
    assert unwrap_dek(private, public.wrap_dek(dek)) == dek
    with pytest.raises(IntegrityError):
        unwrap_dek(private, b"\0" * 384)
    with pytest.raises(IntegrityError, match="wrong length"):
        unwrap_dek(private, public.wrap_dek(b"short"))


def test_small_imported_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    der = small.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidRequest, match="2048"):
        KekPublicKey.from_der(der)


@pytest.mark.parametrize("org", ["acme", "a", "A.b_c-9", "x" * 64])
def test_good_org_ids(org: str) -> None:
    assert validate_org(org) == org


@pytest.mark.parametrize("org", ["", "x" * 65, "a b", "a/b", "é", None, 7, "a\n"])
def test_bad_org_ids(org: Any) -> None:
    with pytest.raises(InvalidRequest, match="org"):
        validate_org(org)


def test_ids_and_contexts() -> None:
    assert validate_kek_id("a" * 64)
    for bad in ("A" * 64, "a" * 63, 5):
        with pytest.raises(InvalidRequest):
            validate_kek_id(bad)
    with pytest.raises(InvalidRequest):
        validate_recording_id("\x00")
    assert kek_context("acme", "k") == {
        "kmsbridge:org": "acme",
        "kmsbridge:kek": "k",
        "kmsbridge:purpose": "kek",
    }
    assert recording_context("acme", "r", {"kmsbridge:media": "audio/wav"})["kmsbridge:media"]
    with pytest.raises(InvalidRequest):
        recording_context("acme", "r", {f"k{i}": "v" for i in range(17)})

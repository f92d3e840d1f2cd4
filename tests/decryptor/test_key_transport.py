"""``Decryptor.key_transport`` (issue 15, finding 8): only imported and LKM KEKs, only the
paddings each was registered for, and every RSA failure one answer.

The attack it closes: with key transport open to every KEK and every padding, a caller
could turn an org's recording KEK into a PKCS#1 v1.5 decryption oracle (Bleichenbacher)
over the recordings' wrapped data keys, or decrypt their OAEP-SHA256 data keys outright.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import PADDING_LKM_OAEP, PADDING_PKCS1V15, oaep_padding
from kmsbridge.keys.records import KekRecord
from kmsbridge.lifecycle.rotation import make_kek
from kmsbridge.recordings.codec import encrypt_stream, read_header
from tests.conftest import FIXED_NOW, World

OAEP_SHA256 = "rsa-oaep-sha256-mgf1-sha256"
PADDINGS = {
    PADDING_PKCS1V15: padding.PKCS1v15(),
    PADDING_LKM_OAEP: padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),
    OAEP_SHA256: oaep_padding(),
}


def kek_of(world: World, source: str) -> tuple[KekRecord, rsa.RSAPublicKey]:
    made = make_kek(
        world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW, state="retired"
    )
    record = replace(made, source=source)
    world.store.put_new_kek(record)
    return record, KekPublicKey.from_der(record.public_key).key


def test_a_recording_kek_does_no_key_transport_and_asks_kms_nothing_for_a_bad_name(
    world: World,
) -> None:
    dek = os.urandom(32)
    for name, pad in PADDINGS.items():
        wrapped = world.public_key.key.encrypt(dek, pad)
        with pytest.raises(InvalidRequest, match="not registered") as refused:
            world.decryptor.key_transport(world.org, world.kek_id, wrapped, name)
        assert dek.hex() not in refused.value.message
    calls = world.wrapper.kms_calls
    with pytest.raises(InvalidRequest, match="unknown key-transport padding"):
        world.decryptor.key_transport(world.org, world.kek_id, b"x" * 384, "rsa-raw")
    assert world.wrapper.kms_calls == calls


@pytest.mark.parametrize(
    ("source", "allowed", "refused"),
    [
        ("imported", [PADDING_PKCS1V15, PADDING_LKM_OAEP, OAEP_SHA256], []),
        ("lkm", [PADDING_PKCS1V15, PADDING_LKM_OAEP], [OAEP_SHA256]),
    ],
)
def test_each_kek_decrypts_the_paddings_of_its_source(
    world: World, source: str, allowed: list[str], refused: list[str]
) -> None:
    record, public = kek_of(world, source)
    dek = os.urandom(32)
    for name in allowed:
        wrapped = public.encrypt(dek, PADDINGS[name])
        assert world.decryptor.key_transport(world.org, record.kek_id, wrapped, name) == dek
    for name in refused:
        wrapped = public.encrypt(dek, PADDINGS[name])
        with pytest.raises(InvalidRequest, match="not registered"):
            world.decryptor.key_transport(world.org, record.kek_id, wrapped, name)


def test_every_rsa_failure_is_the_same_error(world: World) -> None:
    record, public = kek_of(world, "imported")
    good = public.encrypt(os.urandom(32), PADDINGS[PADDING_LKM_OAEP])
    tampered = bytes([good[0] ^ 1]) + good[1:]
    attempts = [b"", b"\x00" * 384, b"\xff" * 384, os.urandom(383), os.urandom(385), tampered]
    messages = set()
    for name in PADDINGS:
        for ciphertext in attempts:
            try:
                world.decryptor.key_transport(world.org, record.kek_id, ciphertext, name)
            except IntegrityError as exc:
                messages.add(exc.message)
            else:
                # PKCS#1 v1.5 under OpenSSL's implicit rejection: a pseudo-random key, no error.
                assert name == PADDING_PKCS1V15 and len(ciphertext) == 384
    assert messages == {"the content key does not decrypt under its KEK"}


def test_an_lkm_kek_never_unwraps_a_recording(world: World) -> None:
    record, _ = kek_of(world, "lkm")
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(b"words"),
        out,
        public_key=KekPublicKey.from_der(record.public_key),
        org=world.org,
        recording_id="call-lkm",
    )
    header = read_header(io.BytesIO(out.getvalue())).raw
    with pytest.raises(IntegrityError, match="does not wrap recordings"):
        world.decryptor.unwrap(world.org, header)

"""The just-in-time decryptor: release rules, caches, revocation, errors (moto in process)."""

from __future__ import annotations

import io
import os

import pytest

from kmsbridge.errors import AccessRevoked, IntegrityError, InvalidRequest, WrongOrg
from kmsbridge.recordings import decrypt_stream, read_header
from tests.conftest import World


def header_of(blob: bytes) -> bytes:
    return read_header(io.BytesIO(blob)).raw


def play(world: World, blob: bytes, org: str | None = None) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, org=org or world.org, data_keys=world.decryptor)
    return out.getvalue()


def test_plays_back_what_the_public_key_encrypted(world: World) -> None:
    data = os.urandom(200_000)
    assert play(world, world.encrypt(data)) == data


def test_warm_unwrap_uses_the_cache_and_makes_no_kms_call(world: World) -> None:
    blob_a, blob_b = world.encrypt(b"a" * 10), world.encrypt(b"b" * 10, "call-2")
    first = world.decryptor.unwrap(world.org, header_of(blob_a))
    calls = world.wrapper.kms_calls
    second = world.decryptor.unwrap(world.org, header_of(blob_b))
    again = world.decryptor.unwrap(world.org, header_of(blob_a))
    assert (first.cache, second.cache, again.cache) == ("miss", "hit", "dek-hit")
    assert world.wrapper.kms_calls == calls


def test_disabled_key_refuses_once_the_cache_age_passed(world: World) -> None:
    blob = world.encrypt(b"x" * 1000)
    assert play(world, blob) == b"x" * 1000
    world.kms_client.disable_key(KeyId=world.key_id)
    fresh = world.encrypt(b"y" * 10, "call-2")
    assert play(world, fresh) == b"y" * 10  # within the maximum age the cached KEK still works
    world.clock.advance(61)
    with pytest.raises(AccessRevoked):
        play(world, fresh)
    world.kms_client.enable_key(KeyId=world.key_id)
    assert play(world, fresh) == b"y" * 10


def test_wrong_org_gets_no_key(world: World) -> None:
    blob = world.encrypt(b"secret")
    with pytest.raises(WrongOrg):
        world.decryptor.unwrap("other", header_of(blob))


def test_tampered_header_gets_no_key(world: World) -> None:
    raw = bytearray(header_of(world.encrypt(b"secret")))
    raw[-20] ^= 1  # inside the commitment
    with pytest.raises(IntegrityError):
        world.decryptor.unwrap(world.org, bytes(raw))


def test_header_with_trailing_bytes_is_an_invalid_request(world: World) -> None:
    raw = header_of(world.encrypt(b"secret")) + b"\0"
    with pytest.raises(InvalidRequest):
        world.decryptor.unwrap(world.org, raw)

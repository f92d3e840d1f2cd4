"""The just-in-time decryptor: release rules, caches, revocation, errors (moto in process)."""

from __future__ import annotations

import io
import os

import pytest

from kmsbridge.errors import AccessRevoked, IntegrityError, InvalidRequest, WrongOrg
from kmsbridge.integrations.esdk import esdk_kek_provider
from kmsbridge.recordings.codec import decrypt_stream, read_header
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


def test_every_decision_is_one_audit_line_without_secrets(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    blob = world.encrypt(b"audio" * 100, "call-77")
    with caplog.at_level(logging.INFO, logger="kmsbridge.audit"):
        key = world.decryptor.unwrap(world.org, header_of(blob), request_id="req-1")
        with pytest.raises(WrongOrg):
            world.decryptor.unwrap("other", header_of(blob))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    assert [(x["op"], x["outcome"], x.get("org")) for x in lines] == [
        ("unwrap", "ok", world.org),
        ("unwrap", "WRONG_ORG", "other"),
    ]
    assert lines[0]["kek"] == world.kek_id and lines[0]["recording"] == "call-77"
    assert lines[0]["cache"] == "miss" and lines[0]["request_id"] == "req-1"
    text = caplog.text
    assert key.data_key.hex() not in text and "data_key" not in text


def test_concurrent_cold_unwraps_make_one_kms_call(world: World) -> None:
    import threading

    headers = [header_of(world.encrypt(b"x", f"call-{i}")) for i in range(8)]
    before = world.wrapper.kms_calls
    threads = [
        threading.Thread(target=world.decryptor.unwrap, args=(world.org, h)) for h in headers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert world.wrapper.kms_calls - before == 1


def test_an_access_failure_evicts_every_cached_kek_of_the_org(world: World) -> None:
    from kmsbridge.lifecycle.rotation import make_kek
    from tests.conftest import FIXED_NOW

    first = world.encrypt(b"one")
    world.decryptor.unwrap(world.org, header_of(first))
    org = world.store.get_org(world.org)
    second_kek = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    world.store.activate(org, second_kek, "2026-11-02T00:00:00Z")
    world.clock.advance(30)
    world.kms_client.disable_key(KeyId=world.key_id)
    from kmsbridge.crypto.kek import KekPublicKey

    world.public_key = KekPublicKey.from_der(second_kek.public_key)
    with pytest.raises(AccessRevoked):  # the new KEK is not cached: KMS refuses
        world.decryptor.unwrap(world.org, header_of(world.encrypt(b"two", "call-2")))
    assert len(world.decryptor.keks) == 0 and len(world.decryptor.data_keys) == 0
    with pytest.raises(AccessRevoked):  # the first KEK was evicted too, well before its age
        world.decryptor.unwrap(world.org, header_of(first))


def test_a_destroyed_kek_is_not_found_on_purpose(world: World) -> None:
    from kmsbridge.errors import NotFound

    blob = world.encrypt(b"x")
    record = world.store.get_kek(world.org, world.kek_id)
    world.store.update_kek(
        record, state="destroyed", wrapped_private_key=None, destroyed_at="2026-11-20T00:00:00Z"
    )
    with pytest.raises(NotFound, match="destroyed on purpose"):
        world.decryptor.unwrap(world.org, header_of(blob))


def test_a_kek_blob_copied_into_another_orgs_item_releases_nothing(world: World) -> None:
    from dataclasses import replace

    from kmsbridge.lifecycle.rotation import create_org

    _, other_kek = create_org(world.store, world.wrapper, "globex", [world.key_arn])
    stolen = world.store.get_kek(world.org, world.kek_id).wrapped_private_key
    record = world.store.get_kek("globex", other_kek.kek_id)
    world.store.update_kek(record, wrapped_private_key=stolen)
    from kmsbridge.crypto.kek import KekPublicKey

    other = replace(world, org="globex", public_key=KekPublicKey.from_der(other_kek.public_key))
    with pytest.raises(WrongOrg):  # KMS unwraps (same customer key), the context says acme
        world.decryptor.unwrap("globex", header_of(other.encrypt(b"x")))


def test_access_check_unwraps_each_kek_now(world: World) -> None:
    checks = world.decryptor.check_access(world.org)
    assert [(c.kek_id, c.outcome) for c in checks] == [(world.kek_id, "ok")]
    world.kms_client.disable_key(KeyId=world.key_id)
    assert [c.outcome for c in world.decryptor.check_access(world.org)] == ["ACCESS_REVOKED"]


def test_a_message_the_plain_esdk_wrote_plays_through_the_decryptor(world: World) -> None:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import (
        Algorithm,
        CommitmentPolicy,
    )

    provider = esdk_kek_provider(world.public_key)  # the public key only
    data = os.urandom(30_000)
    blob, _ = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    ).encrypt(
        source=data,
        key_provider=provider,
        encryption_context={"kmsbridge:org": world.org, "kmsbridge:recording": "esdk-1"},
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    )
    assert play(world, blob) == data

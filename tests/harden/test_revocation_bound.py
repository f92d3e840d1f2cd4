"""Issue 15, finding 1: no key is released more than max_age after KMS last agreed.

The attack: KEK loaded at t=0 (KMS agrees), a new recording first played at t=59 (its data
key derived from the cached KEK), the customer disables the key at t=59.5. Before the fix
the data key was cached for its own 60 s and played until t=118.9 with no KMS call. Now it
expires with its KEK's entry at t=60. Also: a data key derived while another request sees
the refusal and evicts the org is not cached afterwards. On a controlled clock, then
through the Lambda handler with a 2 s cache age and real time (moto's server).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from typing import Any

import pytest

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor import decryptor as decryptor_module
from kmsbridge.decryptor.cache import TtlCache
from kmsbridge.errors import AccessRevoked
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaHandler
from kmsbridge.lifecycle.rotation import create_org, make_kek
from kmsbridge.recordings.codec import read_header
from tests.conftest import FIXED_NOW, Clock, World
from tests.harden import encrypt, header_length


def header(blob: bytes) -> bytes:
    return blob[: header_length(blob)]


def play(world: World, blob: bytes) -> str:
    """The cache field of the release ("miss", "hit", "dek-hit"), or the refusal's code."""
    try:
        return world.decryptor.unwrap(world.org, header(blob)).cache
    except AccessRevoked as exc:
        return exc.code


def test_a_data_key_expires_with_its_kek_not_after_its_own_max_age(world: World) -> None:
    first, second = world.encrypt(b"first", "call-1"), world.encrypt(b"second", "call-2")
    assert play(world, first) == "miss"  # t=0: KMS agrees; the KEK is cached until t=60
    world.clock.advance(59)
    assert play(world, second) == "hit"  # t=59: its data key derived from the cached KEK
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    world.clock.advance(0.5)  # t=59.5: the customer revokes
    calls = world.wrapper.kms_calls
    assert play(world, second) == "dek-hit"  # inside the bound: KMS agreed 59.5 s ago
    world.clock.advance(0.499)
    assert play(world, second) == "dek-hit"  # t=59.999
    world.clock.advance(0.001)  # t=60: KMS's agreement is max_age old
    assert play(world, second) == "ACCESS_REVOKED"
    assert world.wrapper.kms_calls == calls + 1
    assert (len(world.decryptor.keks), len(world.decryptor.data_keys)) == (0, 0)
    world.clock.advance(58.9)  # t=118.9: the attack's replay, refused again by KMS
    assert play(world, second) == "ACCESS_REVOKED"
    assert world.wrapper.kms_calls == calls + 2


def test_a_data_key_from_a_reloaded_kek_counts_from_the_reload(world: World) -> None:
    blob = world.encrypt(b"x", "call-1")
    assert play(world, blob) == "miss"
    world.clock.advance(60)  # the KEK and the data key lapse together
    assert play(world, blob) == "miss"  # KMS agrees again at t=60
    world.clock.advance(59.999)
    assert play(world, blob) == "dek-hit"
    world.clock.advance(0.001)
    assert play(world, blob) == "miss"


def test_a_data_key_racing_an_eviction_is_not_cached(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Request 1 holds the cached KEK 1 and derives a data key; meanwhile request 2 (a
    recording under KEK 2, not cached) asks KMS after the revocation, is refused, and
    evicts the org. Request 1's data key must not enter the cache after that eviction."""
    call_1 = world.encrypt(b"one", "call-1")
    assert play(world, call_1) == "miss"  # KEK 1 cached
    kek_2 = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    world.store.activate(world.store.get_org(world.org), kek_2, "2026-11-02T00:00:00Z")
    call_2 = encrypt(KekPublicKey.from_der(kek_2.public_key), world.org, b"two", "call-2")
    fresh = world.encrypt(b"three", "call-3")  # under KEK 1, its data key not cached yet
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    real_unwrap_dek = decryptor_module.unwrap_dek
    refusals: list[str] = []

    def unwrap_while_another_request_is_refused(private: Any, encrypted: bytes) -> bytes:
        if not refusals:
            refusals.append(play(world, call_2))  # request 2: KMS refuses, the org is evicted
        return real_unwrap_dek(private, encrypted)

    monkeypatch.setattr(decryptor_module, "unwrap_dek", unwrap_while_another_request_is_refused)
    assert play(world, fresh) == "hit"  # request 1 was already past its KEK lookup
    assert refusals == ["ACCESS_REVOKED"]
    assert (len(world.decryptor.keks), len(world.decryptor.data_keys)) == (0, 0)
    monkeypatch.setattr(decryptor_module, "unwrap_dek", real_unwrap_dek)
    assert play(world, fresh) == "ACCESS_REVOKED"  # no cached copy: KMS is asked, and refuses


def test_the_cache_refuses_a_put_from_before_an_eviction(clock: Clock) -> None:
    cache: TtlCache[str] = TtlCache(60, now=clock)
    generation = cache.generation("a")
    cache.evict_org("a")
    assert cache.put(("a", 1), "derived before the eviction", generation=generation) is False
    assert cache.get(("a", 1)) is None
    assert cache.put(("a", 1), "v", generation=cache.generation("a")) is True
    assert cache.put(("a", 2), "w", expires=clock() + 600) is True  # capped at max_age
    clock.advance(60)
    assert (cache.get(("a", 1)), cache.get(("a", 2))) == (None, None)


def test_a_load_expires_from_when_it_began(clock: Clock) -> None:
    """KMS agrees at some moment during the request: the entry counts from its start."""
    cache: TtlCache[str] = TtlCache(60, now=clock)

    def slow_load() -> str:
        clock.advance(5)  # a slow KMS answer
        return "kek"

    entry = cache.get_or_load_entry(("a", 1), slow_load)
    assert (entry.how, entry.expires) == ("miss", 1000 + 60)
    clock.advance(54.999)
    assert cache.get(("a", 1)) == "kek"
    clock.advance(0.001)
    assert cache.get(("a", 1)) is None


# ---------------------------------------------------------------- real time, the Lambda

MAX_AGE = 2.0


def audited_caches(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    return [str(line.get("cache")) for line in lines if line.get("op") == "unwrap"]


def sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(left)


@pytest.mark.server
def test_through_the_lambda_handler_with_a_2s_cache_and_real_time(
    server_world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A recording first played 1 s after its KEK was loaded is refused 2 s after the
    load, not 2 s after its own first play. A scenario that a stalled machine did not let
    happen in order (checked from the audit lines and the clock) is set up again."""
    w = server_world
    monkeypatch.setenv("KMSBRIDGE_TABLE", w.store.table)
    monkeypatch.setenv("KMSBRIDGE_MAX_AGE_SECONDS", str(MAX_AGE))
    monkeypatch.delenv("KMSBRIDGE_ALLOWED_ORGS", raising=False)
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    handler = LambdaHandler()
    kms: Any = w.kms_client

    def unwrap(org: str, blob: bytes) -> dict[str, Any]:
        raw = base64.b64encode(read_header(io.BytesIO(blob)).raw).decode()
        return handler({"op": "unwrap", "org": org, "header": raw})

    demonstrated = 0
    for attempt in range(3):
        org = f"{w.org}-{attempt}"
        arn = kms.create_key(Description=org)["KeyMetadata"]["Arn"]
        _, kek = create_org(w.store, w.wrapper, org, [arn], now=FIXED_NOW)
        public = KekPublicKey.from_der(kek.public_key)
        first, second = (encrypt(public, org, b"audio", name) for name in ("call-1", "call-2"))
        caplog.clear()
        assert unwrap(org, first)["ok"] is True
        loaded_by = time.monotonic()  # KMS agreed before this moment
        sleep_until(loaded_by + MAX_AGE / 2)
        second_started = time.monotonic()
        assert unwrap(org, second)["ok"] is True
        kms.disable_key(KeyId=arn.rsplit("/", 1)[1])
        sleep_until(loaded_by + MAX_AGE + 0.05)
        replay_started = time.monotonic()
        refused = unwrap(org, second)
        # Whatever the timing, a release this late would break the bound.
        assert refused["ok"] is False and refused["error"]["code"] == "ACCESS_REVOKED"
        in_order = audited_caches(caplog)[:2] == ["miss", "hit"]
        if in_order and replay_started < second_started + MAX_AGE:
            demonstrated += 1  # the old per-entry age would still have served the key
            break
    assert demonstrated == 1, "the machine was too slow to set the scenario up three times"

"""Hardening 4, revocation: when the customer revokes, playback stops within the maximum age.

On a controlled clock (max age 60 s): KEK 1 is cached at t=0 and KEK 2 (after a rotation)
at t=30; the key is revoked at t=40. Until t=60 the caches still play (the documented
bound, asserted so that a change of it shows); at t=60 the first request goes to KMS, is
refused with ACCESS_REVOKED, and every cached KEK and data key of the org goes at once, so
KEK 2's recording (cached until t=90) is refused at once too, while a bystander org's
cache is untouched. Restoring access brings playback back. Revocations: DisableKey,
ScheduleKeyDeletion (refused through ``enforce_kms_key_states``, since moto alone still
decrypts), and kms:Decrypt removed from the decryptor's IAM identity (moto's IAM
enforcement, which answers "403").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import AccessRevoked
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.lifecycle.rotation import create_org, make_kek
from tests.conftest import FIXED_NOW, REGION, World
from tests.harden import allow, encrypt, header_length, iam_enforced, report

MAX_AGE = 60.0
BYSTANDER = "bystander"
READ_TABLE = ("dynamodb:GetItem", "dynamodb:Query")


@dataclass
class Scene:
    world: World
    decryptor: Decryptor
    kms_calls: Callable[[], int]
    guard: Callable[[], contextlib.AbstractContextManager[object]]
    recordings: dict[str, tuple[str, bytes]]

    def play(self, name: str) -> str:
        """ "ok" (the data key of that very recording) or ACCESS_REVOKED."""
        org, recording = self.recordings[name]
        try:
            with self.guard():
                key = self.decryptor.unwrap(org, recording[: header_length(recording)])
        except AccessRevoked as exc:
            return exc.code
        assert (key.org, key.recording_id) == (org, name)
        return "ok"

    def cached(self) -> tuple[int, int]:
        return len(self.decryptor.keks), len(self.decryptor.data_keys)


def revoked_by_key_state(world: World, how: str) -> tuple[Callable[[], None], Callable[[], None]]:
    kms: Any = world.kms_client
    if how == "disable":
        return (
            lambda: kms.disable_key(KeyId=world.key_id),
            lambda: kms.enable_key(KeyId=world.key_id),
        )

    def restore() -> None:  # a cancelled deletion leaves the key Disabled (AWS and moto)
        kms.cancel_key_deletion(KeyId=world.key_id)
        kms.enable_key(KeyId=world.key_id)

    return lambda: kms.schedule_key_deletion(KeyId=world.key_id, PendingWindowInDays=7), restore


def iam_decryptor(
    world: World,
) -> tuple[Decryptor, KekWrapper, Callable[[], None], Callable[[], None]]:
    """A decryptor running as an IAM user allowed kms:Decrypt and table reads."""
    iam: Any = world.clients.client("iam")
    iam.create_user(UserName="decryptor")
    iam.put_user_policy(
        UserName="decryptor", PolicyName="d", PolicyDocument=allow("kms:Decrypt", *READ_TABLE)
    )
    key = iam.create_access_key(UserName="decryptor")["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )
    clients = AwsClients(AwsSettings(region=REGION), _session=session)
    wrapper = KekWrapper(clients)
    store = type(world.store)(clients.client("dynamodb"), world.store.table)
    decryptor = Decryptor(store, wrapper, max_age=MAX_AGE, now=world.clock)

    def revoke() -> None:
        iam.put_user_policy(UserName="decryptor", PolicyName="d", PolicyDocument=allow(*READ_TABLE))

    def restore() -> None:
        iam.put_user_policy(
            UserName="decryptor", PolicyName="d", PolicyDocument=allow("kms:Decrypt", *READ_TABLE)
        )

    return decryptor, wrapper, revoke, restore


@pytest.fixture(params=["disable", "schedule-deletion", "iam"])
def scene(request: pytest.FixtureRequest, world: World) -> Iterator[tuple[Scene, Any, Any]]:
    kms: Any = world.kms_client
    bystander_arn = kms.create_key(Description="another customer")["KeyMetadata"]["Arn"]
    _, bystander_kek = create_org(
        world.store, world.wrapper, BYSTANDER, [bystander_arn], now=FIXED_NOW
    )
    if request.param == "iam":
        decryptor, wrapper, revoke, restore = iam_decryptor(world)
        guard: Callable[[], contextlib.AbstractContextManager[object]] = iam_enforced
    else:
        # Its own clients: the admin calls below go through world's KMS client, not these.
        wrapper = KekWrapper(AwsClients(AwsSettings(region=REGION)))
        decryptor = Decryptor(world.store, wrapper, max_age=MAX_AGE, now=world.clock)
        revoke, restore = revoked_by_key_state(world, request.param)
        guard = contextlib.nullcontext
    by_public = KekPublicKey.from_der(bystander_kek.public_key)
    recordings = {
        "call-1": (world.org, world.encrypt(b"first", "call-1")),
        "by-1": (BYSTANDER, encrypt(by_public, BYSTANDER, b"bystander", "by-1")),
    }
    yield Scene(world, decryptor, lambda: wrapper.kms_calls, guard, recordings), revoke, restore


def rotate(world: World) -> KekPublicKey:
    kek = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    world.store.activate(world.store.get_org(world.org), kek, "2026-11-02T00:00:00Z")
    return KekPublicKey.from_der(kek.public_key)


def test_revocation_stops_playback_within_the_maximum_age(scene: tuple[Scene, Any, Any]) -> None:
    s, revoke, restore = scene
    clock, world = s.world.clock, s.world
    assert s.play("call-1") == "ok"  # t=0: KEK 1 cached
    clock.advance(30)
    s.recordings["call-2"] = (world.org, encrypt(rotate(world), world.org, b"second", "call-2"))
    assert [s.play("call-2"), s.play("by-1")] == ["ok", "ok"]  # t=30: KEK 2 (and by-1's)
    clock.advance(10)
    revoke()  # t=40
    calls = s.kms_calls()
    assert [s.play("call-1"), s.play("call-2")] == ["ok", "ok"]  # inside the bound, cached
    clock.advance(MAX_AGE - 40 - 0.001)
    assert s.play("call-1") == "ok" and s.kms_calls() == calls
    assert s.cached() == (3, 3)
    clock.advance(0.001)  # t=60: KEK 1 and its data key have reached the maximum age
    assert s.play("call-1") == "ACCESS_REVOKED"
    assert s.cached() == (1, 1)  # only the bystander's: KEK 2 went with KEK 1
    assert s.play("call-2") == "ACCESS_REVOKED"  # asked KMS again, refused again
    assert s.kms_calls() == calls + 2
    assert s.play("by-1") == "ok" and s.kms_calls() == calls + 2  # untouched, no KMS call
    restore()
    assert [s.play("call-1"), s.play("call-2")] == ["ok", "ok"]
    assert s.kms_calls() == calls + 4
    report("revocation", {"refused_at_age": MAX_AGE, "kms_calls_after_revoke": 2})


def test_wrappers_sharing_clients_each_see_their_own_refusals(world: World) -> None:
    """Two KekWrappers on one AwsClients (a process that provisions and decrypts): each
    maps a refusal it got to ACCESS_REVOKED and counts only the KMS calls it made."""
    record = world.store.get_kek(world.org, world.kek_id)
    assert record.wrapped_private_key is not None
    second = KekWrapper(world.clients)
    first_calls = world.wrapper.kms_calls
    kms: Any = world.kms_client
    kms.disable_key(KeyId=world.key_id)
    for wrapper in (second, world.wrapper):
        with pytest.raises(AccessRevoked):
            wrapper.unwrap(
                record.wrapped_private_key,
                org=world.org,
                kek_id=world.kek_id,
                kms_key_arns=record.kms_keys,
                registered=record.kms_keys,
            )
    assert (second.kms_calls, world.wrapper.kms_calls - first_calls) == (1, 1)

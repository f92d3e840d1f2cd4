"""Rewrap under new KMS keys: correctness, a crash after every AWS call, races (moto in process)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import AccessRevoked, InvalidRequest
from kmsbridge.lifecycle.rewrap import RewrapStep, change_org_kms_keys
from kmsbridge.lifecycle.rotation import destroy, public_key_for_encryption, rotate
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream
from tests.conftest import FIXED_NOW, Clock, World

DAY = timedelta(days=1)


class Crash(BaseException):
    """The process dies here: no library code may catch it (it is not an Exception)."""


@contextmanager
def crash_after_call(clients: list[Any], n: int | None) -> Iterator[list[str]]:
    """Raise ``Crash`` right after the n-th AWS call (its effect done) on these clients.

    With ``n=None`` it only records the calls. Yields the operation names seen.
    """
    seen: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        seen.append(model.name)
        if n is not None and len(seen) == n:
            raise Crash(model.name)

    for client in clients:
        client.meta.events.register("after-call", hook)
    try:
        yield seen
    finally:
        for client in clients:
            client.meta.events.unregister("after-call", hook)


def new_key(world: World) -> str:
    return str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]


def disable(world: World, arn: str) -> None:
    world.kms_client.disable_key(KeyId=arn.rsplit("/", 1)[1])  # type: ignore[attr-defined]


def play_all(world: World, recordings: dict[bytes, bytes]) -> None:
    """Every recording plays, each KEK freshly unwrapped through KMS (no cache)."""
    decryptor = Decryptor(world.store, world.wrapper, max_age=0, now=Clock())
    for blob, data in recordings.items():
        out = io.BytesIO()
        decrypt_stream(io.BytesIO(blob), out, org=world.org, data_keys=decryptor)
        assert out.getvalue() == data


def history(world: World) -> dict[bytes, bytes]:
    """Three KEKs: one retired with a recording, one destroyed, one active with a recording."""
    recordings = {world.encrypt(b"first call", "r1"): b"first call"}
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier)
    shredded = world.store.active_kek(world.org)[1].kek_id
    rotate(
        world.store, world.wrapper, world.org, now=FIXED_NOW + 2 * DAY, certifier=world.certifier
    )
    destroy(world.store, world.org, shredded, confirm=shredded, destroyed_by="test")
    public = public_key_for_encryption(
        world.store, world.org, trust=world.trust, now=FIXED_NOW + 2 * DAY
    )
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(b"third call"), out, public_key=public, org=world.org, recording_id="r3"
    )
    recordings[out.getvalue()] = b"third call"
    return recordings


def assert_all_on(world: World, arns: list[str]) -> None:
    assert set(world.store.get_org(world.org).kms_keys) == set(arns)
    for kek in world.store.list_keks(world.org):
        if kek.state != "destroyed":
            assert set(kek.kms_keys) == set(arns), kek.kek_id


def test_rewrap_moves_every_live_kek_and_the_org_to_the_new_keys(world: World) -> None:
    recordings = history(world)
    blobs_before = set(recordings)
    new = [new_key(world), new_key(world)]
    steps: list[RewrapStep] = []
    result = change_org_kms_keys(
        world.store, world.wrapper, world.org, new, set_by="test", progress=steps.append
    )
    assert (result.count("rewrapped"), result.count("destroyed"), result.count("already")) == (
        2,
        1,
        0,
    )
    assert [(s.index, s.total) for s in steps] == [(1, 3), (2, 3), (3, 3)]
    assert_all_on(world, new)
    disable(world, world.key_arn)  # the old key is no longer needed by anything
    play_all(world, recordings)
    for arn in new:  # and either new key alone unwraps everything
        other = next(a for a in new if a != arn)
        disable(world, other)
        play_all(world, recordings)
        world.kms_client.enable_key(KeyId=other.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    assert set(recordings) == blobs_before  # no recording was touched
    tomb = next(k for k in world.store.list_keks(world.org) if k.state == "destroyed")
    assert tomb.kms_keys == (world.key_arn,) and tomb.wrapped_private_key is None
    # New KEKs follow the org's new keys.
    rotate(
        world.store, world.wrapper, world.org, now=FIXED_NOW + 3 * DAY, certifier=world.certifier
    )
    assert set(world.store.active_kek(world.org)[1].kms_keys) == set(new)


def test_a_rerun_after_success_changes_nothing(world: World) -> None:
    history(world)
    new = [new_key(world)]
    change_org_kms_keys(world.store, world.wrapper, world.org, new, set_by="test")
    items = world.store.list_keks(world.org), world.store.get_org(world.org)
    with crash_after_call([world.kms_client], None) as kms_calls:
        result = change_org_kms_keys(world.store, world.wrapper, world.org, new, set_by="test")
    assert (result.count("already"), result.count("rewrapped")) == (2, 0)
    assert kms_calls == []  # a finished rewrap asks KMS nothing
    assert (world.store.list_keks(world.org), world.store.get_org(world.org)) == items


def test_a_crash_after_any_aws_call_leaves_everything_playable_and_a_rerun_finishes(
    world: World,
) -> None:
    recordings = history(world)
    clients = [world.kms_client, world.store.client]
    current = [new_key(world), new_key(world)]
    with crash_after_call(clients, None) as calls:
        change_org_kms_keys(world.store, world.wrapper, world.org, current, set_by="test")
    # Per live KEK: Decrypt (old), GenerateDataKey + Encrypt (new), Decrypt x2 (each new
    # key alone), UpdateItem. Before them the same KMS calls for the active KEK in memory
    # (the new keys tried, nothing written) after GetItem x2, then GetItem + UpdateItem
    # (the org registers the keys), GetItem + Query; last UpdateItem (previous keys dropped).
    per_kek = ["Decrypt", "GenerateDataKey", "Encrypt", "Decrypt", "Decrypt"]
    assert sorted(calls) == sorted(
        ["GetItem", "GetItem", *per_kek, "GetItem", "UpdateItem", "GetItem", "Query"]
        + 2 * [*per_kek, "UpdateItem"]
        + ["UpdateItem"]
    )
    disable(world, world.key_arn)

    for n in range(1, len(calls) + 1):
        target = [new_key(world), new_key(world)]
        with crash_after_call(clients, n) as seen, pytest.raises(Crash):
            change_org_kms_keys(world.store, world.wrapper, world.org, target, set_by="test")
        assert len(seen) == n
        play_all(world, recordings)  # mid-rewrap: old and new items both unwrap
        change_org_kms_keys(
            world.store, world.wrapper, world.org, target, set_by="test"
        )  # the rerun finishes
        assert_all_on(world, target)
        for arn in current:  # nothing depends on the keys it moved away from
            disable(world, arn)
        play_all(world, recordings)
        current = target


def test_a_rotation_during_the_rewrap_is_picked_up(world: World) -> None:
    history(world)
    new = [new_key(world)]
    rotated: list[str] = []

    def rotate_once(step: RewrapStep) -> None:
        if not rotated:  # the rotation wraps its KEK under the newly registered keys
            rotated.append(
                rotate(
                    world.store,
                    world.wrapper,
                    world.org,
                    now=FIXED_NOW + 5 * DAY,
                    certifier=world.certifier,
                ).active_kek
            )

    result = change_org_kms_keys(
        world.store, world.wrapper, world.org, new, set_by="test", progress=rotate_once
    )
    assert result.outcomes[rotated[0]] == "already"
    assert_all_on(world, new)
    assert world.store.get_org(world.org).previous_kms_keys == ()


def test_a_new_key_the_platform_cannot_use_stops_the_rewrap_before_any_write(
    world: World,
) -> None:
    recordings = history(world)
    good, bad = new_key(world), new_key(world)
    disable(world, bad)
    before = world.store.list_keks(world.org), world.store.get_org(world.org)
    with pytest.raises(AccessRevoked):
        change_org_kms_keys(world.store, world.wrapper, world.org, [good, bad], set_by="test")
    assert (world.store.list_keks(world.org), world.store.get_org(world.org)) == before
    play_all(world, recordings)


def test_rewrap_refuses_bad_arns_before_any_call(world: World) -> None:
    with pytest.raises(InvalidRequest):
        change_org_kms_keys(
            world.store, world.wrapper, world.org, ["alias/customer"], set_by="test"
        )
    with pytest.raises(InvalidRequest):
        change_org_kms_keys(world.store, world.wrapper, world.org, [], set_by="test")

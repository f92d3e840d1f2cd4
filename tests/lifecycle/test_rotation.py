"""Rotation, cryptoperiods, retire and destroy, inventory (moto in process, fixed clock)."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest

from kmsbridge.clock import iso
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import AccessRevoked, ConflictError, InvalidRequest, NotFound
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.inventory import inventory
from kmsbridge.lifecycle.rotation import (
    destroy,
    public_key_for_encryption,
    retire,
    rotate,
    rotate_due_orgs,
    rotate_if_due,
)
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream
from tests.conftest import FIXED_NOW, Clock, World

DAY = timedelta(days=1)


def encrypt(world: World, public: KekPublicKey, data: bytes, recording_id: str) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data), out, public_key=public, org=world.org, recording_id=recording_id
    )
    return out.getvalue()


def play(world: World, blob: bytes, decryptor: Decryptor | None = None) -> bytes:
    out = io.BytesIO()
    fresh = decryptor or Decryptor(world.store, world.wrapper, max_age=0, now=Clock())
    decrypt_stream(io.BytesIO(blob), out, org=world.org, data_keys=fresh)
    return out.getvalue()


# ---------------------------------------------------------------- rotation


def test_rotation_makes_a_new_active_kek_and_retires_the_old_at_the_same_instant(
    world: World,
) -> None:
    old = world.store.get_kek(world.org, world.kek_id)
    done = rotate(
        world.store, world.wrapper, world.org, now=FIXED_NOW + 30 * DAY, certifier=world.certifier
    )
    assert (done.retired_kek, done.at) == (world.kek_id, iso(FIXED_NOW + 30 * DAY))
    org, new = world.store.active_kek(world.org)
    assert new.kek_id == done.active_kek != world.kek_id
    retired = world.store.get_kek(world.org, world.kek_id)
    assert (retired.state, retired.activated_at) == ("retired", old.activated_at)
    assert retired.retired_at == new.activated_at == new.created_at == done.at
    assert org.version == 2 and new.kms_keys == (world.key_arn,)
    assert KekPublicKey.from_der(new.public_key).key.key_size == 3072


def test_recordings_under_old_and_new_keks_both_play(world: World) -> None:
    before = world.encrypt(b"before rotation", "r1")
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier)
    public = public_key_for_encryption(
        world.store, world.org, trust=world.trust, now=FIXED_NOW + DAY
    )
    assert public.kek_id != world.kek_id
    after = encrypt(world, public, b"after rotation", "r2")
    assert play(world, before) == b"before rotation"
    assert play(world, after) == b"after rotation"


class BarrierStore(KeyStore):
    """The real key table, but every rotation waits until all of them have read the org."""

    def __init__(self, store: KeyStore, parties: int) -> None:
        super().__init__(store.client, store.table)
        self.barrier = threading.Barrier(parties, timeout=60)

    def activate(self, *args: Any, **kwargs: Any) -> Any:
        self.barrier.wait()
        return super().activate(*args, **kwargs)


def test_concurrent_rotations_leave_exactly_one_active_kek(world: World) -> None:
    store = BarrierStore(world.store, parties=4)
    outcomes: list[str] = []

    def run() -> None:
        try:
            outcomes.append(rotate(store, world.wrapper, world.org, now=FIXED_NOW + DAY).active_kek)
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("lost") == 3
    winner = next(o for o in outcomes if o != "lost")
    keks = world.store.list_keks(world.org)
    assert sorted(k.state for k in keks) == ["active", "retired"]  # the losers stored nothing
    assert world.store.get_org(world.org).active_kek == winner


def test_an_expired_kek_is_refused_with_a_message_to_rotate(world: World) -> None:
    public_key_for_encryption(
        world.store, world.org, trust=world.trust, now=FIXED_NOW + 90 * DAY - timedelta(1)
    )
    with pytest.raises(InvalidRequest, match=f"kmsbridge kek rotate {world.org}"):
        public_key_for_encryption(
            world.store, world.org, trust=world.trust, now=FIXED_NOW + 90 * DAY
        )


def test_an_expired_kek_is_rotated_first_when_the_caller_allows_it(world: World) -> None:
    later = FIXED_NOW + 91 * DAY
    public = public_key_for_encryption(
        world.store,
        world.org,
        trust=world.trust,
        now=later,
        rotate_if_expired=True,
        kms=world.wrapper,
        certifier=world.certifier,
    )
    org, active = world.store.active_kek(world.org)
    assert public.kek_id == active.kek_id != world.kek_id
    assert active.activated_at == iso(later)
    again = public_key_for_encryption(
        world.store,
        world.org,
        trust=world.trust,
        now=later,
        rotate_if_expired=True,
        kms=world.wrapper,
        certifier=world.certifier,
    )
    assert again.kek_id == public.kek_id  # still fresh: no second rotation
    with pytest.raises(InvalidRequest, match="KMS access"):
        public_key_for_encryption(
            world.store, world.org, trust=world.trust, now=later + 91 * DAY, rotate_if_expired=True
        )


def test_rotate_if_due_follows_the_cryptoperiod_and_the_lead(world: World) -> None:
    assert rotate_if_due(world.store, world.wrapper, world.org, now=FIXED_NOW + 89 * DAY) is None
    early = rotate_if_due(
        world.store, world.wrapper, world.org, now=FIXED_NOW + 89 * DAY, lead=timedelta(hours=24)
    )
    assert early is not None and early.retired_kek == world.kek_id


def test_the_lead_never_exceeds_half_the_period(world: World, aws: Any) -> None:
    one_day = KeyStore(world.store.client, world.store.table)
    from kmsbridge.lifecycle.rotation import create_org

    create_org(one_day, world.wrapper, "daily", [world.key_arn], cryptoperiod_days=1, now=FIXED_NOW)
    lead = timedelta(hours=24)
    assert (
        rotate_if_due(
            one_day, world.wrapper, "daily", now=FIXED_NOW + timedelta(hours=11), lead=lead
        )
        is None
    )
    assert rotate_if_due(
        one_day, world.wrapper, "daily", now=FIXED_NOW + timedelta(hours=12), lead=lead
    )


def test_scheduled_rotation_rotates_only_due_orgs_and_isolates_failures(
    world: World, aws: Any
) -> None:
    from kmsbridge.lifecycle.rotation import create_org

    kms = world.kms_client
    yearly_key = kms.create_key()["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
    broken_key = kms.create_key()["KeyMetadata"]  # type: ignore[attr-defined]
    create_org(
        world.store, world.wrapper, "yearly", [yearly_key], cryptoperiod_days=365, now=FIXED_NOW
    )
    create_org(world.store, world.wrapper, "broken", [broken_key["Arn"]], now=FIXED_NOW)
    kms.disable_key(KeyId=broken_key["KeyId"])  # type: ignore[attr-defined]

    quiet = rotate_due_orgs(world.store, world.wrapper, now=FIXED_NOW + 89 * DAY)
    assert (quiet.rotated, set(quiet.current), quiet.failed) == (
        (),
        {"acme", "broken", "yearly"},
        (),
    )

    report = rotate_due_orgs(world.store, world.wrapper, now=FIXED_NOW + 90 * DAY)
    assert [r.org for r in report.rotated] == ["acme"]
    assert report.current == ("yearly",)
    assert [(o, c) for o, c, _ in report.failed] == [("broken", AccessRevoked.code)]
    assert world.store.get_org("broken").active_kek == world.store.list_keks("broken")[0].kek_id

    again = rotate_due_orgs(world.store, world.wrapper, now=FIXED_NOW + 90 * DAY)
    assert again.rotated == () and "acme" in again.current  # a rerun rotates nothing twice
    assert report.to_dict()["failed"][0]["code"] == "ACCESS_REVOKED"


# ---------------------------------------------------------------- retire and destroy


def test_the_active_kek_cannot_be_retired_or_destroyed(world: World) -> None:
    with pytest.raises(InvalidRequest, match="kek rotate"):
        retire(world.store, world.org, world.kek_id)
    with pytest.raises(InvalidRequest, match="only a retired KEK"):
        destroy(world.store, world.org, world.kek_id, confirm=world.kek_id, destroyed_by="me")
    assert world.store.get_kek(world.org, world.kek_id).state == "active"


def test_retire_is_idempotent_and_keeps_decrypting(world: World) -> None:
    blob = world.encrypt(b"old call")
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier)
    record = world.store.get_kek(world.org, world.kek_id)
    assert retire(world.store, world.org, world.kek_id) == record  # already retired: no change
    assert play(world, blob) == b"old call"


def test_destroy_is_refused_without_the_kek_id_typed_back(world: World) -> None:
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier)
    for confirm in (None, "", world.kek_id[:12], "yes"):
        with pytest.raises(InvalidRequest, match="typed back"):
            destroy(world.store, world.org, world.kek_id, confirm=confirm, destroyed_by="me")
    assert world.store.get_kek(world.org, world.kek_id).wrapped_private_key is not None


def test_destroy_shreds_and_the_decryptor_says_destroyed_on_purpose(world: World) -> None:
    blob = world.encrypt(b"to be shredded")
    warm = world.decryptor
    assert play(world, blob, warm) == b"to be shredded"
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier)
    stamp = FIXED_NOW + 2 * DAY
    tomb = destroy(
        world.store,
        world.org,
        world.kek_id,
        confirm=world.kek_id,
        destroyed_by="arn:aws:iam::123456789012:user/ops",
        now=stamp,
    )
    stored = world.store.get_kek(world.org, world.kek_id)
    assert stored == tomb
    assert (stored.state, stored.wrapped_private_key) == ("destroyed", None)
    assert (stored.destroyed_at, stored.destroyed_by) == (
        iso(stamp),
        "arn:aws:iam::123456789012:user/ops",
    )
    assert KekPublicKey.from_der(stored.public_key).kek_id == world.kek_id  # the tombstone
    with pytest.raises(NotFound, match="destroyed on purpose"):
        play(world, blob)
    world.clock.advance(61)  # the warm decryptor forgets the KEK after its maximum age
    with pytest.raises(NotFound, match="destroyed on purpose"):
        play(world, blob, warm)
    assert (
        destroy(world.store, world.org, world.kek_id, confirm=world.kek_id, destroyed_by="x")
        == tomb
    )
    with pytest.raises(InvalidRequest, match="already destroyed"):
        retire(world.store, world.org, world.kek_id)


# ---------------------------------------------------------------- inventory


def test_inventory_reports_states_ages_days_left_and_key_usability(world: World) -> None:
    rotate(
        world.store, world.wrapper, world.org, now=FIXED_NOW + 10 * DAY, certifier=world.certifier
    )
    second = world.kms_client.create_key()["KeyMetadata"]  # type: ignore[attr-defined]
    from kmsbridge.lifecycle.rewrap import change_org_kms_keys

    change_org_kms_keys(world.store, world.wrapper, world.org, [second["Arn"]], set_by="t")
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    report = inventory(world.store, world.wrapper, world.org, now=FIXED_NOW + 40 * DAY)
    active, old = report.keks
    assert (active.state, old.state) == ("active", "retired")
    assert (active.age_days, old.age_days) == (30, 40)
    assert (active.days_left, old.days_left) == (60, None)
    assert active.not_after == iso(FIXED_NOW + 100 * DAY)
    assert active.kms_keys == old.kms_keys == (second["Arn"],)
    assert active.kms_key_usable and old.kms_key_usable
    status = {s.arn: (s.state, s.usable) for s in report.key_status}
    assert status == {second["Arn"]: ("Enabled", True)}  # the org moved off the disabled key
    late = inventory(world.store, world.wrapper, world.org, now=FIXED_NOW + 101 * DAY)
    assert late.keks[0].days_left == -1
    data = report.to_dict()
    assert "wrapped_private_key" not in str(data) and "public_key" not in str(data)


def test_inventory_marks_a_disabled_kms_key_unusable(world: World) -> None:
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    report = inventory(world.store, world.wrapper, world.org, now=FIXED_NOW)
    assert [(s.state, s.usable) for s in report.key_status] == [("Disabled", False)]
    assert report.keks[0].kms_key_usable is False


def test_each_lifecycle_change_is_one_audit_line_without_key_material(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    import base64
    import json
    import logging

    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    done = rotate(
        world.store, world.wrapper, world.org, now=FIXED_NOW + DAY, certifier=world.certifier
    )
    tomb = destroy(world.store, world.org, world.kek_id, confirm=world.kek_id, destroyed_by="ops")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    ops = [(line["op"], line["kek"], line["outcome"]) for line in lines]
    assert ops == [("kek-rotate", done.active_kek, "ok"), ("kek-destroy", world.kek_id, "ok")]
    assert lines[0]["retired_kek"] == world.kek_id and lines[1]["destroyed_by"] == "ops"
    blob = world.store.get_kek(world.org, done.active_kek).wrapped_private_key
    assert blob is not None and tomb.wrapped_private_key is None
    text = caplog.text
    assert base64.b64encode(blob[:24]).decode() not in text and blob[:24].hex() not in text

"""Rotation and rewrap against moto's server on 127.0.0.1, over real HTTP."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from kmsbridge.errors import ConflictError
from kmsbridge.lifecycle.backup import export_org, import_backup
from kmsbridge.lifecycle.rewrap import rewrap_org, set_org_kms_keys
from kmsbridge.lifecycle.rotation import public_key_for_encryption, rotate
from tests.conftest import FIXED_NOW, World
from tests.lifecycle.test_rewrap import Crash, assert_all_on, crash_after_call, disable, play_all
from tests.lifecycle.test_rotation import BarrierStore, encrypt

pytestmark = pytest.mark.server
DAY = timedelta(days=1)


def test_rotate_rewrap_crash_resume_then_the_old_key_goes(server_world: World) -> None:
    w = server_world
    recordings = {w.encrypt(b"first", "r1"): b"first"}
    rotate(w.store, w.wrapper, w.org, now=FIXED_NOW + DAY, certifier=w.certifier)
    public = public_key_for_encryption(w.store, w.org, trust=w.trust, now=FIXED_NOW + DAY)
    recordings[encrypt(w, public, b"second", "r2")] = b"second"

    new = [str(w.kms_client.create_key()["KeyMetadata"]["Arn"])]  # type: ignore[attr-defined]
    set_org_kms_keys(w.store, w.org, new, set_by="operator")  # registered; the KEKs follow
    # Crash right after the first KEK item was replaced (the 6th call: GetItem, Query,
    # Decrypt, GenerateDataKey, Decrypt, UpdateItem): one item new, one old.
    with crash_after_call([w.kms_client, w.store.client], 6) as seen, pytest.raises(Crash):
        rewrap_org(w.store, w.wrapper, w.org)
    assert seen[-1] == "UpdateItem"
    assert sorted(len(set(k.kms_keys) & set(new)) for k in w.store.list_keks(w.org)) == [0, 1]
    play_all(w, recordings)
    result = rewrap_org(w.store, w.wrapper, w.org)
    assert (result.count("already"), result.count("rewrapped")) == (1, 1)
    assert_all_on(w, new)
    disable(w, w.key_arn)
    play_all(w, recordings)

    # A backup made now restores the rewrapped items as they are.
    backup = export_org(w.store, w.org)
    w.store.delete_org_items(w.org)
    assert len(import_backup(w.store, w.wrapper, backup, kms_key_arns=new).created) == 3
    play_all(w, recordings)


def test_concurrent_rotations_over_http_leave_one_active_kek(server_world: World) -> None:
    w = server_world
    store = BarrierStore(w.store, parties=3)
    lost: list[bool] = []

    def run() -> None:
        try:
            rotate(store, w.wrapper, w.org, now=FIXED_NOW + DAY)
        except ConflictError:
            lost.append(True)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lost) == 2
    states = sorted(k.state for k in w.store.list_keks(w.org))
    assert states == ["active", "retired"]

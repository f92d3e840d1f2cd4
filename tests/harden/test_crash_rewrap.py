"""Hardening 7, crashes: ``kmsbridge kek rewrap`` SIGKILLed at random points, then rerun.

An org with eight KEKs (seven rotations, on moto's server over HTTP) and a recording under
each moves to new KMS keys. ``kek rewrap`` subprocesses, each to a key of its own, are
killed with SIGKILL once a seeded random number of KEKs are on their key, plus a random
moment inside the next KEK's steps (watching the key table, not the clock, so the kills
land inside the run on a fast or a slow machine). After every kill each recording still
plays (through a decryptor with no cache, so each play unwraps through KMS). A last run to
the final key finishes the job; then every KEK is on that key only, the org lists it, there
are still exactly eight KEK items with one active, and with the old keys disabled
everything plays.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.lifecycle import rotation as lifecycle
from kmsbridge.recordings.codec import decrypt_stream, encrypt_stream
from tests.conftest import FIXED_NOW, Clock, World
from tests.harden import report

pytestmark = [pytest.mark.server, pytest.mark.slow]
KILLS = 6
PERIODS = 8
FINISH_BOUND = 120  # seconds: a hang detector for the last run, not a speed target


def rewrap_process(world: World, new_arn: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "kmsbridge.cli.main",
        "--table",
        world.store.table,
        "kek",
        "rewrap",
        world.org,
        "--kms-key",
        new_arn,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_moved(
    world: World, target: str, count: int, process: subprocess.Popen[bytes]
) -> None:
    """Poll the key table until ``count`` KEKs list only ``target`` (or the run ended)."""
    deadline = time.monotonic() + FINISH_BOUND
    while process.poll() is None and time.monotonic() < deadline:
        moved = sum(k.kms_keys == (target,) for k in world.store.list_keks(world.org))
        if moved >= count:
            return
        time.sleep(0.01)


def plays_everything(world: World, recordings: dict[str, bytes]) -> bool:
    decryptor = Decryptor(world.store, world.wrapper, max_age=0, now=Clock())
    for blob, plaintext in recordings.items():
        out = io.BytesIO()
        decrypt_stream(io.BytesIO(blob), out, org=world.org, data_keys=decryptor)
        if out.getvalue() != plaintext:
            return False
    return True


def test_killed_rewraps_lose_nothing_and_a_rerun_finishes(server_world: World) -> None:
    w = server_world
    recordings: dict[bytes, bytes] = {}
    for period in range(PERIODS):
        now = FIXED_NOW + timedelta(days=90 * period)
        if period:
            lifecycle.rotate(w.store, w.wrapper, w.org, now=now, certifier=w.certifier)
        public = KekPublicKey.from_der(w.store.active_kek(w.org)[1].public_key)
        plaintext = os.urandom(5_000)
        out = io.BytesIO()
        encrypt_stream(
            io.BytesIO(plaintext),
            out,
            public_key=public,
            org=w.org,
            recording_id=f"period-{period}",
        )
        recordings[out.getvalue()] = plaintext
    new_arn = w.kms_client.create_key(Description="the customer's new key")["KeyMetadata"]["Arn"]

    rng = random.Random(20261123)
    finished_early = 0
    old_keys = [w.key_arn]
    for attempt in range(KILLS):
        # Each killed run moves to a key of its own, so it always has the whole job to do,
        # starting from whatever mix of keys the previous kill left. It is killed once a
        # random number of KEKs are on its key, plus a random moment inside the next one.
        target = w.kms_client.create_key(Description=f"key {attempt}")["KeyMetadata"]["Arn"]
        old_keys.append(target)
        process = rewrap_process(w, target)
        wait_until_moved(w, target, rng.randrange(PERIODS - 1), process)
        time.sleep(rng.uniform(0, 0.05))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        else:
            finished_early += 1
        process.wait()
        assert plays_everything(w, recordings)

    final = rewrap_process(w, new_arn)
    _, err = final.communicate(timeout=FINISH_BOUND)
    assert final.returncode == 0, err.decode()

    keks = w.store.list_keks(w.org)
    assert len(keks) == PERIODS
    assert [k.state for k in keks].count("active") == 1
    assert all(k.kms_keys == (new_arn,) for k in keks)
    assert w.store.get_org(w.org).kms_keys == (new_arn,)
    for arn in old_keys:  # the old keys are no longer needed
        w.kms_client.disable_key(KeyId=arn.rsplit("/", 1)[1])
    assert plays_everything(w, recordings)
    assert KILLS - finished_early >= KILLS // 2  # most kills landed inside a running rewrap
    report(
        "crash-rewrap",
        {
            "keks": PERIODS,
            "kills": KILLS - finished_early,
            "finished_before_kill": finished_early,
            "lost": 0,
        },
    )

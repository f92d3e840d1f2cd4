"""Hardening 6, concurrency: 32 threads x 1,000 unwraps, two orgs, several KEKs, a rotation.

Two orgs in one key table (acme with two KEKs, globex with one), two recordings per KEK.
32 threads each unwrap 500 randomly chosen recordings (seeded per thread); a quarter of
the way in, another thread rotates acme (a new KEK generated, wrapped, verified and made
active) while the workers unwrap, and publishes two recordings under it, which the
workers pick up for the rest of their first half (a worker that finished its first
quarter early waits for them). Then the age window ends (the controlled clock moves by
the maximum age while every worker waits at a barrier) and each thread unwraps 500 more
from all recordings.

Every unwrap must return that recording's data key (checked against a reference
decryptor with its own KMS wrapper): zero errors. KMS is asked exactly once per KEK per
age window: the decryptor's KMS calls equal the number of distinct KEKs used in the first
window plus those used in the second. Most unwraps hit the data-key cache, so the RSA
work is a few dozen private-key operations.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from kmsbridge.aws import AwsClients, AwsSettings
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rotation import create_org, make_kek
from tests.conftest import FIXED_NOW, REGION, World
from tests.harden import encrypt, header_length, report

THREADS = 32
PER_THREAD = 1000
MAX_AGE = 60.0
OTHER = "globex"


@dataclass(frozen=True)
class Recording:
    org: str
    recording_id: str
    header: bytes
    data_key: bytes = field(repr=False)


@dataclass
class Pool:
    """The recordings workers choose from; grows when the rotation publishes."""

    items: list[Recording]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, more: list[Recording]) -> None:
        with self.lock:
            self.items = self.items + more

    def snapshot(self) -> list[Recording]:
        with self.lock:
            return self.items


def recordings_of(world: World, org: str, public: KekPublicKey, tag: str) -> list[Recording]:
    out = []
    for i in range(2):
        rid = f"{org}-{tag}-{i}"
        blob = encrypt(public, org, rid.encode(), rid)
        header = blob[: header_length(blob)]
        out.append(Recording(org, rid, header, world.decryptor.unwrap(org, header).data_key))
    return out


def add_kek(world: World, org: str, arn: str) -> KekPublicKey:
    kek = make_kek(world.wrapper, org=org, kms_key_arns=[arn], now=FIXED_NOW, state="retired")
    world.store.put_new_kek(kek)
    return KekPublicKey.from_der(kek.public_key)


def rotate(world: World) -> KekPublicKey:
    kek = make_kek(world.wrapper, org=world.org, kms_key_arns=[world.key_arn], now=FIXED_NOW)
    world.store.activate(world.store.get_org(world.org), kek, "2026-11-02T00:00:00Z")
    return KekPublicKey.from_der(kek.public_key)


@pytest.mark.slow
def test_32_threads_1000_unwraps_each_with_a_rotation(world: World) -> None:
    kms: Any = world.kms_client
    other_arn = kms.create_key(Description="globex")["KeyMetadata"]["Arn"]
    _, other_kek = create_org(world.store, world.wrapper, OTHER, [other_arn], now=FIXED_NOW)
    pool = Pool(
        recordings_of(world, world.org, world.public_key, "k1")
        + recordings_of(world, world.org, add_kek(world, world.org, world.key_arn), "k0")
        + recordings_of(world, OTHER, KekPublicKey.from_der(other_kek.public_key), "g1")
    )
    # The decryptor under test: its own clients and KMS wrapper, so only its calls count.
    clients = AwsClients(AwsSettings(region=REGION))
    wrapper = KekWrapper(clients)
    store = KeyStore(clients.client("dynamodb"), world.store.table)
    decryptor = Decryptor(store, wrapper, max_age=MAX_AGE, now=world.clock)

    half = PER_THREAD // 2
    barrier = threading.Barrier(THREADS + 1)
    done_first = threading.Barrier(THREADS + 1)
    windows: list[set[str]] = [set(), set()]
    errors: list[str] = []
    count = [0]
    count_lock = threading.Lock()
    rotation_due, published = threading.Event(), threading.Event()

    def unwrap_some(rng: random.Random, n: int, window: int) -> None:
        for _ in range(n):
            rec = rng.choice(pool.snapshot())
            try:
                key = decryptor.unwrap(rec.org, rec.header)
            except Exception as exc:  # any error at all is a finding
                errors.append(f"{rec.recording_id}: {type(exc).__name__}")
                continue
            if (key.org, key.recording_id, key.data_key) != (
                rec.org,
                rec.recording_id,
                rec.data_key,
            ):
                errors.append(f"{rec.recording_id}: wrong key")
            with count_lock:
                windows[window].add(key.kek_id)
                count[0] += 1
                if count[0] == THREADS * half // 4:
                    rotation_due.set()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        unwrap_some(rng, half // 2, 0)
        published.wait()  # the rotation ran while the others were unwrapping
        unwrap_some(rng, half - half // 2, 0)
        done_first.wait()  # the main thread ends the age window
        barrier.wait()
        unwrap_some(rng, PER_THREAD - half, 1)

    def rotator() -> None:
        rotation_due.wait()
        pool.add(recordings_of(world, world.org, rotate(world), "k2"))
        published.set()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    rotation = threading.Thread(target=rotator)
    for t in [*threads, rotation]:
        t.start()
    barrier.wait()
    rotation.join()
    done_first.wait()
    world.clock.advance(MAX_AGE)  # every cached KEK and data key reaches its maximum age
    barrier.wait()
    for t in threads:
        t.join()

    report(
        "concurrency",
        {
            "unwraps": count[0],
            "errors": len(errors),
            "keks_window_1": len(windows[0]),
            "keks_window_2": len(windows[1]),
            "kms_calls": wrapper.kms_calls,
        },
    )
    assert errors == []
    assert count[0] == THREADS * PER_THREAD
    assert len(windows[0]) == len(windows[1]) == 4  # acme's three KEKs (one new), globex's
    assert wrapper.kms_calls == len(windows[0]) + len(windows[1])

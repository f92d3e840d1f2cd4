"""Issue 15, finding 10: plaintext playback copies do not outlive revocation.

The attack: the customer revokes, but the Lambda ``decrypt`` op's plaintext copies stay
in S3 for up to a day (the bucket's lifecycle rule), readable through their URLs until
those expire and by the platform's roles until the rule runs. Now the first access
refusal for an org that reaches the decryptor (unwrap, decrypt or access-check) deletes
that org's copies at once, and every copy carries its URL's expiry in its key, so the
rotation Lambda's sweep deletes it once the URL has lapsed. On moto S3 (in process).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
from typing import Any

import pytest

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.integrations.s3 import (
    EXPIRES_METADATA,
    PLAYBACK_PREFIX,
    sweep_playback_copies,
)
from kmsbridge.lifecycle.rotation import create_org
from kmsbridge.recordings.codec import read_header
from kmsbridge.services import Services, Settings
from tests.conftest import FIXED_NOW, World
from tests.harden import encrypt
from tests.integrations.test_jobs import load_handler

BYSTANDER = "bystander"


class Platform:
    """The decryptor Lambda's app over the world's decryptor, two orgs, two buckets."""

    def __init__(self, world: World, playback: str = "playback") -> None:
        self.world = world
        self.s3: Any = world.clients.client("s3")
        for bucket in ("recordings", "playback"):
            self.s3.create_bucket(Bucket=bucket)
        self.playback = playback
        config = Settings(table=world.store.table, playback_bucket=playback)
        self.app = LambdaApp(Services(config, clients=world.clients, decryptor=world.decryptor))
        arn = world.kms_client.create_key()["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
        _, kek = create_org(world.store, world.wrapper, BYSTANDER, [arn], now=FIXED_NOW)
        self.bystander_key = KekPublicKey.from_der(kek.public_key)

    def play(self, org: str, name: str, expires_in: int = 300) -> dict[str, Any]:
        public = self.world.public_key if org == self.world.org else self.bystander_key
        blob = encrypt(public, org, os.urandom(1000), name)
        self.s3.put_object(Bucket="recordings", Key=f"{org}/{name}", Body=blob)
        event = {"op": "decrypt", "org": org, "source": f"s3://recordings/{org}/{name}"}
        return self.app.handle(event | {"expires_in": expires_in})

    def copies(self, org: str = "") -> list[str]:
        listing = self.s3.list_objects_v2(Bucket="playback", Prefix=f"{PLAYBACK_PREFIX}{org}")
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def revoke(self) -> None:
        self.world.kms_client.disable_key(KeyId=self.world.key_id)  # type: ignore[attr-defined]
        self.world.clock.advance(61)  # past the caches: the next op asks KMS


def meet_the_refusal(p: Platform, op: str) -> dict[str, Any]:
    w = p.world
    if op == "unwrap":
        raw = read_header(io.BytesIO(w.encrypt(b"x"))).raw
        return p.app.handle({"op": "unwrap", "org": w.org, "header": _b64(raw)})
    if op == "decrypt":
        return p.play(w.org, "after-revocation.wav")
    return p.app.handle({"op": "access-check", "org": w.org})


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("op", ["unwrap", "decrypt", "access-check"])
def test_an_access_refusal_deletes_the_orgs_copies_at_once(
    world: World, op: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    p = Platform(world)
    for name in ("a.wav", "b.wav"):
        assert p.play(world.org, name)["ok"] is True
    assert p.play(BYSTANDER, "c.wav")["ok"] is True
    assert len(p.copies(world.org + "/")) == 2
    p.revoke()
    answer = meet_the_refusal(p, op)
    if op == "access-check":
        assert answer["state"] == "revoked"
    else:
        assert answer["error"]["code"] == "ACCESS_REVOKED"
    assert p.copies(world.org + "/") == []  # the plaintext is gone, not just its URL
    assert len(p.copies(BYSTANDER + "/")) == 1  # another org's copies stay
    purges = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "kmsbridge.audit" and '"playback-purge"' in r.getMessage()
    ]
    assert [(x["org"], x["outcome"], x["deleted"]) for x in purges] == [(world.org, "ok", 2)]


def test_a_failed_purge_never_hides_the_refusal(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmsbridge.audit")
    p = Platform(world, playback="no-such-bucket")  # the purge itself fails
    p.revoke()
    assert meet_the_refusal(p, "unwrap")["error"]["code"] == "ACCESS_REVOKED"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    assert ("playback-purge", "NOT_FOUND") in [(x["op"], x["outcome"]) for x in lines]


def test_a_copy_carries_its_urls_expiry_and_the_sweep_deletes_it_then(world: World) -> None:
    p = Platform(world)
    before = int(time.time())
    answer = p.play(world.org, "a.wav", expires_in=120)
    after = int(time.time())
    assert answer["ok"] is True and "X-Amz-Expires=120" in answer["url"]
    [key] = p.copies()
    expires = int(key.split("/")[2].split("-")[0])
    assert before + 120 <= expires <= after + 120  # no later than the URL's
    head = p.s3.head_object(Bucket="playback", Key=key)
    assert head["Metadata"] == {EXPIRES_METADATA: str(expires)}
    p.s3.put_object(Bucket="playback", Key="elsewhere/keep.txt", Body=b"not a copy")
    p.s3.put_object(Bucket="playback", Key=f"{PLAYBACK_PREFIX}x/odd-name/y", Body=b"?")
    assert sweep_playback_copies(p.s3, "playback", now=expires - 1) == 1  # the unreadable one
    assert p.copies() == [key]
    assert sweep_playback_copies(p.s3, "playback", org=BYSTANDER, now=expires) == 0
    assert sweep_playback_copies(p.s3, "playback", now=expires) == 1
    assert p.copies() == []
    assert p.s3.get_object(Bucket="playback", Key="elsewhere/keep.txt")["Body"].read()


def test_the_rotation_lambda_sweeps_expired_copies(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = Platform(world)
    now = int(time.time())
    expired = f"{PLAYBACK_PREFIX}{world.org}/{now - 1}-{'a' * 32}/old.wav"
    live = f"{PLAYBACK_PREFIX}{world.org}/{now + 600}-{'b' * 32}/new.wav"
    for key in (expired, live):
        p.s3.put_object(Bucket="playback", Key=key, Body=b"plaintext")
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    monkeypatch.setenv("KMSBRIDGE_PLAYBACK_BUCKET", "playback")
    handler = load_handler("rotation")
    assert handler.handler({"task": "sweep-playback"}, None) == {"playback_copies_deleted": 1}
    assert p.copies() == [live]
    p.s3.put_object(Bucket="playback", Key=expired, Body=b"plaintext")
    report = handler.handler({"source": "aws.scheduler"}, None)  # the rotation run sweeps too
    assert report["playback_copies_deleted"] == 1 and report["failed"] == []
    assert p.copies() == [live]

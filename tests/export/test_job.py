"""The bulk export job with moto's SQS and S3: batches, redelivery, manifest, status."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.errors import InvalidRequest, NotFound
from kmsbridge.export.archive import certificate_target
from kmsbridge.export.job import (
    JobRef,
    export_status,
    process_export_batch,
    start_export_job,
)
from tests.conftest import FIXED_NOW, World
from tests.legacy_pki import Identity, make_identity, register, rsa_key, smime_decrypt


class Bench:
    """Buckets, a queue, recordings in S3, and a recipient."""

    def __init__(self, world: World, tmp_path: Path, count: int) -> None:
        self.world = world
        self.s3: Any = world.clients.client("s3")
        self.sqs: Any = world.clients.client("sqs")
        self.s3.create_bucket(Bucket="recordings")
        self.s3.create_bucket(Bucket="exports")
        self.queue = self.sqs.create_queue(QueueName="jobs")["QueueUrl"]
        self.plain: dict[str, bytes] = {}
        for n in range(count):
            key = f"2026/11/call-{n}.enc"
            data = os.urandom(1000 + n)
            self.s3.put_object(Bucket="recordings", Key=key, Body=world.encrypt(data, f"call-{n}"))
            self.plain[key] = data
        self.recipient: Identity = make_identity("customer", rsa_key(10))
        self.cert, self.key = self.recipient.write(tmp_path, "customer")

    def start(self, keys: list[str]) -> JobRef:
        return start_export_job(
            self.world.clients,
            store=self.world.store,
            org=self.world.org,
            source_bucket="recordings",
            keys=keys,
            dest_bucket="exports",
            queue_url=self.queue,
            target=register(
                self.world.store,
                self.world.org,
                certificate_target(self.recipient.cert_pem(), FIXED_NOW),
            ),
            batch_size=2,
            now=FIXED_NOW,
        )

    def receive(self) -> list[dict[str, Any]]:
        """Receive everything queued; visibility 0 means SQS will deliver it again."""
        out = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            new = [m for m in got if m["MessageId"] not in {o["MessageId"] for o in out}]
            if not new:
                return out
            out.extend(new)

    def process(self, message: dict[str, Any]) -> dict[str, Any]:
        return process_export_batch(
            json.loads(message["Body"]),
            clients=self.world.clients,
            decryptor=self.world.decryptor,
            now=FIXED_NOW,
        )

    def objects(self, prefix: str) -> dict[str, str]:
        listing = self.s3.list_objects_v2(Bucket="exports", Prefix=prefix).get("Contents", [])
        return {o["Key"]: o["ETag"] for o in listing}


@pytest.fixture
def bench(world: World, tmp_path: Path) -> Bench:
    return Bench(world, tmp_path, 5)


def test_job_exports_every_batch_once_even_when_a_message_is_delivered_twice(
    bench: Bench, tmp_path: Path
) -> None:
    keys = [*bench.plain, "2026/11/missing.enc"]
    job = bench.start(keys)
    messages = bench.receive()
    assert sorted(json.loads(m["Body"])["batch"] for m in messages) == [1, 2, 3]
    assert export_status(bench.world.clients, job.uri)["state"] == "running"

    first = bench.process(messages[0])
    outputs = bench.objects(job.prefix + "recordings/")
    again = bench.sqs.receive_message(QueueUrl=bench.queue, MaxNumberOfMessages=10)["Messages"]
    redelivered = next(m for m in again if m["MessageId"] == messages[0]["MessageId"])
    assert bench.process(redelivered) == first  # the second delivery changes nothing
    assert bench.objects(job.prefix + "recordings/") == outputs
    # A worker that died after writing outputs but before its result: outputs are reused.
    bench.s3.delete_object(Bucket="exports", Key=f"{job.prefix}results/batch-000001.json")
    assert bench.process(redelivered) == first
    assert bench.objects(job.prefix + "recordings/") == outputs
    for message in messages[1:]:
        bench.process(message)

    manifest = json.loads(
        bench.s3.get_object(Bucket="exports", Key=job.prefix + "manifest.json")["Body"].read()
    )
    assert sorted(e["source"] for e in manifest["recordings"]) == sorted(bench.plain)
    assert len(bench.objects(job.prefix + "recordings/")) == 5
    assert [(e["source"], e["error"]["code"]) for e in manifest["failed"]] == [
        ("2026/11/missing.enc", "NOT_FOUND")
    ]
    for entry in manifest["recordings"]:
        data = bench.plain[entry["source"]]
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    sample = manifest["recordings"][0]
    blob = bench.s3.get_object(Bucket="exports", Key=sample["file"])["Body"].read()
    (tmp_path / "s.p7m").write_bytes(blob)
    smime_decrypt(tmp_path / "s.p7m", tmp_path / "s.out", bench.cert, bench.key)
    assert (tmp_path / "s.out").read_bytes() == bench.plain[sample["source"]]
    status = export_status(bench.world.clients, job.uri)
    assert (status["state"], status["exported"], status["failed"]) == ("complete", 5, 1)
    assert status["manifest"] == f"s3://exports/{job.prefix}manifest.json"


def test_revoked_key_is_recorded_per_recording(bench: Bench) -> None:
    job = bench.start(list(bench.plain)[:2])
    bench.world.kms_client.disable_key(KeyId=bench.world.key_id)  # type: ignore[attr-defined]
    (message,) = bench.receive()
    result = bench.process(message)
    assert {e["error"]["code"] for e in result["recordings"]} == {"ACCESS_REVOKED"}
    assert bench.objects(job.prefix + "recordings/") == {}


def test_bad_requests_are_refused(bench: Bench) -> None:
    with pytest.raises(InvalidRequest, match="no recordings"):
        bench.start([])
    with pytest.raises(InvalidRequest, match="malformed"):
        process_export_batch(
            {"type": "export", "org": "acme"},
            clients=bench.world.clients,
            decryptor=bench.world.decryptor,
        )
    with pytest.raises(NotFound):
        export_status(bench.world.clients, "s3://exports/exports/nope")
    with pytest.raises(InvalidRequest):
        JobRef.parse("exports/job")


def test_the_jobs_function_exports_only_to_its_export_bucket(bench: Bench) -> None:
    """KMSBRIDGE_EXPORT_BUCKET (Terraform's export_bucket_arn): a message naming another
    destination is refused before any recording is read, and nothing is written."""
    bench.start(list(bench.plain)[:2])
    body = json.loads(bench.receive()[0]["Body"])
    bench.s3.create_bucket(Bucket="elsewhere")
    forged = body | {"dest_bucket": "elsewhere"}
    with pytest.raises(InvalidRequest, match="exports only to its export bucket"):
        process_export_batch(
            forged,
            clients=bench.world.clients,
            decryptor=bench.world.decryptor,
            now=FIXED_NOW,
            export_bucket="exports",
        )
    assert bench.s3.list_objects_v2(Bucket="elsewhere").get("KeyCount", 0) == 0
    done = process_export_batch(
        body,
        clients=bench.world.clients,
        decryptor=bench.world.decryptor,
        now=FIXED_NOW,
        export_bucket="exports",
    )
    assert len(done["recordings"]) == 2


def test_the_export_bucket_setting_is_read_from_the_environment() -> None:
    from kmsbridge.services import Settings

    assert Settings.from_env({"KMSBRIDGE_EXPORT_BUCKET": "exports"}).export_bucket == "exports"
    assert Settings.from_env({}).export_bucket is None

"""Hardening 7, crashes: a bulk export worker SIGKILLed at random points, then rerun.

An export job of 12 recordings in batches of 4 (S3 and SQS on moto's server over HTTP),
re-encrypted under a KMS key. A worker subprocess (``tests/harden/export_worker.py``) is
killed with SIGKILL at seeded injected points (right after its Nth S3 PutObject: after an
export object, after a batch result), then once after a seeded random delay from the
parent; SQS redelivers the batch each one held; a last worker finishes the job.
Then nothing is lost or duplicated: the job is complete with 12 exported and 0 failed,
the manifest names each recording once, the job folder holds exactly one object per
recording (plus job.json, the batch results and the manifest), and each object decrypts
(with the official ESDK, through KMS) to its recording's plaintext.

Killing a rewrap is in ``test_harden_crash_rewrap.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import StrictAwsKmsMasterKeyProvider

from kmsbridge.export.archive import kms_target
from kmsbridge.export.job import JobRef, export_status, start_export_job
from tests.conftest import FIXED_NOW, World
from tests.harden import report
from tests.legacy_pki import register

pytestmark = [pytest.mark.server, pytest.mark.slow]
RECORDINGS, BATCH = 12, 4
ROOT = Path(__file__).resolve().parents[2]
FINISH_BOUND = 120  # seconds: a hang detector for the last worker, not a speed target


def worker(config: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.harden.export_worker", json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def objects(s3: Any, job: JobRef) -> list[str]:
    listing = s3.list_objects_v2(Bucket=job.bucket, Prefix=job.prefix)
    return sorted(o["Key"][len(job.prefix) :] for o in listing.get("Contents", []))


def test_killed_export_workers_lose_and_duplicate_nothing(
    server_world: World, moto_server: str
) -> None:
    world = server_world
    s3: Any = world.clients.client("s3")
    sqs: Any = world.clients.client("sqs")
    suffix = os.urandom(3).hex()
    source, dest = f"rec-{suffix}", f"exp-{suffix}"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=dest)
    queue = sqs.create_queue(QueueName=f"jobs-{suffix}")["QueueUrl"]
    plain = {}
    for n in range(RECORDINGS):
        data = os.urandom(2000 + n)
        s3.put_object(Bucket=source, Key=f"calls/c{n}", Body=world.encrypt(data, f"c{n}"))
        plain[f"c{n}"] = data
    archive_key = world.kms_client.create_key(Description="archive")["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
    job = start_export_job(
        world.clients,
        store=world.store,
        org=world.org,
        source_bucket=source,
        keys=sorted(f"calls/c{n}" for n in range(RECORDINGS)),
        dest_bucket=dest,
        queue_url=queue,
        target=register(world.store, world.org, kms_target(archive_key)),
        batch_size=BATCH,
        now=FIXED_NOW,
    )
    config = {
        "endpoint": moto_server,
        "table": world.store.table,
        "queue_url": queue,
        "job": job.uri,
    }

    rng = random.Random(7)
    crashes = []
    # Injected points: after this worker's Nth PutObject. A clean run makes 16 (12 exports,
    # 3 batch results, the manifest); four crashes of at most 3 each leave work to redo.
    for _ in range(4):
        point = rng.randint(1, 3)
        code = worker({**config, "crash_after": point}).wait(timeout=FINISH_BOUND)
        crashes.append((f"put-{point}", code))
    delayed = worker(config)
    delay = rng.uniform(0.8, 1.6)  # start-up takes about a second
    time.sleep(delay)
    delayed.send_signal(signal.SIGKILL)  # wherever it is (or already done: exit 0)
    crashes.append((f"delay-{delay:.2f}s", delayed.wait(timeout=FINISH_BOUND)))
    last = worker(config)
    _, err = last.communicate(timeout=FINISH_BOUND)
    assert last.returncode == 0, err.decode()[-2000:]

    status = export_status(world.clients, job.uri)
    assert (status["state"], status["exported"], status["failed"]) == ("complete", RECORDINGS, 0)
    manifest = json.loads(
        s3.get_object(Bucket=dest, Key=job.prefix + "manifest.json")["Body"].read()
    )
    entries = manifest["recordings"]
    assert sorted(e["recording"] for e in entries) == sorted(plain)  # each once
    files = sorted(e["file"][len(job.prefix) :] for e in entries)
    results = [f"results/batch-{b:06d}.json" for b in range(1, RECORDINGS // BATCH + 1)]
    assert objects(s3, job) == sorted([*files, *results, "job.json", "manifest.json"])
    esdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[archive_key])
    for entry in entries:
        body = s3.get_object(Bucket=dest, Key=entry["file"])["Body"].read()
        data, _ = esdk.decrypt(source=body, key_provider=provider)
        assert data == plain[entry["recording"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    report(
        "crashes/export",
        {
            "recordings": RECORDINGS,
            "killed": sum(code == -signal.SIGKILL for _, code in crashes),
            "points": " ".join(p for p, _ in crashes),
            "lost": 0,
            "duplicated": 0,
        },
    )
    assert all(code == -signal.SIGKILL for _, code in crashes[:-1]), crashes
    assert crashes[-1][1] in (-signal.SIGKILL, 0), crashes

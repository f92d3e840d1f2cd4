"""Issue 15 finding 12: a revoked period is revoked for every principal, bulk export included.

Reproduced before the fix: ``access revoke-window`` printed a Deny for the decryptor role
only, so the jobs role could still export the recordings of a revoked period. The printed
statement now names every principal (``"*"``) with ``StringEquals`` on
``kms:EncryptionContext:kmsbridge:kek``, and no role ARN is asked for. Applied with
PutKeyPolicy, the bulk export job (its own decryptor, as the jobs Lambda has) records
ACCESS_REVOKED for the revoked period's recording and exports the others. moto has no caller
principal, so the principal part is checked on the statement itself; the deny's effect is
moto's, through the documented fixture (``enforce_kek_deny_statements``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from kmsbridge.cli.main import main
from kmsbridge.clock import iso
from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.devtools.embedded import enforce_kek_deny_statements
from kmsbridge.export.archive import kms_target
from kmsbridge.export.job import process_export_batch, start_export_job
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.lifecycle.rotation import make_kek
from tests.conftest import FIXED_NOW, Clock, World
from tests.harden import encrypt
from tests.legacy_pki import register

LATER = FIXED_NOW + timedelta(days=90)


def test_the_export_job_cannot_export_a_revoked_period(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    enforce_kek_deny_statements()
    org = world.store.get_org(world.org)
    second = make_kek(world.wrapper, org=world.org, kms_key_arns=org.kms_keys, now=LATER)
    world.store.activate(org, second, iso(LATER))
    s3 = world.clients.client("s3")
    s3.create_bucket(Bucket="recordings")
    keys = {"first.enc": world.public_key, "second.enc": KekPublicKey.from_der(second.public_key)}
    for key, public in keys.items():
        s3.put_object(Bucket="recordings", Key=key, Body=encrypt(public, world.org, b"x", key))

    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    argv = ["--output", "json", "access", "revoke-window", world.org]
    assert main([*argv, "--from", "2026-11-02", "--to", "2026-11-30"]) == 0
    report = json.loads(capsys.readouterr().out)
    statement = report["statement"]
    assert statement["Principal"] == {"AWS": "*"} and "decryptor_role_arn" not in report
    assert statement["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:kmsbridge:kek": [world.kek_id]}
    }
    kms: Any = world.kms_client
    policy = json.loads(kms.get_key_policy(KeyId=world.key_id, PolicyName="default")["Policy"])
    policy["Statement"].append(statement)
    kms.put_key_policy(KeyId=world.key_id, PolicyName="default", Policy=json.dumps(policy))

    # The jobs Lambda: its own KEK wrapper and decryptor, nothing cached.
    jobs_decryptor = Decryptor(world.store, KekWrapper(world.clients), now=Clock())
    archive_key = str(kms.create_key()["KeyMetadata"]["Arn"])
    target = register(world.store, world.org, kms_target(archive_key))
    queue = world.clients.client("sqs").create_queue(QueueName="jobs")["QueueUrl"]
    s3.create_bucket(Bucket="exports")
    start_export_job(
        world.clients,
        store=world.store,
        org=world.org,
        source_bucket="recordings",
        keys=list(keys),
        dest_bucket="exports",
        queue_url=queue,
        target=target,
        now=LATER,
    )
    (message,) = world.clients.client("sqs").receive_message(QueueUrl=queue)["Messages"]
    result = process_export_batch(
        json.loads(message["Body"]), clients=world.clients, decryptor=jobs_decryptor
    )
    outcome = {
        e["source"]: e["error"]["code"] if not e["ok"] else "ok" for e in result["recordings"]
    }
    assert outcome == {"first.enc": "ACCESS_REVOKED", "second.enc": "ok"}

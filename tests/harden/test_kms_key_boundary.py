"""Issue 15 finding 2: nobody but the operator chooses which KMS key holds an org's KEKs.

The attack (reproduced before the fix): two tenants in one key table, the platform allowed
to use both tenants' keys. One queued message ``{"type": "rewrap", "org": "acme",
"kms_keys": [globex's key]}`` moved acme's KEKs under globex's key: acme's revocation then
did nothing and globex's owner could unwrap acme's KEKs. Now the message is refused, no KMS
call is made, nothing is written; a KEK item that names another key is refused before any
KMS call; only ``org set-kms-keys`` (audited, who and when recorded) changes the keys.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from kmsbridge.cli.main import main
from kmsbridge.clock import iso
from kmsbridge.crypto.kek import private_key_pkcs8
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import WrongOrg
from kmsbridge.integrations.aws_lambda.jobs import rewrap_message
from kmsbridge.keys.kms import UnregisteredKmsKey
from kmsbridge.lifecycle.rotation import create_org, rotate
from tests.conftest import FIXED_NOW, Clock, World
from tests.harden import header_length
from tests.integrations.test_jobs import load_handler, sqs_event


def snapshot(world: World, *orgs: str) -> Any:
    return [(world.store.get_org(o), world.store.list_keks(o)) for o in orgs]


def add_tenant(world: World, org: str = "globex") -> str:
    arn = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    create_org(world.store, world.wrapper, org, [arn], now=FIXED_NOW)
    return arn


def test_a_queued_message_cannot_move_a_tenants_keks_under_another_key(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    globex_key = add_tenant(world)
    rotate(world.store, world.wrapper, world.org, now=FIXED_NOW)  # two KEKs to steal
    before = snapshot(world, world.org, "globex")
    sqs = world.clients.client("sqs")
    url = sqs.create_queue(QueueName="kmsbridge-jobs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    attack = {"type": "rewrap", "org": world.org, "kms_keys": [globex_key]}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(attack))

    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    jobs = load_handler("jobs")
    event = sqs_event(sqs, url, arn["QueueArn"])
    response = jobs.handler(event, None)

    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert jobs.services.kms.kms_calls == 0  # refused before any KMS call
    assert snapshot(world, world.org, "globex") == before  # nothing written
    for kek in world.store.list_keks(world.org):
        assert globex_key not in kek.kms_keys
    # What a producer may send now names the org alone.
    assert rewrap_message(world.org) == {"type": "rewrap", "org": world.org}


def test_the_worker_rewraps_only_to_the_orgs_registered_keys(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tenant(world)
    before = snapshot(world, world.org, "globex")
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    jobs = load_handler("jobs")
    record = {"messageId": "m1", "body": json.dumps(rewrap_message(world.org))}
    assert jobs.handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert snapshot(world, world.org, "globex") == before  # already on its keys: no change


def test_a_kek_item_naming_another_tenants_key_is_refused_before_kms(world: World) -> None:
    """The state the old attack left behind (or a write to the table): refused, no call."""
    globex_key = add_tenant(world)
    record = world.store.get_kek(world.org, world.kek_id)
    world.store.update_kek(record, kms_keys=(globex_key,))
    decryptor = Decryptor(world.store, world.wrapper, max_age=0, now=Clock())
    calls = world.wrapper.kms_calls
    with pytest.raises(WrongOrg, match="not registered for org 'acme'"):
        blob = world.encrypt(b"a call")
        decryptor.unwrap(world.org, blob[: header_length(blob)])
    assert world.wrapper.kms_calls == calls
    checks = decryptor.check_access(world.org)
    assert [c.outcome for c in checks] == ["WRONG_ORG"] and world.wrapper.kms_calls == calls


def test_wrap_and_unwrap_refuse_an_unregistered_arn_before_kms(world: World, kek_pair: Any) -> None:
    globex_key = add_tenant(world)
    private, public = kek_pair
    pkcs8 = private_key_pkcs8(private)
    calls = world.wrapper.kms_calls
    context = {"org": world.org, "kek_id": public.kek_id, "registered": [world.key_arn]}
    with pytest.raises(UnregisteredKmsKey) as refused:
        world.wrapper.wrap(pkcs8, kms_key_arns=[world.key_arn, globex_key], **context)
    assert refused.value.code == "WRONG_ORG" and "no KMS call was made" in refused.value.message
    blob = world.store.get_kek(world.org, world.kek_id).wrapped_private_key
    assert blob is not None
    with pytest.raises(UnregisteredKmsKey):
        world.wrapper.unwrap(blob, kms_key_arns=[globex_key], **context)
    assert world.wrapper.kms_calls == calls


def test_only_the_audited_operator_command_changes_the_keys(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any
) -> None:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    old_blob = world.encrypt(b"before the change", "r1")
    new_key = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="kmsbridge.audit"):
        code = main(["--output", "json", "org", "set-kms-keys", world.org, "--kms-key", new_key])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["kms_keys"] == [new_key] and out["rewrapped"] == 1
    org = world.store.get_org(world.org)
    assert org.kms_keys == (new_key,) and org.previous_kms_keys == ()
    assert org.kms_keys_set_by and org.kms_keys_set_at and org.kms_keys_set_at >= iso(FIXED_NOW)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kmsbridge.audit"]
    (line,) = [a for a in lines if a["op"] == "org-set-kms-keys"]
    assert line["kms_keys"] == [new_key] and line["previous_kms_keys"] == [world.key_arn]
    assert line["set_by"] == org.kms_keys_set_by
    # The old key is no longer needed: disable it, the recording still plays.
    world.kms_client.disable_key(KeyId=world.key_id)  # type: ignore[attr-defined]
    decryptor = Decryptor(world.store, world.wrapper, max_age=0, now=Clock())
    header = old_blob[: header_length(old_blob)]
    assert decryptor.unwrap(world.org, header).recording_id == "r1"


def test_a_new_key_the_platform_cannot_use_is_refused_with_nothing_written(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    bad = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    world.kms_client.disable_key(KeyId=bad.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    before = snapshot(world, world.org)
    code = main(["org", "set-kms-keys", world.org, "--kms-key", bad])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ACCESS_REVOKED: ") and err.count("\n") == 1
    assert snapshot(world, world.org) == before

"""Rewrap fanned out over SQS: enqueue, the jobs Lambda, partial batch failures (moto)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kmsbridge.aws import AwsClients
from kmsbridge.errors import InvalidRequest
from kmsbridge.integrations.aws_lambda.jobs import enqueue, process_batch, rewrap_message
from kmsbridge.lifecycle.rewrap import set_org_kms_keys
from kmsbridge.lifecycle.rotation import create_org
from tests.conftest import FIXED_NOW, World

ROOT = Path(__file__).resolve().parents[2]
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0b9b2c4e-0000-4000-8000-000000000000"


def load_handler(name: str) -> ModuleType:
    """A Lambda handler module, loaded from its file as the runtime does (fresh each time)."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_handler", ROOT / "lambda" / name / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def queue(aws: AwsClients) -> tuple[Any, str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="kmsbridge-jobs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return sqs, url, arn["QueueArn"]


def sqs_event(sqs: Any, url: str, arn: str) -> dict[str, Any]:
    """What Lambda's SQS event source hands the function, from messages SQS delivers."""
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def add_org(world: World, org: str) -> str:
    arn = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    create_org(world.store, world.wrapper, org, [arn], now=FIXED_NOW)
    return arn


def test_fan_out_rewraps_each_org_and_reports_only_the_failed_message(
    world: World, queue: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url, arn = queue
    globex_key = add_org(world, "globex")
    new = str(world.kms_client.create_key()["KeyMetadata"]["Arn"])  # type: ignore[attr-defined]
    world.kms_client.disable_key(KeyId=globex_key.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    for org in ("acme", "globex"):  # the operator registers the new key; the jobs carry it out
        set_org_kms_keys(world.store, org, [new], set_by="operator")
    sent = enqueue(sqs, url, [rewrap_message(o) for o in ("acme", "globex")])
    assert sent == 2
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"type": "frobnicate"}))
    sqs.send_message(QueueUrl=url, MessageBody="not json")

    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    jobs = load_handler("jobs")
    event = sqs_event(sqs, url, arn)
    by_org = {
        json.loads(r["body"])["org"]: r["messageId"] for r in event["Records"] if "org" in r["body"]
    }
    response = jobs.handler(event, None)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert by_org["acme"] not in failed and by_org["globex"] in failed
    assert len(failed) == 3  # globex (its old key is disabled), the unknown type, the bad body
    assert world.store.get_org("acme").kms_keys == (new,)
    assert world.store.get_org("acme").previous_kms_keys == ()
    assert world.store.get_org("globex").previous_kms_keys == (globex_key,)  # not done yet

    # The customer re-enables the key; SQS redelivers the failed message; it succeeds.
    world.kms_client.enable_key(KeyId=globex_key.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    retry = {"Records": [r for r in event["Records"] if r["messageId"] == by_org["globex"]]}
    assert jobs.handler(retry, None) == {"batchItemFailures": []}
    assert world.store.get_org("globex").kms_keys == (new,)
    assert world.store.get_org("globex").previous_kms_keys == ()


def test_a_fifo_batch_stops_at_the_first_failure() -> None:
    ran: list[str] = []

    def job(body: dict[str, Any]) -> None:
        if body["n"] == 1:
            raise InvalidRequest("no")
        ran.append(body["n"])

    records = [
        {
            "messageId": f"m{n}",
            "body": json.dumps({"type": "t", "n": n}),
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs.fifo",
        }
        for n in range(3)
    ]
    response = process_batch({"Records": records}, {"t": job})
    assert ran == [0]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["m1", "m2"]
    standard = [dict(r, eventSourceARN="arn:aws:sqs:us-east-1:1:jobs") for r in records]
    ran.clear()
    response = process_batch({"Records": standard}, {"t": job})
    assert ran == [0, 2] and response["batchItemFailures"] == [{"itemIdentifier": "m1"}]


def test_an_unexpected_exception_fails_only_its_message() -> None:
    def job(body: dict[str, Any]) -> None:
        if body["n"] == 0:
            raise RuntimeError("a bug")

    records = [{"messageId": f"m{n}", "body": json.dumps({"type": "t", "n": n})} for n in (0, 1)]
    assert process_batch({"Records": records}, {"t": job}) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }


def test_malformed_rewrap_jobs_and_events_are_refused(aws: AwsClients) -> None:
    with pytest.raises(InvalidRequest):
        process_batch({"not": "sqs"}, {})
    jobs = load_handler("jobs")
    bodies = [
        {"type": "rewrap", "org": "acme"},
        {"type": "rewrap", "org": "acme", "kms_keys": "arn"},
        {"type": "rewrap", "org": "bad org", "kms_keys": [KEY_ARN]},
        {"type": "rewrap", "org": "acme", "kms_keys": ["alias/x"]},
    ]
    records = [{"messageId": str(i), "body": json.dumps(b)} for i, b in enumerate(bodies)]
    response = process_batch({"Records": records}, jobs.JOBS)
    assert len(response["batchItemFailures"]) == 4


def test_enqueue_sends_in_batches_of_ten(queue: tuple[Any, str, str]) -> None:
    sqs, url, _ = queue
    assert enqueue(sqs, url, ({"type": "rewrap", "org": f"o{i}"} for i in range(23))) == 23
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "23"


def test_adding_a_job_type_is_one_entry(aws: AwsClients) -> None:
    jobs = load_handler("jobs")
    assert set(jobs.JOBS) == {"rewrap", "export"}
    table = {**jobs.JOBS, "export": lambda body: None}
    record = {"messageId": "m", "body": json.dumps({"type": "export", "org": "acme"})}
    assert process_batch({"Records": [record]}, table) == {"batchItemFailures": []}


def test_the_jobs_lambda_runs_export_batches_too(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.export.test_job import Bench

    bench = Bench(world, tmp_path, 3)
    job = bench.start(list(bench.plain))
    arn = bench.sqs.get_queue_attributes(QueueUrl=bench.queue, AttributeNames=["QueueArn"])
    monkeypatch.setenv("KMSBRIDGE_TABLE", world.store.table)
    event = sqs_event(bench.sqs, bench.queue, arn["Attributes"]["QueueArn"])
    assert len(event["Records"]) == 2  # two batches of at most two recordings
    assert load_handler("jobs").handler(event, None) == {"batchItemFailures": []}
    manifest = bench.s3.get_object(Bucket="exports", Key=job.prefix + "manifest.json")
    assert len(json.loads(manifest["Body"].read())["recordings"]) == 3

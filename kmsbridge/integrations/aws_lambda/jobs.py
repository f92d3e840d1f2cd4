"""Bulk work fanned out as SQS messages, one org per message, run by ``lambda/jobs``.

A message body is JSON with a ``type`` and that type's fields, e.g. ``{"type": "rewrap",
"org": "acme"}``: a rewrap message names no KMS key, the worker moves the org's KEKs to the
keys registered in its settings item (so whoever can send to the queue cannot choose them).
The handler maps each type to a function of the body (``JobTable``); ``process_batch`` runs
each record and answers SQS's partial batch response, ``{"batchItemFailures":
[{"itemIdentifier": messageId}, ...]}``, so SQS redelivers only the failed messages (the
event source mapping must enable ``ReportBatchItemFailures``). Jobs must be idempotent: SQS
delivers at least once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.aws import error_for
from kmsbridge.errors import InternalError, InvalidRequest, KmsBridgeError
from kmsbridge.export.job import process_export_batch
from kmsbridge.formats import validate_org
from kmsbridge.keys.kms import KekWrapper
from kmsbridge.keys.table import KeyStore
from kmsbridge.lifecycle.rewrap import RewrapResult, rewrap_org
from kmsbridge.services import Services

# Under kmsbridge.lambda: the Lambda handlers send that logger to stdout as plain lines.
log = logging.getLogger("kmsbridge.lambda.jobs")

JobTable = Mapping[str, Callable[[dict[str, Any]], object]]
SQS_BATCH_LIMIT = 10


# ---------------------------------------------------------------- producing


def rewrap_message(org: str) -> dict[str, Any]:
    """Finish moving the org's KEKs to its registered KMS keys (``org set-kms-keys``)."""
    return {"type": "rewrap", "org": validate_org(org)}


def enqueue(sqs: Any, queue_url: str, messages: Iterable[dict[str, Any]]) -> int:
    """Send the messages in batches of ten; raise if SQS refused any (resending is safe)."""
    sent = 0
    batch: list[dict[str, Any]] = []
    for message in messages:
        batch.append(message)
        if len(batch) == SQS_BATCH_LIMIT:
            sent += _send(sqs, queue_url, batch)
            batch = []
    if batch:
        sent += _send(sqs, queue_url, batch)
    return sent


def _send(sqs: Any, queue_url: str, batch: list[dict[str, Any]]) -> int:
    entries = [
        {"Id": str(i), "MessageBody": json.dumps(m, sort_keys=True)} for i, m in enumerate(batch)
    ]
    try:
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except (ClientError, BotoCoreError) as exc:
        raise error_for(exc, "sqs", what="the jobs queue (nothing more was sent)") from exc
    failed = response.get("Failed", [])
    if failed:
        raise InternalError(
            f"SQS refused {len(failed)} of {len(batch)} messages "
            f"({failed[0].get('Code', '')}); enqueue again (the jobs are idempotent)"
        )
    return len(batch)


# ---------------------------------------------------------------- consuming


def process_batch(event: Mapping[str, Any], jobs: JobTable) -> dict[str, Any]:
    """Run each SQS record's job; report the ones that failed for SQS to redeliver.

    On a FIFO queue the first failure stops the batch and every later record is reported
    too, so order within a message group is kept (as the Lambda documentation requires).
    """
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidRequest("not an SQS event: no Records")
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        fifo = str(record.get("eventSourceARN", "")).endswith(".fifo")
        if failures and fifo:
            failures.append({"itemIdentifier": message_id})
            continue
        if not run_record(record, jobs):
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def run_record(record: Mapping[str, Any], jobs: JobTable) -> bool:
    """One record: True when its job finished. Logs the outcome, never the body."""
    fields: dict[str, Any] = {"message_id": record.get("messageId")}
    try:
        body = parse_body(record.get("body"))
        fields |= {"type": body["type"], "org": body.get("org")}
        job = jobs.get(body["type"])
        if job is None:
            raise InvalidRequest(f"unknown job type {body['type']!r}")
        job(body)
    except KmsBridgeError as exc:
        log.warning(json.dumps(fields | {"outcome": exc.code, "message": exc.message}))
        return False
    except Exception as exc:  # one bad message must not fail (and redeliver) the whole batch
        log.error(json.dumps(fields | {"outcome": "INTERNAL", "error": type(exc).__name__}))
        return False
    log.info(json.dumps(fields | {"outcome": "ok"}))
    return True


def parse_body(body: object) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if isinstance(body, str) else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        raise InvalidRequest("a job message is a JSON object with a 'type'")
    return parsed


def run_rewrap(store: KeyStore, kms: KekWrapper, body: Mapping[str, Any]) -> RewrapResult:
    """The ``rewrap`` job: ``{"type": "rewrap", "org": ORG}``, to the org's registered keys.

    A message with any other field (``kms_keys`` above all) is refused before any read or
    KMS call: the target keys are the operator's decision, never the message's.
    """
    extra = sorted(set(body) - {"type", "org"})
    if extra:
        raise InvalidRequest(
            f"a rewrap job names only its org, not {', '.join(extra)}: the worker rewraps "
            "to the org's registered KMS keys (kmsbridge org set-kms-keys)"
        )
    return rewrap_org(store, kms, validate_org(body.get("org")))


def job_table(services: Services) -> JobTable:
    """Every job type and its function, on ``services`` (the Lambda's and ``jobs work``'s)."""
    return {
        "rewrap": lambda body: run_rewrap(services.store, services.kms, body),
        "export": lambda body: process_export_batch(
            body,
            clients=services.clients,
            decryptor=services.decryptor,
            export_bucket=services.settings.export_bucket,
        ),
    }

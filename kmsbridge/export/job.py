"""Bulk export as a job: recordings in S3, split into SQS messages, exported batch by batch.

``start_export_job`` refuses a recipient not registered for the org, writes ``job.json``
under the job's folder (``s3://DEST/PREFIX/JOB_ID/``) and sends one SQS message per batch
of source keys: ``{"type": "export", "job": ..., "batch": N, "org": ..., "source_bucket":
..., "keys": [...], "dest_bucket": ..., "job_prefix": ..., "recipient": ID}``. The jobs
Lambda gives each message to ``process_export_batch``, which checks it against its job
record before any work (same job, org, source bucket and recipient; the batch's keys
hash to the one recorded) and takes the recipient from the org's registry, never from the
message: a hand-written message exports nothing, anywhere. With ``signing_key`` (a KMS
ECC_NIST_P384 SIGN_VERIFY key, recorded in ``job.json``) the manifest gets
``manifest.json.sig`` and ``manifest-signer.pem`` beside it (``export/signing.py``).

Idempotent, because SQS delivers at least once: every output key is derived from its
source key (``recordings/...``); an output that exists is reused, not rewritten, and
outputs are put with ``If-None-Match: *`` so two deliveries racing write one object.
A finished batch leaves ``results/batch-NNNNNN.json``; a redelivered message whose result
exists does nothing more. The worker that sees every batch's result writes
``manifest.json`` from them (same content whoever writes it). Results and the manifest are
put with ``If-None-Match: *`` too: nothing of a job is ever overwritten. A retryable failure
(KMS throttled or unreachable) raises, so SQS redelivers the message; other per-recording
failures (missing object, revoked key, damaged file) are recorded in the batch result.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.aws import AwsClients, client_error_code, error_for, translated
from kmsbridge.clock import iso, parse_iso, utcnow
from kmsbridge.decryptor.decryptor import Decryptor
from kmsbridge.errors import InternalError, InvalidRequest, KmsBridgeError, NotFound
from kmsbridge.export.archive import (
    Exporter,
    ExportTarget,
    check_registered,
)
from kmsbridge.export.manifest import MANIFEST_NAME, entry_name, make_manifest, manifest_json
from kmsbridge.export.recipients import registered_recipient, target_of
from kmsbridge.export.signing import ManifestSigner
from kmsbridge.formats import validate_org
from kmsbridge.keys.table import KeyStore
from kmsbridge.legacy.playback import member_error

DEFAULT_BATCH_SIZE = 20
MAX_BATCH_SIZE = 100  # 100 keys of up to 1 KiB stay well under SQS's 256 KiB message limit
JOB_FILE = "job.json"
MESSAGE_TYPE = "export"


@dataclass(frozen=True)
class JobRef:
    """Where a job lives: ``s3://bucket/prefix`` (the prefix ends with the job id and /)."""

    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def job_id(self) -> str:
        return self.prefix.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def parse(cls, uri: str) -> JobRef:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            raise InvalidRequest(
                f"a job is named by its folder, s3://BUCKET/PREFIX/JOB, not {uri!r}"
            )
        bucket, prefix = uri[5:].split("/", 1)
        if not bucket or not prefix.strip("/"):
            raise InvalidRequest(
                f"a job is named by its folder, s3://BUCKET/PREFIX/JOB, not {uri!r}"
            )
        return cls(bucket, prefix.rstrip("/") + "/")


# ---------------------------------------------------------------- start


def start_export_job(
    clients: AwsClients,
    *,
    store: KeyStore,
    org: str,
    source_bucket: str,
    keys: Sequence[str],
    dest_bucket: str,
    queue_url: str,
    target: ExportTarget,
    dest_prefix: str = "exports/",
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
    signing_key: str | None = None,
) -> JobRef:
    """Record the job in S3 and queue its batches; returns where its results will be."""
    validate_org(org)
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise InvalidRequest("the export job has no recordings")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InvalidRequest(f"batch size must be 1 to {MAX_BATCH_SIZE}")
    check_registered(store, org, target)
    now = now or utcnow()
    job_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{os.urandom(4).hex()}"
    job = JobRef(dest_bucket, f"{dest_prefix.strip('/')}/{job_id}/".lstrip("/"))
    batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
    record = {
        "kmsbridge_export_job": 1,
        "job": job_id,
        "org": org,
        "created_at": iso(now),
        "source_bucket": source_bucket,
        "batches": len(batches),
        "batch_keys": [_digest(batch) for batch in batches],
        "recordings": len(keys),
        "recipient": target.recipient_id,
        **target.describe(),
    }
    if signing_key is not None:
        ManifestSigner(clients, signing_key).public_key_pem()  # refuse a wrong key now
        record["signing_key"] = signing_key
    s3 = clients.client("s3")
    with translated("s3", "the job folder"):
        s3.put_object(
            Bucket=dest_bucket, Key=job.prefix + JOB_FILE, Body=_json(record), IfNoneMatch="*"
        )
    common = _message_common(job, org, source_bucket, target)
    messages = [{**common, "batch": n, "keys": batch} for n, batch in enumerate(batches, 1)]
    _send(clients.client("sqs"), queue_url, messages)
    return job


def _message_common(
    job: JobRef, org: str, source_bucket: str, target: ExportTarget
) -> dict[str, Any]:
    return {
        "type": MESSAGE_TYPE,
        "job": job.job_id,
        "org": org,
        "source_bucket": source_bucket,
        "dest_bucket": job.bucket,
        "job_prefix": job.prefix,
        "recipient": target.recipient_id,
    }


def _digest(keys: list[str]) -> str:
    return hashlib.sha256(json.dumps(keys).encode("utf-8")).hexdigest()


def _send(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):  # SendMessageBatch takes at most 10
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(m, sort_keys=True)}
            for i, m in enumerate(messages[start : start + 10])
        ]
        with translated("sqs", "the job queue"):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise InternalError(f"the job queue refused {len(response['Failed'])} message(s)")


# ---------------------------------------------------------------- one batch


def process_export_batch(
    message: Mapping[str, Any],
    *,
    clients: AwsClients,
    decryptor: Decryptor,
    now: datetime | None = None,
    export_bucket: str | None = None,
) -> dict[str, Any]:
    """Export one batch (an SQS message body) to the job's folder; safe to run twice.

    With ``export_bucket`` (the jobs function's KMSBRIDGE_EXPORT_BUCKET), a message naming
    any other destination is refused before anything is read, decrypted or written: the
    function's role may write there, and a message must not choose where plaintext-derived
    exports go.
    """
    job, batch, org, keys = _parse_message(message)
    if export_bucket is not None and job.bucket != export_bucket:
        raise InvalidRequest(
            f"this deployment exports only to its export bucket, not to {job.bucket!r}"
        )
    s3 = clients.client("s3")
    record = _job_record(s3, job)
    _check_against_record(message, record, job, batch, keys)
    recipient = registered_recipient(decryptor.store, org, str(message["recipient"]))
    target = target_of(recipient, now)
    result_key = f"{job.prefix}results/batch-{batch:06d}.json"
    done = _get_json(s3, job.bucket, result_key)
    if done is None:
        source_bucket = str(message["source_bucket"])
        with Exporter(org, decryptor, target, clients) as exporter:
            entries = [
                _export_object(s3, exporter, source_bucket, key, job, target.suffix) for key in keys
            ]
        done = {"job": job.job_id, "batch": batch, "recordings": entries}
        if not _put_new(s3, job.bucket, result_key, _json(done)):
            done = _get_json(s3, job.bucket, result_key) or done  # another delivery won
    _finish_if_complete(s3, job, clients)
    return done


def _parse_message(message: Mapping[str, Any]) -> tuple[JobRef, int, str, list[str]]:
    try:
        if message["type"] != MESSAGE_TYPE:
            raise InvalidRequest(f"not an export message (type {message['type']!r})")
        job = JobRef(str(message["dest_bucket"]), str(message["job_prefix"]))
        batch, org, keys = int(message["batch"]), validate_org(message["org"]), message["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise InvalidRequest("an export message's keys must be a list of S3 keys")
        str(message["recipient"])
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest("the export message is malformed") from None
    return job, batch, org, keys


def _check_against_record(
    message: Mapping[str, Any], record: dict[str, Any], job: JobRef, batch: int, keys: list[str]
) -> None:
    """The message must be one its job sent: nothing in it is trusted beyond the record."""
    same = all(
        message.get(name) == record.get(name)
        for name in ("job", "org", "source_bucket", "recipient")
    )
    digests = record.get("batch_keys")
    if (
        not same
        or record.get("job") != job.job_id
        or not isinstance(digests, list)
        or not 1 <= batch <= len(digests)
        or digests[batch - 1] != _digest(keys)
    ):
        raise InvalidRequest(
            "the export message does not match its job record (job, org, source, recipient "
            "or recordings); nothing was exported"
        )


def _put_new(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    """Put an object only if none is there; False when one already is (never overwritten)."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    except ClientError as exc:
        if client_error_code(exc) in ("PreconditionFailed", "412"):
            return False
        raise error_for(exc, "s3", what=f"s3://{bucket}/{key}") from exc
    except BotoCoreError as exc:
        raise error_for(exc, "s3", what=f"s3://{bucket}/{key}") from exc
    return True


def _export_object(
    s3: Any, exporter: Exporter, source_bucket: str, key: str, job: JobRef, suffix: str
) -> dict[str, Any]:
    output = job.prefix + entry_name(key, suffix)
    entry: dict[str, Any] = {"source": key, "file": output}
    try:
        existing = _head(s3, job.bucket, output)
        if existing is None:
            existing = _export_new(s3, exporter, source_bucket, key, job.bucket, output)
    except KmsBridgeError as exc:
        if exc.retryable:
            raise  # SQS redelivers the message; nothing of this recording was written
        return {**entry, "ok": False, "error": exc.to_dict()}
    except BotoCoreError as exc:
        raise error_for(exc, "s3", what=f"s3://{source_bucket}/{key}") from exc
    except Exception as exc:  # a hostile recording fails alone, not the batch (no poison loop)
        return {**entry, "ok": False, "error": member_error(exc).to_dict()}
    return {**entry, "ok": True, **existing}


def _export_new(
    s3: Any, exporter: Exporter, source_bucket: str, key: str, bucket: str, output: str
) -> dict[str, Any]:
    with translated("s3", f"s3://{source_bucket}/{key}"):
        body = s3.get_object(Bucket=source_bucket, Key=key)["Body"]
    with body:
        exported = exporter.export(body, name=key)
    found = {
        "recording": exported.recording_id,
        "size": exported.size,
        "sha256": exported.sha256,
        "file_sha256": exported.file_sha256,
        "kek": exported.kek_id,
    }
    metadata = {k: quote(str(v), safe="") for k, v in found.items()}
    try:
        with exported.open_ciphertext() as ciphertext:
            s3.put_object(
                Bucket=bucket, Key=output, Body=ciphertext, Metadata=metadata, IfNoneMatch="*"
            )
    except ClientError as exc:
        if client_error_code(exc) not in ("PreconditionFailed", "412"):
            raise error_for(exc, "s3", what=f"the export s3://{bucket}/{output}") from exc
        return _head(s3, bucket, output) or found  # another delivery wrote it first
    finally:
        exported.discard()
    return found


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        response = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = error_for(exc, "s3", what=f"s3://{bucket}/{key}")
        if isinstance(error, NotFound):
            return None
        raise error from exc
    meta = {k: unquote(v) for k, v in response.get("Metadata", {}).items()}
    return {
        "recording": meta.get("recording"),
        "size": int(meta.get("size", "0")),
        "sha256": meta.get("sha256"),
        "file_sha256": meta.get("file_sha256"),
        "kek": meta.get("kek"),
    }


# ---------------------------------------------------------------- manifest and status


def _finish_if_complete(s3: Any, job: JobRef, clients: AwsClients) -> dict[str, Any] | None:
    record = _job_record(s3, job)
    results = _results(s3, job)
    if len(results) < int(record["batches"]):
        return None
    entries = [e for r in sorted(results, key=lambda r: int(r["batch"])) for e in r["recordings"]]
    described = ("format", "certificate_", "kms_", "pgp_")
    target = {k: record[k] for k in record if k.startswith(described)}
    exported = [e for e in entries if e["ok"]]
    manifest = make_manifest(record["org"], target, exported, parse_iso(record["created_at"]))
    manifest |= {
        "job": record["job"],
        "source_bucket": record["source_bucket"],
        "failed": [e for e in entries if not e["ok"]],
    }
    body = manifest_json(manifest)
    # Signed before anything is written: a manifest is published with its signature or not.
    # ECDSA signatures differ run to run, but the manifest's bytes do not (they come from
    # job.json and the results), so a signature left by an earlier run still verifies it.
    extra = (
        ManifestSigner(clients, record["signing_key"]).sign_manifest(body)
        if record.get("signing_key")
        else {}
    )
    for name, data in extra.items():
        _put_new(s3, job.bucket, job.prefix + name, data)
    _put_new(s3, job.bucket, job.prefix + MANIFEST_NAME, body)
    return manifest


def export_status(clients: AwsClients, job_uri: str) -> dict[str, Any]:
    """Progress of a job: batches done of all, recordings exported and failed, the manifest."""
    job = JobRef.parse(job_uri)
    s3 = clients.client("s3")
    record = _job_record(s3, job)
    results = _results(s3, job)
    entries = [e for r in results for e in r["recordings"]]
    complete = len(results) >= int(record["batches"])
    return {
        "job": job.uri,
        "org": record["org"],
        "state": "complete" if complete else "running",
        "batches": int(record["batches"]),
        "batches_done": len(results),
        "recordings": int(record["recordings"]),
        "exported": sum(1 for e in entries if e["ok"]),
        "failed": sum(1 for e in entries if not e["ok"]),
        "manifest": f"{job.uri}manifest.json" if complete else None,
    }


def _job_record(s3: Any, job: JobRef) -> dict[str, Any]:
    record = _get_json(s3, job.bucket, job.prefix + JOB_FILE)
    if record is None:
        raise NotFound(f"no export job at {job.uri}")
    return record


def _results(s3: Any, job: JobRef) -> list[dict[str, Any]]:
    out = []
    with translated("s3", "the job folder"):
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=job.bucket, Prefix=job.prefix + "results/"
        )
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    for key in keys:
        result = _get_json(s3, job.bucket, key)
        if result is not None:
            out.append(result)
    return out


def _get_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        error = error_for(exc, "s3", what=f"s3://{bucket}/{key}")
        if isinstance(error, NotFound):
            return None
        raise error from exc
    data: dict[str, Any] = json.loads(body)
    return data


def _json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")

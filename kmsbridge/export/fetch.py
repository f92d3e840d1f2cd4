"""Fetch a finished bulk export job from S3 as one zip, like ``export_archive`` makes.

The zip holds the job's ``manifest.json`` byte for byte, with its signature files when the
job signed it (``manifest.json.sig``, ``manifest-signer.pem``: ``export verify`` and openssl
check what the job wrote), and every exported recording under the name
the manifest gives it (``file``), so one reader handles both kinds of archive. Each object
is copied in 1 MiB chunks (memory stays flat whatever the size); the zip appears whole
or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from typing import Any

from kmsbridge.aws import AwsClients, translated
from kmsbridge.errors import IntegrityError, InvalidRequest, NotFound
from kmsbridge.export.job import JobRef, export_status
from kmsbridge.export.manifest import MANIFEST_NAME
from kmsbridge.export.signing import SIGNATURE_NAME, SIGNER_NAME
from kmsbridge.files import atomic_output

COPY_CHUNK_BYTES = 1024 * 1024


def fetch_job(
    clients: AwsClients,
    job_uri: str,
    archive: str | os.PathLike[str],
    *,
    replace: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Download a complete job's manifest and recordings into ``archive``; the manifest."""
    job = JobRef.parse(job_uri)
    status = export_status(clients, job.uri)
    if status["state"] != "complete":
        raise InvalidRequest(
            f"export job {job.uri} is not finished ({status['batches_done']} of "
            f"{status['batches']} batches): kmsbridge export status {job.uri} --wait"
        )
    s3 = clients.client("s3")
    raw = _read(s3, job.bucket, job.prefix + MANIFEST_NAME)
    manifest: dict[str, Any] = json.loads(raw)
    files = [_member(entry, job) for entry in manifest.get("recordings", [])]
    with atomic_output(archive, replace=replace) as out, zipfile.ZipFile(out, "w") as zf:
        for done, file in enumerate(files, 1):
            with translated("s3", f"s3://{job.bucket}/{file}"):
                body = s3.get_object(Bucket=job.bucket, Key=file)["Body"]
            with body, zf.open(file, "w", force_zip64=True) as member:
                shutil.copyfileobj(body, member, COPY_CHUNK_BYTES)
            if progress is not None:
                progress(done, len(files), file)
        zf.writestr(MANIFEST_NAME, raw)
        for name in (SIGNATURE_NAME, SIGNER_NAME):
            signed = _read_if_there(s3, job.bucket, job.prefix + name)
            if signed is not None:
                zf.writestr(name, signed)
    return manifest


def _member(entry: Any, job: JobRef) -> str:
    """The manifest's object key for a recording, refused unless inside the job's folder."""
    file = entry.get("file") if isinstance(entry, dict) else None
    if (
        not isinstance(file, str)
        or not file.startswith(job.prefix + "recordings/")
        or ".." in file.split("/")
    ):
        raise IntegrityError(f"the manifest of {job.uri} names a file outside the job's folder")
    return file


def _read_if_there(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        return _read(s3, bucket, key)
    except NotFound:
        return None


def _read(s3: Any, bucket: str, key: str) -> bytes:
    with translated("s3", f"s3://{bucket}/{key}"):
        data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data

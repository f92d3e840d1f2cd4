"""Short-lived plaintext copies of recordings in S3, for players that want a URL.

``decrypt_to_playback_object`` streams an encrypted recording from S3 through
``decrypt_stream`` into an S3 multipart upload of a new object in the playback bucket,
part by part (8 MiB in memory at most), then returns a pre-signed GET URL. The object is
completed only after the whole recording authenticated; any failure aborts the upload,
so no partial plaintext object ever appears. Every part is written with SSE.

A copy must not outlive the customer's revocation by more than its URL (DESIGN.md
"Revocation bound"). Its key carries its expiry, the URL's (``playback/<org>/<expiry,
epoch seconds>-<id>/<name>``, also in its ``kmsbridge-expires`` metadata), so
``sweep_playback_copies`` (run by the rotation Lambda on its schedule) deletes expired
copies from a listing alone; ``delete_playback_copies`` deletes all of an org's copies
(the decryptor calls it on an access refusal). The bucket's lifecycle rule (one day,
S3's finest grain) stays as the backstop.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from typing import IO, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.aws import client_error_code, error_for, error_for_code, translated
from kmsbridge.errors import IntegrityError, InternalError, InvalidRequest, KmsBridgeError, NotFound
from kmsbridge.recordings.codec import DataKeySource, RecordingInfo, decrypt_stream
from kmsbridge.recordings.ranges import HEADER_PROBE_BYTES

PLAYBACK_PREFIX = "playback/"
EXPIRES_METADATA = "kmsbridge-expires"
PART_BYTES = 8 * 1024 * 1024  # S3 parts are 5 MiB at least (except the last)
SSE = "AES256"


_S3_URL = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/key`` (a key is required: an object, not a prefix)."""
        match = _S3_URL.fullmatch(url)
        if match is None or match.group(2).endswith("/"):
            raise InvalidRequest(f"{url!r} is not an S3 object URL (s3://bucket/key)")
        return cls(match.group(1), match.group(2))


def open_object(s3: Any, location: S3Location) -> Any:
    """The object's body, a stream read as it is consumed (close it when done)."""
    with s3_errors(f"the object {location}"):
        return s3.get_object(Bucket=location.bucket, Key=location.key)["Body"]


def exists(s3: Any, location: S3Location) -> bool:
    with s3_errors(f"the object {location}"):
        try:
            s3.head_object(Bucket=location.bucket, Key=location.key)
        except ClientError as exc:
            if client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return True


@dataclass(frozen=True)
class PlaybackObject:
    location: S3Location
    url: str
    info: RecordingInfo


def decrypt_to_playback_object(
    s3: Any,
    source: S3Location,
    *,
    org: str,
    data_keys: DataKeySource,
    bucket: str,
    expires_in: int,
) -> PlaybackObject:
    """Decrypt ``source`` into a new SSE object in ``bucket``; a URL valid ``expires_in`` s.

    The copy's expiry (in its key) is taken before the upload, so it is never later than
    the URL's.
    """
    name = source.key.rsplit("/", 1)[-1] or "recording"
    expires = int(time.time()) + expires_in
    target = S3Location(bucket, f"{playback_prefix(org)}{expires}-{uuid.uuid4().hex}/{name}")
    with s3_errors(f"the recording {source}"):
        body = s3.get_object(Bucket=source.bucket, Key=source.key)["Body"]
    metadata = {EXPIRES_METADATA: str(expires)}
    try:
        with s3_errors("the playback bucket"), MultipartSink(s3, target, metadata) as sink:
            info = decrypt_stream(body, cast(IO[bytes], sink), org=org, data_keys=data_keys)
    finally:
        body.close()
    with s3_errors("the playback bucket"):
        url = s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": target.bucket, "Key": target.key},
            ExpiresIn=expires_in,
        )
    return PlaybackObject(target, str(url), info)


class MultipartSink:
    """A writable sink that uploads full parts as they fill; the object exists only on close.

    Used as a context manager: completes the upload when the block succeeds, aborts it
    (deleting the parts) when it fails.
    """

    def __init__(
        self,
        s3: Any,
        target: S3Location,
        metadata: dict[str, str] | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self._s3 = s3
        self._target = target
        self._metadata = metadata or {}
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def __enter__(self) -> MultipartSink:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._complete()
        else:
            self._abort()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        while len(self._buffer) >= self._part_bytes:
            self._upload(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]
        return len(data)

    def _upload(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._target.bucket,
                Key=self._target.key,
                ServerSideEncryption=SSE,
                ContentType="application/octet-stream",
                Metadata=self._metadata,
            )["UploadId"]
        number = len(self._parts) + 1
        etag = self._s3.upload_part(
            Bucket=self._target.bucket,
            Key=self._target.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def _complete(self) -> None:
        if self._buffer or not self._parts:
            self._upload(bytes(self._buffer))  # the last part may be short (or empty)
            self._buffer.clear()
        self._s3.complete_multipart_upload(
            Bucket=self._target.bucket,
            Key=self._target.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def _abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is None:
            return
        # If the abort fails, the bucket's lifecycle rule removes the parts; the first error wins.
        with suppress(ClientError, BotoCoreError):
            self._s3.abort_multipart_upload(
                Bucket=self._target.bucket, Key=self._target.key, UploadId=self._upload_id
            )


def playback_prefix(org: str) -> str:
    return f"{PLAYBACK_PREFIX}{org}/"


def delete_playback_copies(s3: Any, bucket: str, org: str) -> int:
    """Delete every playback copy of ``org`` now (its access was refused); how many."""
    with s3_errors("the playback bucket"):
        return _delete(s3, bucket, [key for key, _ in _copies(s3, bucket, playback_prefix(org))])


def sweep_playback_copies(
    s3: Any, bucket: str, *, org: str | None = None, now: float | None = None
) -> int:
    """Delete the playback copies (of ``org``, else of every org) whose expiry has passed.

    A key under ``playback/`` whose expiry cannot be read is deleted too: copies are
    short-lived by contract, so an unknown one is treated as expired (fail closed).
    """
    now = time.time() if now is None else now
    prefix = PLAYBACK_PREFIX if org is None else playback_prefix(org)
    with s3_errors("the playback bucket"):
        expired = [key for key, expires in _copies(s3, bucket, prefix) if expires <= now]
        return _delete(s3, bucket, expired)


_COPY_KEY = re.compile(rf"{re.escape(PLAYBACK_PREFIX)}[^/]+/(\d{{1,12}})-[0-9a-f]{{32}}/.+")


def _copies(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, float]]:
    """(key, expiry) of each object under ``prefix``; expiry 0 when its key carries none."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            match = _COPY_KEY.fullmatch(item["Key"])
            yield item["Key"], float(match.group(1)) if match else 0.0


def _delete(s3: Any, bucket: str, keys: list[str]) -> int:
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if answer.get("Errors"):  # per-key failures come in the answer, not as a ClientError
            code = str(answer["Errors"][0].get("Code", ""))
            raise error_for_code("s3", code, what="a playback copy")
    return len(keys)


def s3_errors(what: str) -> AbstractContextManager[None]:
    """S3 failures as library errors (botocore never leaks upward)."""
    return translated("s3", what)


@dataclass(frozen=True)
class S3Object:
    """A recording in S3, read with ranged GETs through the caller's boto3 S3 client."""

    client: Any = field(repr=False)
    bucket: str
    key: str

    def open_blob(self) -> _S3Blob:
        """Random access for ``recordings.ranges.decrypt_range``: ranged GETs of one version."""
        return _S3Blob(self)


_CONTENT_RANGE = re.compile(r"bytes \d+-\d+/(\d+)")


class _S3Blob:
    """Ranged GETs of one object version: later GETs must match the first one's ETag."""

    def __init__(self, obj: S3Object) -> None:
        self._obj = obj
        self._etag: str | None = None
        response = self._get(f"bytes=0-{HEADER_PROBE_BYTES - 1}")
        match = _CONTENT_RANGE.fullmatch(response.get("ContentRange", ""))
        if match is None:
            raise InternalError("S3 did not answer a ranged GET with a content range")
        self.size = int(match.group(1))
        self._etag = response.get("ETag")
        self._head: bytes = response["Body"].read()

    def read_at(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self._head):
            return self._head[offset : offset + length]
        response = self._get(f"bytes={offset}-{offset + length - 1}")
        data: bytes = response["Body"].read()
        if len(data) != length:
            raise IntegrityError("the recording is truncated (did it change while read?)")
        return data

    def _get(self, byte_range: str) -> dict[str, Any]:
        extra = {"IfMatch": self._etag} if self._etag else {}
        try:
            response: dict[str, Any] = self._obj.client.get_object(
                Bucket=self._obj.bucket, Key=self._obj.key, Range=byte_range, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            raise _read_error(self._obj, exc) from exc
        return response


def _read_error(obj: S3Object, exc: ClientError | BotoCoreError) -> KmsBridgeError:
    """A ranged read's failure: two S3 answers mean the object itself is bad."""
    where = f"s3://{obj.bucket}/{obj.key}"
    code = client_error_code(exc) if isinstance(exc, ClientError) else ""
    if code in ("InvalidRange", "416"):
        return IntegrityError(f"the recording at {where} is empty or truncated")
    if code in ("PreconditionFailed", "412"):
        return IntegrityError(f"the recording at {where} changed while it was read")
    error = error_for(exc, "s3", what=f"the recording {where}")
    return NotFound(f"no recording at {where}") if isinstance(error, NotFound) else error

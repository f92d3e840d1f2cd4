"""Short-lived plaintext copies of recordings in S3, for players that want a URL.

``decrypt_to_playback_object`` streams an encrypted recording from S3 through
``decrypt_stream`` into an S3 multipart upload of a new object in the playback bucket,
part by part (8 MiB in memory at most), then returns a pre-signed GET URL. The object is
completed only after the whole recording authenticated; any failure aborts the upload,
so no partial plaintext object ever appears. Objects live under ``PLAYBACK_PREFIX``,
which the platform's bucket expires by a lifecycle rule (one day, S3's finest grain);
the URL itself expires after ``expires_in`` seconds. Every part is written with SSE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from kmsbridge.errors import InternalError, InvalidRequest, KmsUnavailable, NotFound
from kmsbridge.recordings import DataKeySource, RecordingInfo, decrypt_stream

PLAYBACK_PREFIX = "playback/"
PART_BYTES = 8 * 1024 * 1024  # S3 parts are 5 MiB at least (except the last)
SSE = "AES256"
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled"})
_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503"})


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


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
    """Decrypt ``source`` into a new SSE object in ``bucket``; a URL valid ``expires_in`` s."""
    name = source.key.rsplit("/", 1)[-1] or "recording"
    target = S3Location(bucket, f"{PLAYBACK_PREFIX}{org}/{uuid.uuid4().hex}/{name}")
    with _s3_errors(f"the recording {source}"):
        body = s3.get_object(Bucket=source.bucket, Key=source.key)["Body"]
    try:
        with _s3_errors("the playback bucket"), MultipartSink(s3, target) as sink:
            info = decrypt_stream(body, cast(IO[bytes], sink), org=org, data_keys=data_keys)
    finally:
        body.close()
    with _s3_errors("the playback bucket"):
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

    def __init__(self, s3: Any, target: S3Location, part_bytes: int = PART_BYTES) -> None:
        self._s3 = s3
        self._target = target
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


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """S3 failures as library errors (botocore never leaks upward)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise NotFound(f"{what} does not exist") from None
        if code in _DENIED:
            raise InvalidRequest(f"the decryptor is not allowed to use {what}") from None
        if code in _BUSY:
            raise KmsUnavailable(f"S3 is busy or unavailable for {what}; retry later") from None
        raise InternalError(f"S3 refused the request for {what} ({code})") from None
    except BotoCoreError:
        raise KmsUnavailable(f"S3 is unreachable for {what}; retry later") from None

"""Where ``encrypt`` and ``decrypt`` read and write: files, ``-``, FIFOs and devices, S3.

- ``-`` is stdin or stdout. On stdout (and on a FIFO or a character device) plaintext is
  written frame by frame, each frame only after it authenticated: a stream that fails
  later has already delivered the frames before the failure, and the command exits
  non-zero. Results and errors then go to stderr, never into the stream.
- A regular file (or a new one) appears whole or not at all (``files.atomic_output``);
  a symbolic link is followed to its file, which is replaced, the link kept.
- ``s3://bucket/key`` is read as it streams in, and written as a multipart upload that
  is completed only once the whole recording authenticated (else aborted): no partial
  object ever appears.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import IO, Any, BinaryIO, cast

from kmsbridge.cli.base import Context
from kmsbridge.errors import InvalidRequest
from kmsbridge.files import OutputKind, atomic_output, output_kind


def is_s3(name: str) -> bool:
    return name.startswith("s3://")


def output_name(source: str, target: str, rename: Callable[[str], str]) -> str:
    """OUT itself, or for a folder OUT (existing, or named with a trailing ``/``) the file in it.

    A trailing slash always means a folder, which must exist: ``encrypt a.wav new/`` never
    makes a file named ``new``.
    """
    folder = target.endswith("/") or (not is_s3(target) and os.path.isdir(target))
    if not folder:
        return target
    if source == "-":
        raise InvalidRequest(f"OUT {target} is a folder: name the output file when IN is '-'")
    if not is_s3(target) and not os.path.isdir(target):
        raise InvalidRequest(f"output folder {target} does not exist")
    name = rename(PurePosixPath(source.rstrip("/")).name)
    return target.rstrip("/") + "/" + name


def refuse_same_file(source: str, target: str) -> None:
    """IN and OUT must differ: the output would replace the only copy of the input."""
    if source == target and source != "-":
        raise InvalidRequest(f"IN and OUT are the same ({source}); nothing was written")
    if is_s3(source) or is_s3(target) or "-" in (source, target):
        return
    try:
        same = os.path.samefile(source, target)
    except OSError:
        return  # OUT does not exist yet (or IN is missing: reported when it is opened)
    if same:
        raise InvalidRequest(f"IN and OUT are the same file ({target}); nothing was written")


@contextmanager
def open_input(ctx: Context, source: str) -> Iterator[BinaryIO]:
    if source == "-":
        yield sys.stdin.buffer
    elif is_s3(source):
        from kmsbridge.integrations.s3 import S3Location, open_object

        body = open_object(ctx.clients.client("s3"), S3Location.parse(source))
        try:
            yield cast(BinaryIO, body)
        finally:
            body.close()
    else:
        with open(source, "rb") as f:
            yield f


@contextmanager
def open_output(ctx: Context, target: str, *, replace: bool = True) -> Iterator[IO[bytes]]:
    """A sink for ``target`` of whatever kind; see the module doc for what each promises."""
    if is_s3(target):
        with _s3_output(ctx, target, replace=replace) as sink:
            yield sink
        return
    kind = output_kind(target)
    if kind.kind is OutputKind.FILE:
        with atomic_output(kind.path, replace=replace) as out:
            yield out
        return
    if kind.kind is OutputKind.STDOUT or _is_stdout(kind.path):
        ctx.result_stream = sys.stderr
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(kind.path, "wb") as out:  # a FIFO or a device: never replaced, written through
        yield out


def _is_stdout(path: str) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):
        return False


@contextmanager
def _s3_output(ctx: Context, target: str, *, replace: bool) -> Iterator[IO[bytes]]:
    from kmsbridge.integrations.s3 import MultipartSink, S3Location, exists, s3_errors

    location = S3Location.parse(target)
    s3 = ctx.clients.client("s3")
    if not replace and exists(s3, location):
        raise InvalidRequest(f"output {target} exists; nothing was written")
    with s3_errors(f"the object {location}"), MultipartSink(s3, location) as sink:
        yield cast(IO[bytes], sink)


def s3_source(ctx: Context, source: str) -> Any:
    """An S3 recording for range reads (ranged GETs of one object version)."""
    from kmsbridge.integrations.s3 import S3Location, S3Object

    location = S3Location.parse(source)
    return S3Object(ctx.clients.client("s3"), location.bucket, location.key)

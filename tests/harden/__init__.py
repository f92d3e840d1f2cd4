"""Helpers shared by the hardening suites (tests/harden/test_*.py): no fakes of AWS here."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kmsbridge.crypto.kek import KekPublicKey
from kmsbridge.crypto.message import FINAL_FRAME_OVERHEAD, FRAME_OVERHEAD, parse_header
from kmsbridge.errors import KmsBridgeError
from kmsbridge.formats import FRAME_LENGTH
from kmsbridge.recordings.codec import DataKeySource, decrypt_file, encrypt_stream


def encrypt(
    public_key: KekPublicKey,
    org: str,
    data: bytes,
    recording_id: str,
    frame_length: int = FRAME_LENGTH,
) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data),
        out,
        public_key=public_key,
        org=org,
        recording_id=recording_id,
        frame_length=frame_length,
    )
    return out.getvalue()


def header_length(recording: bytes) -> int:
    return len(parse_header(io.BytesIO(recording).read).raw)


def frame_spans(recording: bytes) -> list[tuple[int, int]]:
    """(start, end) of every frame, the final one last, from the header's frame length."""
    header = parse_header(io.BytesIO(recording).read)
    start, spans = len(header.raw), []
    step = FRAME_OVERHEAD + header.frame_length
    while True:
        if recording[start : start + 4] == b"\xff\xff\xff\xff":
            spans.append((start, len(recording)))
            assert len(recording) - start <= FINAL_FRAME_OVERHEAD + header.frame_length
            return spans
        spans.append((start, start + step))
        start += step


def open_outputs(directory: Path, pid: int | str = "self") -> list[os.stat_result]:
    """Files in ``directory`` that process ``pid`` has open for writing (named temporary
    ``.part`` files and unnamed O_TMPFILE ones alike), as seen through /proc."""
    found = []
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            where = os.readlink(fd)
            flags = int((fds.parent / "fdinfo" / fd.name).read_text().split()[3], 8)
            if where.startswith(f"{directory}/") and flags & (os.O_WRONLY | os.O_RDWR):
                found.append(os.stat(fd))
        except (OSError, ValueError, IndexError):
            continue  # closed meanwhile
    return found


class PathProbe:
    """Runs ``decrypt_file`` on given bytes in one directory and checks what it left there."""

    def __init__(self, directory: Path, org: str, data_keys: DataKeySource) -> None:
        self.directory = directory
        self.org = org
        self.data_keys = data_keys
        self.source = directory / "in.rec"
        self.target = directory / "out.wav"

    def outcome(self, recording: bytes, org: str | None = None) -> str:
        """ "ok" or the error code; on an error, nothing may be left beside the source."""
        self.source.write_bytes(recording)
        try:
            decrypt_file(self.source, self.target, org=org or self.org, data_keys=self.data_keys)
        except KmsBridgeError as exc:
            left = sorted(os.listdir(self.directory))
            assert left == [self.source.name], f"{exc.code} left {left}"
            return exc.code
        return "ok"

    def plaintext(self, recording: bytes) -> bytes:
        assert self.outcome(recording) == "ok"
        data = self.target.read_bytes()
        self.target.unlink()
        return data


def flip(data: bytes, position: int, mask: int) -> bytes:
    out = bytearray(data)
    out[position] ^= mask
    return bytes(out)


Tally = dict[str, int]


def tally(outcomes: list[str]) -> Tally:
    counts: Tally = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return dict(sorted(counts.items()))


def report(suite: str, figures: dict[str, object]) -> None:
    """Print a suite's figures (shown with ``pytest -s``; collected for the README)."""
    print(f"\n[harden] {suite}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@contextmanager
def iam_enforced() -> Iterator[None]:
    """moto's IAM enforcement (action level) for this block: set_initial_no_auth_action_count(0).

    moto's decorator wraps a whole function; the tests need enforcement only around the
    decryptor's calls, while the set-up runs as moto's unauthenticated admin.
    """
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    saved = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = saved


def allow(*actions: str) -> str:
    """An IAM policy document allowing ``actions`` on every resource."""
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

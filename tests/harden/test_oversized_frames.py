"""Issue 15, finding 4: a recording's header cannot make the decryptor allocate.

The attack: a 650-byte recording, made from the org's public key alone, announces a
256 MiB frame length. Before the fix, decrypting it allocated about four times that (+1 GiB
on the Lambda ``decrypt`` op), and ``decrypt_range(0, 1)`` one whole frame. Now a frame
length over ``MAX_FRAME_LENGTH`` (4 MiB) is INTEGRITY at the header, before any key is
asked for and before any buffer is sized by it; and within the bound, buffers are sized
by the bytes actually there. Memory is measured as the growth of peak RSS in a subprocess
(``tests/harden/oversized_probe.py``), against generous bounds.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kmsbridge.errors import IntegrityError, InvalidRequest
from kmsbridge.formats import FRAME_LENGTH, MAX_FRAME_LENGTH
from kmsbridge.integrations.aws_lambda.decryptor_api import LambdaApp
from kmsbridge.integrations.s3 import S3Object
from kmsbridge.recordings.codec import decrypt_file, decrypt_stream, encrypt_stream
from kmsbridge.recordings.ranges import decrypt_range
from kmsbridge.services import Services, Settings
from tests.conftest import World
from tests.harden import header_length
from tests.harden.oversized_probe import crafted

ROOT = Path(__file__).resolve().parents[2]
ATTACK_FRAME = 256 * 1024 * 1024
ESDK_DEFAULT_FRAME = 4096


def test_the_650_byte_recording_is_refused_everywhere_before_any_key(
    world: World, tmp_path: Path
) -> None:
    blob = crafted(world.public_key, world.org, ATTACK_FRAME, b"x" * 10)
    assert 600 < len(blob) < 700
    calls = world.wrapper.kms_calls
    org, keys = world.org, world.decryptor
    with pytest.raises(IntegrityError, match="frame length"):
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), org=org, data_keys=keys)
    (tmp_path / "in.rec").write_bytes(blob)
    with pytest.raises(IntegrityError):
        decrypt_file(tmp_path / "in.rec", tmp_path / "out.wav", org=org, data_keys=keys)
    assert os.listdir(tmp_path) == ["in.rec"]  # nothing written, no temp file
    with pytest.raises(IntegrityError):
        decrypt_range(tmp_path / "in.rec", 0, 1, org=org, data_keys=keys)
    with pytest.raises(IntegrityError):
        keys.unwrap(org, blob[: header_length(blob)])
    s3 = world.clients.client("s3")
    for bucket in ("recordings", "playback"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="recordings", Key="a.rec", Body=blob)
    with pytest.raises(IntegrityError):
        decrypt_range(S3Object(s3, "recordings", "a.rec"), 0, 1, org=org, data_keys=keys)
    app = LambdaApp(
        Services(Settings(playback_bucket="playback"), clients=world.clients, decryptor=keys)
    )
    answer = app.handle({"op": "decrypt", "org": org, "source": "s3://recordings/a.rec"})
    assert answer["error"]["code"] == "INTEGRITY"
    assert s3.list_objects_v2(Bucket="playback").get("Contents", []) == []
    assert world.wrapper.kms_calls == calls  # refused before any key was asked for


@pytest.mark.parametrize("frame_length", [ESDK_DEFAULT_FRAME, FRAME_LENGTH, MAX_FRAME_LENGTH])
def test_frame_lengths_up_to_the_maximum_decrypt(
    world: World, tmp_path: Path, frame_length: int
) -> None:
    content = os.urandom(3 * ESDK_DEFAULT_FRAME + 5)
    blob = world.encrypt(content, frame_length=frame_length)
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, org=world.org, data_keys=world.decryptor)
    assert out.getvalue() == content
    (tmp_path / "in.rec").write_bytes(blob)
    got = decrypt_range(tmp_path / "in.rec", 4000, 9000, org=world.org, data_keys=world.decryptor)
    assert got.data == content[4000:9000]


def test_a_frame_length_over_the_maximum_is_not_written_either(world: World) -> None:
    with pytest.raises(InvalidRequest, match="frame length"):
        encrypt_stream(
            io.BytesIO(b"x"),
            io.BytesIO(),
            public_key=world.public_key,
            org=world.org,
            recording_id="r",
            frame_length=MAX_FRAME_LENGTH + 16,
        )


def probe(tmp_path: Path, frame_length: int, path: str) -> dict[str, Any]:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.harden.oversized_probe",
            str(tmp_path),
            str(frame_length),
            path,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


PATHS = ["decrypt_file", "decrypt_range", "lambda_decrypt"]


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
def test_the_attack_costs_no_memory(tmp_path: Path, path: str) -> None:
    """Before the fix: +1 GiB (decrypt_file, Lambda decrypt), +256 MiB (decrypt_range)."""
    result = probe(tmp_path, ATTACK_FRAME, path)
    assert result["outcome"] == "INTEGRITY"
    assert result["bytes"] < 700
    assert result["peak_growth_kib"] < 8 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
def test_a_short_recording_with_the_largest_frames_costs_its_own_size(
    tmp_path: Path, path: str
) -> None:
    """4 MiB frames, 650 bytes: before the fix +16 MiB on decrypt_file and the Lambda
    ``decrypt`` op (a batch of two frames, sealed and plain; measured in this probe); now
    buffers hold the bytes that are there."""
    result = probe(tmp_path, MAX_FRAME_LENGTH, path)
    assert result["outcome"] == "ok"
    assert result["peak_growth_kib"] < 3 * 1024

"""Bugs 1 and 2 and the streams: what OUT may be, and `-`, FIFOs and S3 as IN and OUT.

Each case runs ``kmsbridge`` in a subprocess against moto's server and checks the exit
status, the one stderr line, JSON under --output json, and that nothing is left on disk.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

from kmsbridge.formats import FRAME_LENGTH
from tests.cli.conftest import CliOrg
from tests.cli.helpers import assert_fails, kmsbridge, leftovers
from tests.conftest import REGION

pytestmark = pytest.mark.server

CALL = os.urandom(3 * FRAME_LENGTH + 1234)  # four frames


def encrypted(org: CliOrg, folder: Path, data: bytes = CALL, name: str = "call") -> Path:
    (folder / f"{name}.wav").write_bytes(data)
    made = kmsbridge(
        "encrypt", "--org", org.name, "--recording-id", name,
        folder / f"{name}.wav", folder / f"{name}.wav.enc",
    )  # fmt: skip
    assert made.code == 0, made.err
    return folder / f"{name}.wav.enc"


# ---------------------------------------------------------------- bug 1: OUT's kind


def test_bug1_a_symlink_is_followed_and_kept(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    (tmp_path / "real.wav").write_bytes(b"old")
    (tmp_path / "link.wav").symlink_to(tmp_path / "real.wav")
    done = kmsbridge("decrypt", "--org", "acme", enc, tmp_path / "link.wav")
    assert done.code == 0, done.err
    assert (tmp_path / "link.wav").is_symlink()  # the link stays a link
    assert (tmp_path / "real.wav").read_bytes() == CALL
    assert leftovers(tmp_path) == []


def test_bug1_a_dangling_symlink_is_refused(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    (tmp_path / "link.wav").symlink_to(tmp_path / "nowhere" / "x.wav")
    refused = kmsbridge("--output", "json", "decrypt", "--org", "acme", enc, tmp_path / "link.wav")
    assert "symbolic link" in assert_fails(refused, "INVALID_REQUEST", json_output=True)
    assert (tmp_path / "link.wav").is_symlink() and not (tmp_path / "nowhere").exists()
    assert leftovers(tmp_path) == []


def test_bug1_a_fifo_is_written_through_never_replaced(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    fifo = tmp_path / "player"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    done = kmsbridge("decrypt", "--org", "acme", enc, fifo)
    reader.join(timeout=60)
    assert done.code == 0, done.err
    assert got == [CALL]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the FIFO, not a 0600 file
    assert leftovers(tmp_path) == []


def test_bug1_dev_stdout_and_a_character_device(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    to_stdout = kmsbridge("decrypt", "--org", "acme", enc, "/dev/stdout")
    assert to_stdout.code == 0, to_stdout.err
    assert to_stdout.out == CALL  # the plaintext, and nothing else, on the pipe
    assert "decrypted" in to_stdout.err  # the result goes to stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    to_null = kmsbridge("decrypt", "--org", "acme", enc, "/dev/null")
    assert to_null.code == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not list(Path("/dev").glob(".null.*.part"))  # written through: no temp file beside it


# ---------------------------------------------------------------- bug 2: IN, OUT, clobbering


def test_bug2_in_equal_to_out_is_refused(cli_org: CliOrg, tmp_path: Path) -> None:
    wav = tmp_path / "same.wav"
    wav.write_bytes(CALL)
    refused = kmsbridge("encrypt", "--org", "acme", "--recording-id", "r", wav, wav)
    assert "same" in assert_fails(refused, "INVALID_REQUEST")
    (tmp_path / "alias.wav").symlink_to(wav)
    refused = kmsbridge(
        "encrypt", "--org", "acme", "--recording-id", "r", wav, tmp_path / "alias.wav"
    )
    assert_fails(refused, "INVALID_REQUEST")
    assert wav.read_bytes() == CALL and leftovers(tmp_path) == []


def test_bug2_a_trailing_slash_means_a_folder(cli_org: CliOrg, tmp_path: Path) -> None:
    wav = tmp_path / "call.wav"
    wav.write_bytes(CALL)
    argv = ["--output", "json", "encrypt", "--org", "acme", "--recording-id", "r", str(wav)]
    missing = kmsbridge(*argv, f"{tmp_path}/newdir/")
    assert "does not exist" in assert_fails(missing, "INVALID_REQUEST", json_output=True)
    assert not (tmp_path / "newdir").exists()
    (tmp_path / "out").mkdir()
    done = kmsbridge(*argv, f"{tmp_path}/out/")
    assert done.code == 0, done.err
    assert done.json()["output"] == f"{tmp_path}/out/call.wav.enc"
    assert (tmp_path / "out" / "call.wav.enc").stat().st_size > len(CALL)


def test_bug2_no_clobber_and_force(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    (tmp_path / "kept.wav").write_bytes(b"keep me")
    refused = kmsbridge("decrypt", "--org", "acme", "--no-clobber", enc, tmp_path / "kept.wav")
    assert "exists" in assert_fails(refused, "INVALID_REQUEST")
    assert (tmp_path / "kept.wav").read_bytes() == b"keep me"
    assert kmsbridge("decrypt", "--org", "acme", enc, tmp_path / "kept.wav").code == 0
    assert (tmp_path / "kept.wav").read_bytes() == CALL  # recordings: replaced by default

    for argv in (["keys", "public", "acme", "-o"], ["kek", "export", "acme", "-o"]):
        target = tmp_path / f"{argv[0]}.json"
        target.write_text("precious")
        refused = kmsbridge("--output", "json", *argv, target)
        assert "--force" in assert_fails(refused, "INVALID_REQUEST", json_output=True)
        assert target.read_text() == "precious"
        assert kmsbridge(*argv, target, "--force").code == 0
        assert target.read_text() != "precious"
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- streams: `-`, pipes, FIFOs


def test_stream_through_a_pipe_both_ways(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = kmsbridge("encrypt", "--org", "acme", "--recording-id", "live", "-", "-", stdin=CALL)
    assert enc.code == 0 and enc.out.startswith(b"\x02"), enc.err  # an ESDK v2 message
    assert "encrypted" in enc.err
    dec = kmsbridge("--output", "json", "decrypt", "--org", "acme", "-", "-", stdin=enc.out)
    assert dec.code == 0 and dec.out == CALL
    assert '"recording": "live"' in dec.err  # JSON goes to stderr when stdout is the stream
    assert list(tmp_path.iterdir()) == []


def test_stream_through_a_shell_pipeline(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    cmd = f"cat {enc} | {sys.executable} -m kmsbridge.cli.main decrypt --org acme - - | cat"
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout == CALL


def test_stream_from_a_fifo_into_a_fifo(cli_org: CliOrg, tmp_path: Path) -> None:
    enc = encrypted(cli_org, tmp_path)
    src, dst = tmp_path / "in.fifo", tmp_path / "out.fifo"
    os.mkfifo(src)
    os.mkfifo(dst)
    got: list[bytes] = []
    writer = threading.Thread(target=lambda: src.write_bytes(enc.read_bytes()))
    reader = threading.Thread(target=lambda: got.append(dst.read_bytes()))
    writer.start()
    reader.start()
    done = kmsbridge("decrypt", "--org", "acme", src, dst)
    writer.join(timeout=60)
    reader.join(timeout=60)
    assert done.code == 0, done.err
    assert got == [CALL]


def test_a_stream_that_fails_midway_has_sent_only_authenticated_frames(
    cli_org: CliOrg, tmp_path: Path
) -> None:
    long_call = os.urandom(40 * FRAME_LENGTH + 5)  # more than one 1 MiB batch of frames
    blob = bytearray(encrypted(cli_org, tmp_path, long_call).read_bytes())
    blob[-100] ^= 1  # inside the last frame
    dec = kmsbridge("decrypt", "--org", "acme", "-", "-", stdin=bytes(blob))
    assert_fails(dec, "INTEGRITY")
    # Whole frames that authenticated were delivered, in order; the damaged one was not.
    assert 0 < len(dec.out) < len(long_call) and len(dec.out) % FRAME_LENGTH == 0
    assert dec.out == long_call[: len(dec.out)]
    to_file = tmp_path / "whole.wav"
    (tmp_path / "bad.enc").write_bytes(bytes(blob))
    refused = kmsbridge("decrypt", "--org", "acme", tmp_path / "bad.enc", to_file)
    assert_fails(refused, "INTEGRITY")
    assert not to_file.exists() and leftovers(tmp_path) == []  # a file: all or nothing


# ---------------------------------------------------------------- streams: S3


def test_s3_as_in_and_out(cli_org: CliOrg, tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"recs-{cli_org.table}"
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "call.wav").write_bytes(CALL)
    up = kmsbridge("encrypt", "--org", "acme", "--recording-id", "s3-1",
                   tmp_path / "call.wav", f"s3://{bucket}/enc/call.enc")  # fmt: skip
    assert up.code == 0, up.err
    down = kmsbridge("decrypt", "--org", "acme", f"s3://{bucket}/enc/call.enc", "-")
    assert down.code == 0 and down.out == CALL, down.err
    across = kmsbridge("--output", "json", "decrypt", "--org", "acme",
                       f"s3://{bucket}/enc/call.enc", f"s3://{bucket}/plain/call.wav")  # fmt: skip
    assert across.code == 0 and across.json()["bytes"] == len(CALL)
    assert s3.get_object(Bucket=bucket, Key="plain/call.wav")["Body"].read() == CALL
    part = kmsbridge("decrypt", "--org", "acme", "--range", "10-20",
                     f"s3://{bucket}/enc/call.enc", "-")  # fmt: skip
    assert part.code == 0 and part.out == CALL[10:20]

    blob = bytearray(s3.get_object(Bucket=bucket, Key="enc/call.enc")["Body"].read())
    blob[-100] ^= 1
    s3.put_object(Bucket=bucket, Key="enc/bad.enc", Body=bytes(blob))
    bad = kmsbridge("decrypt", "--org", "acme", f"s3://{bucket}/enc/bad.enc",
                    f"s3://{bucket}/plain/bad.wav")  # fmt: skip
    assert_fails(bad, "INTEGRITY")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "plain/bad.wav" not in keys  # the upload was aborted: no partial plaintext
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    missing = kmsbridge("decrypt", "--org", "acme", f"s3://{bucket}/nope.enc", tmp_path / "x")
    assert_fails(missing, "NOT_FOUND")
    assert not (tmp_path / "x").exists()

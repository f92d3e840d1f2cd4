"""Issue 15, finding 11: a decryption killed mid-way leaves no plaintext behind.

The attack: SIGKILL (or the OOM killer) during ``decrypt_file``. Before the fix, the
0600 ``.part`` file beside the target kept the plaintext written so far, for good. Now the
output is an unnamed O_TMPFILE inode until it is complete (the kernel frees it with the
process), and where a filesystem has no O_TMPFILE, the next output in that folder removes
our stale ``.part`` files (our prefix, this user's, older than the bound, not locked by a
live writer). The killed run is a subprocess (``tests/harden/killed_decrypt_worker.py``)
stalled on a pipe after writing plaintext.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsbridge import files
from kmsbridge.recordings.codec import decrypt_file, private_key_data_keys
from tests.conftest import World
from tests.harden import encrypt, open_outputs
from tests.harden.killed_decrypt_worker import ORG, PLAINTEXT

ROOT = Path(__file__).resolve().parents[2]
STALE = files.STALE_PART_SECONDS + 1


def has_o_tmpfile(directory: Path) -> bool:
    try:
        os.close(os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return False
        raise
    return True


def kill_mid_way(directory: Path, mode: str) -> list[str]:
    """Run the worker until it has written plaintext, SIGKILL it; what the folder showed then."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.harden.killed_decrypt_worker", str(directory), mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in wait_steps(120):
            written = [s.st_size for s in open_outputs(directory, worker.pid)]
            if written and max(written) > 0:
                shown = sorted(os.listdir(directory))
                break
            assert worker.poll() is None, "the worker ended before it was killed"
        else:
            raise AssertionError("the worker wrote no plaintext in time")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    return shown


def wait_steps(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield
        time.sleep(0.05)


def test_with_o_tmpfile_a_killed_decrypt_leaves_nothing(tmp_path: Path) -> None:
    if not has_o_tmpfile(tmp_path):
        pytest.skip("this machine's temporary filesystem lacks O_TMPFILE")
    shown = kill_mid_way(tmp_path, "unnamed")
    assert shown == []  # plaintext was being written, and no name showed it
    assert os.listdir(tmp_path) == []  # killed: nothing left at all


def test_without_o_tmpfile_the_next_run_sweeps_the_killed_runs_part_file(
    tmp_path: Path, kek_pair: tuple[object, object]
) -> None:
    shown = kill_mid_way(tmp_path, "named")
    [part] = [tmp_path / name for name in shown]
    assert part.name.startswith(".kmsbridge-out.wav.") and part.name.endswith(".part")
    assert os.listdir(tmp_path) == [part.name]  # the attack, as it was: plaintext left
    assert stat.S_IMODE(part.stat().st_mode) == 0o600
    assert PLAINTEXT.startswith(part.read_bytes()[:4096])
    old = time.time() - STALE
    os.utime(part, (old, old))
    keep = {  # not ours, too young, or someone's live output: the sweep leaves them
        ".kmsbridge-other.wav.x.part": old,
        ".other.wav.x.part": old,
        ".kmsbridge-young.wav.x.part": time.time(),
    }
    for name, mtime in keep.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / ".kmsbridge-link.part").symlink_to(tmp_path / ".other.wav.x.part")
    live = os.open(tmp_path / ".kmsbridge-other.wav.x.part", os.O_RDONLY)
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        private, public = kek_pair
        (tmp_path / "next.rec").write_bytes(encrypt(public, ORG, b"next call", "r2"))  # type: ignore[arg-type]
        decrypt_file(
            tmp_path / "next.rec",
            tmp_path / "next.wav",
            org=ORG,
            data_keys=private_key_data_keys(private),  # type: ignore[arg-type]
        )
    finally:
        os.close(live)
    assert not part.exists()  # the killed run's plaintext is gone
    assert sorted(os.listdir(tmp_path)) == sorted(
        [*keep, ".kmsbridge-link.part", "next.rec", "next.wav"]
    )


@pytest.mark.parametrize("unnamed", [True, False])
def test_an_existing_target_is_replaced_whole(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(files, "_O_TMPFILE", 0)
    source, target = tmp_path / "in.rec", tmp_path / "out.wav"
    source.write_bytes(world.encrypt(b"new audio"))
    target.write_bytes(b"an older version")
    decrypt_file(source, target, org=world.org, data_keys=world.decryptor)
    assert target.read_bytes() == b"new audio"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["in.rec", "out.wav"]

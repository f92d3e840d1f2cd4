"""Peak memory decrypting 1 GiB from disk to disk, and range decryption deep in a file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from bench.bench_codec import ORG, cached_data_keys
from bench.common import GIB, MIB, Result, bench_kek, fmt_ms, fmt_size, seconds, workdir
from kmsbridge.recordings.codec import encrypt_stream
from kmsbridge.recordings.ranges import decrypt_range


def run(quick: bool = False) -> list[Result]:
    bench_kek()
    with workdir() as d:
        return memory_and_ranges(d, 64 * MIB if quick else GIB, quick)


class _Generated(io.RawIOBase):
    """``size`` bytes made by repeating a random block: big recordings without a big file."""

    def __init__(self, size: int, block: int = 16 * MIB) -> None:
        self._left = size
        self._block = memoryview(os.urandom(block))
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left, len(self._block) - self._at)
        buffer[:n] = self._block[self._at : self._at + n]
        self._at = (self._at + n) % len(self._block)
        self._left -= n
        return n


def memory_and_ranges(d: Path, size: int, quick: bool) -> list[Result]:
    big = d / "big.enc"
    _, public = bench_kek()
    with open(big, "wb") as o:
        encrypt_stream(_Generated(size), o, public_key=public, org=ORG, recording_id="big")
    results = [peak_memory(d, big, size)]
    results.append(range_cost(big, size, repeats=3 if quick else 9))
    return results


# ru_maxrss is not used: a child's ru_maxrss starts at its parent's RSS when it was forked
# (Linux keeps the pre-exec high-water mark), which would hide what decryption uses. The
# child resets its own high-water mark (/proc/self/clear_refs, "5") after its imports and
# reads VmHWM (peak) and VmRSS (baseline) from /proc/self/status.
_MEMORY_SCRIPT = """
import json, sys
from cryptography.hazmat.primitives import serialization
from kmsbridge.recordings.codec import decrypt_file, private_key_data_keys

def status(name):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name + ":"))

with open(sys.argv[1], "rb") as f:
    keys = private_key_data_keys(serialization.load_pem_private_key(f.read(), None))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
info = decrypt_file(sys.argv[2], sys.argv[3], org=sys.argv[4], data_keys=keys)
peak = status("VmHWM")
print(json.dumps({"before_kib": before, "peak_kib": peak, "bytes": info.plaintext_bytes}))
"""


def peak_memory(d: Path, big: Path, size: int) -> Result:
    """decrypt_file from disk to disk in a fresh interpreter: peak RSS above its baseline."""
    pem = d / "kek.pem"
    pem.touch(mode=0o600)
    pem.write_bytes(
        bench_kek()[0].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out = d / "big.out"
    argv = [sys.executable, "-c", _MEMORY_SCRIPT, str(pem), str(big), str(out), ORG]
    report = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    out.unlink()
    if report["bytes"] != size:
        raise RuntimeError("the memory run did not decrypt the whole recording")
    above = (report["peak_kib"] - report["before_kib"]) / 1024
    return Result(
        "memory",
        f"peak RSS (VmHWM) decrypting {fmt_size(size)}, file to file",
        f"+{above:.1f} MiB",
        f"resident after imports: {report['before_kib'] / 1024:.1f} MiB",
        None,
        "<= 64 MiB above",
        above <= 64,
    )


def range_cost(big: Path, size: int, repeats: int) -> Result:
    """1 MiB through decrypt_range at 900/1024 of the way in, against 1 MiB at offset 0."""
    far = size * 900 // 1024 // MIB * MIB
    keys = cached_data_keys()
    near_t = far_t = float("inf")
    for _ in range(repeats):
        near_t = min(near_t, seconds(decrypt_range, big, 0, MIB, org=ORG, data_keys=keys))
        far_t = min(far_t, seconds(decrypt_range, big, far, far + MIB, org=ORG, data_keys=keys))
    return Result(
        "range",
        f"decrypt_range 1 MiB at offset {fmt_size(far)} of {fmt_size(size)}",
        fmt_ms(far_t),
        f"1 MiB at offset 0: {fmt_ms(near_t)}",
        far_t / near_t,
        "<= 2x",
    )

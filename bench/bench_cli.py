"""What a user waits for: recordings through the ``kmsbridge`` command, wall clock.

Every contender is a fresh process, as a user runs it: ``kmsbridge encrypt`` /
``kmsbridge decrypt`` of one file, and ``kmsbridge encrypt`` of a folder, against a plain
AES-256-GCM file pass at the same chunk size (the frame length) run the same way. Each
command's fixed cost (interpreter start, imports, the bundle check or the KMS and table
calls) is measured in the same run as the same command on a 1-byte file (for a folder: on
a folder of one 1-byte file) and taken off, so the ratio is the per-byte (per-file) path.
Every run writes a new output file (the previous one is removed first, untimed); one row
shows the cost of overwriting an existing output instead. Decryption reaches a moto
server on 127.0.0.1 for its one KMS call.

Files: 256 MiB on tmpfs (``common.bench_root``) and on disk (``KMSBRIDGE_BENCH_DISK_DIR``,
else the temp directory when it is not tmpfs); with ``KMSBRIDGE_BENCH_FULL=1`` 1 GiB as
well. Many small recordings: ``KMSBRIDGE_BENCH_CALLS`` one-minute calls of 960,000 bytes
(8 kHz 16-bit mono), default 1,000 (10,000 with ``KMSBRIDGE_BENCH_FULL=1``), through one
command on a folder and through ``encrypt_file`` in one process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import GIB, MIB, Result, fmt_size, workdir, write_random_file
from kmsbridge.formats import FRAME_LENGTH

ROOT = Path(__file__).resolve().parent.parent
ORG = "bench"
CALL_BYTES = 960_000  # one minute of 8 kHz, 16-bit mono audio
# The floor: read a chunk with readinto, AES-256-GCM it into a preallocated buffer, write
# it; a fixed key, no framing, no AAD, no temporary file, no fsync. Files or folders.
PLAIN_PASS = """
import os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
mode, src, dst, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
aead, extra = AESGCM(bytes(32)), 16
inn = memoryview(bytearray(chunk + (extra if mode == "d" else 0)))
out = memoryview(bytearray(chunk + extra))
def one(src, dst):
    seq = 0
    with open(src, "rb", buffering=0) as s, open(dst, "wb", buffering=0) as o:
        while n := s.readinto(inn):
            seq += 1
            iv = seq.to_bytes(12, "big")
            if mode == "d":
                aead.decrypt_into(iv, inn[:n], b"", out[: n - extra]); o.write(out[: n - extra])
            else:
                aead.encrypt_into(iv, inn[:n], b"", out[: n + extra]); o.write(out[: n + extra])
if os.path.isdir(src):
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        one(os.path.join(src, name), os.path.join(dst, name + ".enc"))
else:
    one(src, dst)
"""


def run(quick: bool = False) -> list[Result]:
    full = os.environ.get("KMSBRIDGE_BENCH_FULL") == "1" and not quick
    sizes = [16 * MIB] if quick else [256 * MIB] + ([GIB] if full else [])
    calls = int(os.environ.get("KMSBRIDGE_BENCH_CALLS", 10_000 if full else 1_000))
    calls = 50 if quick else calls
    repeats = 1 if quick else 3
    results: list[Result] = []
    with cli_world() as cli:
        for where, root in places():
            with workdir_in(root) as d:
                for size in sizes:
                    results += files(cli, d, where, size, repeats)
        with workdir() as d:
            results += small_recordings(cli, d, calls, repeats)
    return results


def places() -> list[tuple[str, Path]]:
    """tmpfs, and a disk directory when there is one."""
    out = [("tmpfs" if str(_tmpfs_root()) == "/dev/shm" else "temp dir", _tmpfs_root())]
    disk = os.environ.get("KMSBRIDGE_BENCH_DISK_DIR") or tempfile.gettempdir()
    if not _is_tmpfs(Path(disk)):
        out.append(("disk", Path(disk)))
    return out


def _tmpfs_root() -> Path:
    from bench.common import bench_root

    return bench_root()


def _is_tmpfs(path: Path) -> bool:
    best, fstype = "", ""
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, kind = line.split()[:3]
            if str(path.resolve()).startswith(point) and len(point) > len(best):
                best, fstype = point, kind
    return fstype == "tmpfs"


@contextmanager
def workdir_in(root: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kmsbridge-bench-", dir=root) as name:
        yield Path(name)


# ---------------------------------------------------------------- the commands


class Cli:
    """Runs ``kmsbridge`` and the plain pass as fresh processes; wall-clock seconds."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self.env = dict(os.environ, PYTHONPATH=str(ROOT))

    def kmsbridge(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kmsbridge.cli.main", *args]

    def encrypt(self, src: Path, dst: Path) -> list[str]:
        keys = ("--public-keys", str(self.bundle))
        return self.kmsbridge(
            "encrypt", "--org", ORG, "--recording-id", "r", *keys, str(src), str(dst)
        )

    def decrypt(self, src: Path, dst: Path) -> list[str]:
        return self.kmsbridge("decrypt", "--org", ORG, str(src), str(dst))

    def plain(self, mode: str) -> Callable[[Path, Path], list[str]]:
        return lambda src, dst: [
            sys.executable,
            "-c",
            PLAIN_PASS,
            mode,
            str(src),
            str(dst),
            str(FRAME_LENGTH),
        ]

    def time(self, command: list[str], output: Path, keep: bool = False) -> float:
        """Seconds for one run; the output is removed first unless ``keep``."""
        if not keep:
            _remove(output)
        start = time.perf_counter()
        subprocess.run(command, env=self.env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def cli_world() -> Iterator[Cli]:
    """A moto server with the key table, an org and its public-key bundle."""
    from kmsbridge.devtools.embedded import embedded_aws, environment

    with (
        tempfile.TemporaryDirectory() as tmp,
        embedded_aws(),
        environment(KMSBRIDGE_TABLE="bench-cli"),
    ):
        import boto3

        kms = boto3.client("kms")
        arn = kms.create_key()["KeyMetadata"]["Arn"]
        ca_key = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        cli = Cli(Path(tmp) / "bundle.pem")
        cli.env["KMSBRIDGE_CA_FILE"] = str(Path(tmp) / "platform-ca.pem")
        for args in (["table", "create"], ["ca", "create", "--kms-key", ca_key["Arn"]]):
            subprocess.run(cli.kmsbridge(*args), env=cli.env, check=True, stdout=subprocess.DEVNULL)
        with open(cli.env["KMSBRIDGE_CA_FILE"], "wb") as pin:  # the encryptors' pin
            subprocess.run(cli.kmsbridge("ca", "show"), env=cli.env, check=True, stdout=pin)
        add = ["org", "add", ORG, "--kms-key", arn]
        subprocess.run(cli.kmsbridge(*add), env=cli.env, check=True, stdout=subprocess.DEVNULL)
        keys = ["keys", "public", ORG, "-o", str(cli.bundle)]
        subprocess.run(cli.kmsbridge(*keys), env=cli.env, check=True, stdout=subprocess.DEVNULL)
        yield cli


# ---------------------------------------------------------------- big files


def files(cli: Cli, d: Path, where: str, size: int, repeats: int) -> list[Result]:
    plain, one = write_random_file(d / "plain", size), d / "one"
    one.write_bytes(b"x")
    enc, aes = d / "enc", d / "aes"
    small_enc, small_aes = d / "one.enc", d / "one.aes"
    contenders = {
        "plain-enc": (cli.plain("e"), (one, small_aes), (plain, aes)),
        "ours-enc": (cli.encrypt, (one, small_enc), (plain, enc)),
        "plain-dec": (cli.plain("d"), (small_aes, d / "one.out"), (aes, d / "out")),
        "ours-dec": (cli.decrypt, (small_enc, d / "one.out"), (enc, d / "out")),
    }
    best: dict[str, list[float]] = {name: [] for name in contenders}
    fixed: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats + 1):  # the first round warms caches and is not counted
        for name, (make, small, big) in contenders.items():
            fixed[name].append(cli.time(make(*small), small[1]))
            best[name].append(cli.time(make(*big), big[1]))
    per_byte = {n: min(best[n][1:]) - min(fixed[n][1:]) for n in contenders}
    overwrite = _overwrite(cli, plain, enc, aes, repeats) - min(fixed["ours-enc"][1:])
    rows = []
    for verb, op in (("encrypt", "enc"), ("decrypt", "dec")):
        ours, base = per_byte[f"ours-{op}"], per_byte[f"plain-{op}"]
        rows.append(
            Result(
                "CLI, wall clock",
                f"kmsbridge {verb} {fmt_size(size)}, {where}, fixed cost "
                f"{min(fixed[f'ours-{op}'][1:]) * 1000:.0f} ms taken off",
                f"{_mib_s(size, ours)} ({_spread(best[f'ours-{op}'][1:])})",
                f"plain AES-GCM file pass, {fmt_size(FRAME_LENGTH)} chunks: {_mib_s(size, base)} "
                f"({_spread(best[f'plain-{op}'][1:])})",
                base / ours,
                ">= 0.8x",
            )
        )
    rows.append(
        Result(
            "CLI, wall clock",
            f"kmsbridge encrypt {fmt_size(size)}, {where}, over an existing output",
            _mib_s(size, overwrite),
            f"plain pass, new output: {_mib_s(size, per_byte['plain-enc'])}",
            per_byte["plain-enc"] / overwrite,
            "",
        )
    )
    return rows


def _overwrite(cli: Cli, plain: Path, enc: Path, aes: Path, repeats: int) -> float:
    """kmsbridge encrypt onto an output that exists: its pages are freed only at the rename."""
    return min(cli.time(cli.encrypt(plain, enc), enc, keep=True) for _ in range(repeats))


def _mib_s(size: int, seconds: float) -> str:
    return f"{size / seconds / MIB:,.0f} MiB/s"


def _spread(times: list[float]) -> str:
    """How noisy the runs were: fastest and slowest whole run."""
    return f"runs {min(times):.2f}-{max(times):.2f} s"


# ---------------------------------------------------------------- many small recordings


def small_recordings(cli: Cli, d: Path, calls: int, repeats: int) -> list[Result]:
    folder, single = d / "calls", d / "single"
    _write_calls(folder, calls)
    single.mkdir()
    (single / "one.wav").write_bytes(b"x")
    out, small_out = d / "out", d / "out-one"
    fixed = {
        "plain": min(
            cli.time(cli.plain("e")(single, small_out), small_out) for _ in range(repeats)
        ),
        "ours": min(cli.time(cli.encrypt(single, small_out), small_out) for _ in range(repeats)),
    }
    whole: dict[str, list[float]] = {"plain": [], "ours": [], "library": [], "library-plain": []}
    for _ in range(repeats):
        whole["plain"].append(cli.time(cli.plain("e")(folder, out), out))
        whole["ours"].append(cli.time(cli.encrypt(folder, out), out))
        _remove(out)
        whole["library-plain"].append(_library_plain(folder, out))
        _remove(out)
        whole["library"].append(_library(cli, folder, out))
    _remove(out)
    plain = min(whole["plain"]) - fixed["plain"]
    ours = min(whole["ours"]) - fixed["ours"]
    lib, lib_plain = min(whole["library"]), min(whole["library-plain"])
    label = f"{calls:,} recordings of {CALL_BYTES:,} bytes"
    return [
        Result(
            "many small recordings",
            f"kmsbridge encrypt FOLDER: {label}, one command, fixed cost taken off",
            f"{calls / ours:,.0f} files/s ({_spread(whole['ours'])})",
            f"plain pass, one process: {calls / plain:,.0f} files/s ({_spread(whole['plain'])})",
            plain / ours,
            ">= 0.8x",
        ),
        Result(
            "many small recordings",
            f"encrypt_file in one process: {label}, public key checked once",
            f"{calls / lib:,.0f} files/s ({_spread(whole['library'])})",
            f"plain pass in the same process: {calls / lib_plain:,.0f} files/s",
            lib_plain / lib,
            ">= 0.8x",
        ),
    ]


def _write_calls(folder: Path, calls: int) -> None:
    """Distinct random recordings (a few hundred, hard-linked under many names)."""
    folder.mkdir()
    distinct = folder.parent / "distinct"
    distinct.mkdir()
    block = os.urandom(CALL_BYTES + 256)
    for i in range(calls):
        name = folder / f"call-{i:05d}.wav"
        source = distinct / f"{i % 256}"
        if not source.exists():
            source.write_bytes(block[i % 256 : i % 256 + CALL_BYTES])
        os.link(source, name)


def _library(cli: Cli, folder: Path, out: Path) -> float:
    from kmsbridge.crypto.trust import load_trust
    from kmsbridge.keys.bundle import read_bundle
    from kmsbridge.recordings.codec import encrypt_file

    start = time.perf_counter()
    trust = load_trust(ORG, ca_file=cli.env["KMSBRIDGE_CA_FILE"])
    public = read_bundle(cli.bundle, ORG, trust=trust)  # once per process, as the CLI does
    out.mkdir()
    for source in sorted(folder.iterdir()):
        encrypt_file(
            source, out / f"{source.name}.enc", public_key=public, org=ORG, recording_id=source.name
        )
    return time.perf_counter() - start


def _library_plain(folder: Path, out: Path) -> float:
    namespace: dict[str, object] = {}
    start = time.perf_counter()
    saved = sys.argv
    sys.argv = ["plain", "e", str(folder), str(out), str(FRAME_LENGTH)]
    try:
        exec(PLAIN_PASS, namespace)  # the same plain pass, in this process
    finally:
        sys.argv = saved
    return time.perf_counter() - start

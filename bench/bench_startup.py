"""Start-up of the offline encryptor: ``kmsbridge encrypt --public-keys`` on a 1 KB file.

The whole process is timed (interpreter, imports, the bundle's checks, one RSA-OAEP wrap,
one frame), against ``python -c "import cryptography"`` (an interpreter that loads the one
library an encryptor cannot do without) and ``python -c "import boto3"`` (what the
encryptor paid before it stopped importing AWS code), each the median of the same number
of runs, interleaved so that machine noise falls on all three alike.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.common import Result, bench_kek, workdir

ORG = "acme"


def run(quick: bool = False) -> Iterator[Result]:
    runs = 3 if quick else 15
    with workdir() as tmp:
        bundle = _write_bundle(tmp / "bundle.json")
        (tmp / "call.wav").write_bytes(b"RIFF" + os.urandom(1020))
        encrypt = [
            sys.executable, "-m", "kmsbridge.cli.main", "encrypt", "--org", ORG,
            "--recording-id", "call-1", "--public-keys", str(bundle),
            str(tmp / "call.wav"), str(tmp / "call.enc"),
        ]  # fmt: skip
        commands = {
            "encrypt": encrypt,
            "cryptography": [sys.executable, "-c", "import cryptography"],
            "boto3": [sys.executable, "-c", "import boto3"],
        }
        times = _interleaved(commands, runs)
    ours = times["encrypt"]
    for name, label in (
        ("cryptography", 'python -c "import cryptography"'),
        ("boto3", 'python -c "import boto3"'),
    ):
        base = times[name]
        yield Result(
            "start-up",
            f"offline encrypt of 1 KB with a bundle (whole process, median of {runs})",
            f"wall {ours[0] * 1000:.0f} ms, cpu {ours[1] * 1000:.0f} ms",
            f"{label}: wall {base[0] * 1000:.0f} ms, cpu {base[1] * 1000:.0f} ms",
            round(ours[1] / base[1], 2) if base[1] else None,
            "",
        )


def _interleaved(commands: dict[str, Sequence[str]], runs: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds per command, running A B C A B C ... after one warm-up."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if round_:  # the first round warms the page cache and bytecode
                samples[name].append((wall, cpu))
    return {
        name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
        for name, s in samples.items()
    }


def _write_bundle(path: Path) -> Path:
    public = bench_kek()[1]
    bundle = {
        "kmsbridge_bundle": 1,
        "org": ORG,
        "kek": public.kek_id,
        "public_key": base64.b64encode(public.spki_der).decode(),
        "not_after": "2099-01-01T00:00:00Z",
    }
    path.write_text(json.dumps(bundle))
    return path

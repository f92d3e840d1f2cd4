"""What every benchmark module returns, so ``python -m bench`` can print and record it."""

from __future__ import annotations

import functools
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from kmsbridge.crypto.kek import KekPublicKey, generate_kek

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class Result:
    """One measured row: ours against a baseline measured in the same run."""

    section: str
    name: str
    measured: str  # e.g. "2.41 GB/s" or "2.83 ms"
    baseline: str  # what it is compared with, and its figure
    ratio: float | None  # ours / baseline in the direction the goal states
    goal: str  # e.g. ">= 0.6x" or "<= 1.1x"; "" when there is none
    met: bool | None = None  # for goals that are not a ratio; ratio goals are checked from it


_RATIO_GOAL = re.compile(r"\s*(>=|<=|<|>)\s*([0-9.]+)\s*x\s*$")


def goal_met(result: Result) -> bool | None:
    """Whether the row meets its goal: ``met`` if given, else the ratio against ``goal``."""
    if result.met is not None:
        return result.met
    match = _RATIO_GOAL.match(result.goal)
    if match is None or result.ratio is None:
        return None
    op, bound = match.group(1), float(match.group(2))
    return {
        ">=": result.ratio >= bound,
        "<=": result.ratio <= bound,
        "<": result.ratio < bound,
        ">": result.ratio > bound,
    }[op]


def best_of(
    repeats: int, fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter
) -> float:
    """The fastest of ``repeats`` runs of fn, in seconds (least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def seconds(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    """How long one call of ``fn(*args, **kwargs)`` takes."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def wall_and_cpu(fn: Callable[..., object], *args: object) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (user + system) of one call of ``fn(*args)``.

    On a shared machine CPU time is the steadier figure for single-threaded work: it
    leaves out the time spent waiting for a core, and includes the kernel's I/O copying.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def gb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e9


def fmt_rate(size: int, seconds: float) -> str:
    return f"{gb_per_s(size, seconds):.2f} GB/s"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def fmt_size(size: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def bench_root() -> Path:
    """Where big files go: ``KMSBRIDGE_BENCH_DIR``, else tmpfs (/dev/shm), else the temp dir.

    tmpfs keeps disk noise out of the comparisons; every compared codec streams through
    the same files, so I/O is the same for all.
    """
    chosen = os.environ.get("KMSBRIDGE_BENCH_DIR")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


@contextmanager
def workdir() -> Iterator[Path]:
    """A private directory under ``bench_root()``, removed with everything in it."""
    with tempfile.TemporaryDirectory(prefix="kmsbridge-bench-", dir=bench_root()) as name:
        yield Path(name)


def write_random_file(path: Path, size: int, chunk: int = 16 * MIB) -> Path:
    """``size`` random bytes (incompressible, like encoded audio) streamed to ``path``."""
    block = os.urandom(min(chunk, size) or 1)
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n
    return path


@functools.cache
def bench_kek() -> tuple[rsa.RSAPrivateKey, KekPublicKey]:
    """One RSA-3072 KEK per benchmark process."""
    return generate_kek()

"""What every benchmark module returns, so ``python -m bench`` can print and record it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One measured row: ours against a baseline measured in the same run."""

    section: str
    name: str
    measured: str  # e.g. "2.41 GB/s" or "2.83 ms"
    baseline: str  # what it is compared with, and its figure
    ratio: float | None  # ours / baseline in the direction the goal states
    goal: str  # e.g. ">= 0.6x" or "<= 1.1x"; "" when there is none


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs of fn, in seconds (least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best

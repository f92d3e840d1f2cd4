"""The KMS-call economy: what the decryptor's KEK cache saves, and what N containers cost.

A simulated day of playback traffic drives the decryptor's own KEK cache class
(``kmsbridge.decryptor.cache.TtlCache``) on a simulated clock: no sleeps, no RSA work, no AWS.
K orgs
share 1M playbacks whose arrivals are a Poisson process (exponential gaps) and whose org is
drawn uniformly; each playback goes to one of N decryptor containers chosen at random, as
Lambda spreads concurrent requests, and each container has its own cache with maximum age
T. A cache miss is one KMS Decrypt (the KEK unwrap). The counts are compared with:

- the floor K*D/T: one call per busy org per window of T seconds (one shared cache);
- one call per playback (no cache: what a design that unwraps on every playback pays);
- the renewal model N*D/(T + N/lam) per org (lam = the org's playback rate): a container's
  entry lives T seconds, then the next request it sees for that org comes after a mean
  gap N/lam. The simulation must agree with it to a few percent.

One row also measures the warm unwrap, the work a container does per playback when the
KEK is cached (one RSA-3072 OAEP decrypt of the recording's data key), to give the
unwraps per second one container serves.

    python -m bench.bench_economy          # full: 1M playbacks, ~1 minute
    python -m bench.bench_economy --quick  # 100k playbacks
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass

from bench.common import Result, best_of
from kmsbridge.decryptor.cache import TtlCache
from kmsbridge.decryptor.decryptor import DEFAULT_MAX_KEKS

DAY = 86_400.0
ORGS = 100
PLAYBACKS = 1_000_000
CONTAINERS = (1, 2, 5, 50)
MAX_AGES = (60.0, 300.0)
SEED = 20261101
SECTION = "KMS-call economy"


@dataclass(frozen=True)
class Economy:
    """KMS calls of one (N, T) over the simulated day."""

    containers: int
    max_age: float
    orgs: int
    playbacks: int
    calls: int
    busy_windows: int  # (org, window of T) pairs with at least one playback

    @property
    def floor(self) -> float:
        return self.orgs * DAY / self.max_age

    @property
    def model(self) -> float:
        rate = self.playbacks / DAY / self.orgs  # one org's playbacks per second
        n = self.containers
        return self.orgs * n * DAY / (self.max_age + n / rate)


def arrivals(playbacks: int, orgs: int, seed: int = SEED) -> list[tuple[float, int]]:
    """A day of Poisson arrivals (time, org), the same for every configuration."""
    rng = random.Random(seed)
    rate = playbacks / DAY
    t, out = 0.0, []
    for _ in range(playbacks):
        t += rng.expovariate(rate)
        out.append((t, rng.randrange(orgs)))
    return out


def simulate(
    traffic: list[tuple[float, int]], orgs: int, containers: int, max_age: float
) -> Economy:
    """Replay the traffic through N TtlCaches on one simulated clock; count the loads."""
    clock = [0.0]
    caches = [
        TtlCache[object](max_age, DEFAULT_MAX_KEKS, now=lambda: clock[0]) for _ in range(containers)
    ]
    keys = [(f"org-{i}", "kek") for i in range(orgs)]
    pick = random.Random(SEED + containers).randrange
    kek = object()
    for t, org in traffic:
        clock[0] = t
        caches[pick(containers)].get_or_load(keys[org], lambda: kek)
    window = max_age or 1e-9  # max_age 0 (no cache): every playback is its own window
    busy = len({(org, int(t // window)) for t, org in traffic})
    calls = sum(c.loads for c in caches)
    return Economy(containers, max_age, orgs, len(traffic), calls, busy)


def warm_unwrap_seconds() -> float:
    """One warm unwrap: RSA-3072 OAEP-SHA256 decrypt of a 32-byte data key (best of 200)."""
    from kmsbridge.crypto.kek import generate_kek, unwrap_dek

    private, public = generate_kek()
    encrypted = public.wrap_dek(os.urandom(32))
    return best_of(200, lambda: unwrap_dek(private, encrypted))


def run(quick: bool = False) -> list[Result]:
    playbacks = PLAYBACKS // 10 if quick else PLAYBACKS
    traffic = arrivals(playbacks, ORGS)
    results = []
    for max_age in MAX_AGES:
        for n in CONTAINERS:
            results.append(_row(simulate(traffic, ORGS, n, max_age)))
    unwrap = warm_unwrap_seconds()
    results.append(
        Result(
            SECTION,
            "warm unwrap per container (RSA-3072 OAEP decrypt of one DEK)",
            f"{unwrap * 1000:.2f} ms = {1 / unwrap:,.0f} unwraps/s single-threaded",
            "no KMS call while the KEK is cached",
            None,
            "",
        )
    )
    return results


def _row(e: Economy) -> Result:
    return Result(
        SECTION,
        f"K={e.orgs} orgs, {e.playbacks:,} playbacks/day, N={e.containers}, T={e.max_age:g} s",
        f"{e.calls:,} KMS calls ({e.calls / e.playbacks:.3f} per playback; model {e.model:,.0f})",
        f"floor K*D/T {e.floor:,.0f} (busy org-windows {e.busy_windows:,}); "
        f"per playback {e.playbacks:,}",
        e.calls / e.floor,
        f"<= {e.containers}x",
    )


def table(results: list[Result]) -> str:
    """The rows as a Markdown table (for BENCHMARKS.md and the module README)."""
    lines = [
        "| configuration | KMS calls | baselines | calls / floor | goal |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(f"| {r.name} | {r.measured} | {r.baseline} | {ratio} | {r.goal} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run(quick="--quick" in sys.argv[1:])))

"""The KEK cache: hard age, count bound, one load per key, org eviction."""

from __future__ import annotations

import threading
import time

import pytest

from kmsbridge.decryptor.cache import TtlCache
from tests.conftest import Clock


def test_entries_expire_at_max_age(clock: Clock) -> None:
    cache: TtlCache[str] = TtlCache(60, now=clock)
    assert cache.get_or_load(("a", 1), lambda: "v") == ("v", "miss")
    clock.advance(59.9)
    assert cache.get_or_load(("a", 1), lambda: "w") == ("v", "hit")
    clock.advance(0.1)
    assert cache.get_or_load(("a", 1), lambda: "w") == ("w", "miss")


def test_age_counts_from_the_load_not_the_last_use(clock: Clock) -> None:
    cache: TtlCache[str] = TtlCache(10, now=clock)
    cache.put(("a", 1), "v")
    for _ in range(5):
        clock.advance(2.5)
        cache.get(("a", 1))
    assert cache.get(("a", 1)) is None


def test_max_age_zero_caches_nothing(clock: Clock) -> None:
    cache: TtlCache[int] = TtlCache(0, now=clock)
    loads = iter(range(10))
    assert cache.get_or_load(("a", 1), lambda: next(loads))[0] == 0
    assert cache.get_or_load(("a", 1), lambda: next(loads))[0] == 1
    assert len(cache) == 0


def test_count_bound_evicts_least_recently_used(clock: Clock) -> None:
    cache: TtlCache[int] = TtlCache(60, max_entries=2, now=clock)
    cache.put(("a", 1), 1)
    cache.put(("a", 2), 2)
    cache.get(("a", 1))
    cache.put(("a", 3), 3)
    assert cache.get(("a", 2)) is None
    assert cache.get(("a", 1)) == 1 and cache.get(("a", 3)) == 3


def test_concurrent_misses_make_one_load() -> None:
    cache: TtlCache[str] = TtlCache(60)
    started = threading.Event()
    calls = []

    def load() -> str:
        calls.append(1)
        started.set()
        time.sleep(0.05)  # hold the flight open while the others arrive
        return "v"

    results: list[tuple[str, str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load(("a", 1), load)))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert {r[0] for r in results} == {"v"}
    assert sorted(r[1] for r in results).count("miss") == 1


def test_a_failed_load_reaches_every_waiter_and_caches_nothing() -> None:
    cache: TtlCache[str] = TtlCache(60)

    def load() -> str:
        time.sleep(0.02)
        raise PermissionError("refused")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            cache.get_or_load(("a", 1), load)
        except PermissionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4
    assert len(cache) == 0


def test_evict_org_drops_its_entries_and_in_flight_loads(clock: Clock) -> None:
    cache: TtlCache[str] = TtlCache(60, now=clock)
    cache.put(("a", 1), "a1")
    cache.put(("b", 1), "b1")

    def load_then_revoke() -> str:
        cache.evict_org("a")  # a revocation observed while this load was in flight
        return "a2"

    assert cache.get_or_load(("a", 2), load_then_revoke) == ("a2", "miss")
    assert cache.get(("a", 1)) is None and cache.get(("a", 2)) is None
    assert cache.get(("b", 1)) == "b1"


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        TtlCache(-1)
    with pytest.raises(ValueError):
        TtlCache(1, max_entries=0)

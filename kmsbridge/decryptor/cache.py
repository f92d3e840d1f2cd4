"""A cache of unwrapped KEKs (and data keys) with a hard maximum age and a maximum count.

Entries expire a fixed time after their load *began*, whatever their use: a KEK's load is
the KMS request, and KMS agrees (or not) after it was sent, so the entry never outlives
KMS's answer by more than ``max_age``: the bound on how long playback continues after a
customer revokes their KMS key. A value derived from a cached one (a data key from its
KEK) is stored with the expiry of what it came from (``put(..., expires=)``), never more.

Concurrent misses for one key make one load (the others wait for it). ``evict_org`` drops
an org's entries at once and bumps the org's generation: a load in flight, or a ``put``
whose caller read the generation before its work began, is then not stored. The clock is
injected (``now``), so expiry is tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")
Key = tuple[str, Hashable]  # (org, anything): every entry belongs to one org


class Entry(NamedTuple, Generic[T]):
    """A value, how it was found ("hit", "miss", "shared"), and when it stops being served."""

    value: T
    how: str
    expires: float


@dataclass
class _Flight(Generic[T]):
    expires: float
    done: threading.Event = field(default_factory=threading.Event)
    value: T | None = None
    error: BaseException | None = None


class TtlCache(Generic[T]):
    """Bounded by age and count; thread-safe; one load per key at a time."""

    def __init__(
        self,
        max_age: float,
        max_entries: int = 1024,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age < 0 or max_entries < 1:
            raise ValueError("max_age must be >= 0 and max_entries >= 1")
        self.max_age = max_age
        self.max_entries = max_entries
        self._now = now
        self._entries: OrderedDict[Key, tuple[float, T]] = OrderedDict()
        self._flights: dict[Key, _Flight[T]] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: Key) -> T | None:
        with self._lock:
            entry = self._fresh(key)
            return None if entry is None else entry[1]

    def generation(self, org: str) -> int:
        """The org's eviction count: read it before deriving a value to ``put`` later."""
        with self._lock:
            return self._generation.get(org, 0)

    def put(
        self, key: Key, value: T, *, expires: float | None = None, generation: int | None = None
    ) -> bool:
        """Store ``value`` until ``expires`` (at most ``max_age`` from now); False if not stored.

        With ``generation`` (from ``generation()`` before the value was derived), nothing
        is stored if the org was evicted since: a revocation seen meanwhile wins.
        """
        with self._lock:
            if generation is not None and self._generation.get(key[0], 0) != generation:
                return False
            return self._store(key, value, expires)

    def get_or_load(self, key: Key, load: Callable[[], T]) -> tuple[T, str]:
        """The cached value, or the result of ``load()``; says "hit", "miss" or "shared"."""
        value, how, _ = self.get_or_load_entry(key, load)
        return value, how

    def get_or_load_entry(self, key: Key, load: Callable[[], T]) -> Entry[T]:
        """``get_or_load`` with the value's expiry: its load's start + ``max_age``."""
        with self._lock:
            cached = self._fresh(key)
            if cached is not None:
                return Entry(cached[1], "hit", cached[0])
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight(self._now() + self.max_age)
            generation = self._generation.get(key[0], 0)
        if not leader:
            return Entry(self._follow(flight), "shared", flight.expires)
        return Entry(self._lead(key, flight, generation, load), "miss", flight.expires)

    def evict_org(self, org: str) -> int:
        """Drop every entry of ``org`` now; loads in flight for it will not be stored."""
        with self._lock:
            self._generation[org] = self._generation.get(org, 0) + 1
            doomed = [k for k in self._entries if k[0] == org]
            for k in doomed:
                del self._entries[k]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            for org in {k[0] for k in self._entries}:
                self._generation[org] = self._generation.get(org, 0) + 1
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # ------------------------------------------------------------ internals

    def _fresh(self, key: Key) -> tuple[float, T] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._now() >= entry[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: Key, value: T, expires: float | None = None) -> bool:
        now = self._now()
        latest = now + self.max_age
        expires = latest if expires is None else min(expires, latest)
        if self.max_age <= 0 or expires <= now:
            return False
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def _lead(self, key: Key, flight: _Flight[T], generation: int, load: Callable[[], T]) -> T:
        try:
            self.loads += 1
            flight.value = load()
            return flight.value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                if flight.error is None and self._generation.get(key[0], 0) == generation:
                    self._store(key, flight.value, flight.expires)  # type: ignore[arg-type]
                del self._flights[key]
            flight.done.set()

    @staticmethod
    def _follow(flight: _Flight[T]) -> T:
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return flight.value  # type: ignore[return-value]

"""A cache of unwrapped KEKs (and data keys) with a hard maximum age and a maximum count.

Entries expire a fixed time after they were loaded, whatever their use: that age is the
bound on how long playback continues after a customer revokes their KMS key. Concurrent
misses for one key make one load (the others wait for it). ``evict_org`` drops an org's
entries at once and stops loads already in flight from being stored. The clock is
injected (``now``), so expiry is tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
Key = tuple[str, Hashable]  # (org, anything): every entry belongs to one org


@dataclass
class _Flight(Generic[T]):
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
            return self._fresh(key)

    def put(self, key: Key, value: T) -> None:
        with self._lock:
            self._store(key, value)

    def get_or_load(self, key: Key, load: Callable[[], T]) -> tuple[T, str]:
        """The cached value, or the result of ``load()``; says "hit", "miss" or "shared"."""
        with self._lock:
            value = self._fresh(key)
            if value is not None:
                return value, "hit"
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            generation = self._generation.get(key[0], 0)
        if not leader:
            return self._follow(flight), "shared"
        return self._lead(key, flight, generation, load), "miss"

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

    def _fresh(self, key: Key) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._now() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _store(self, key: Key, value: T) -> None:
        if self.max_age <= 0:
            return
        self._entries[key] = (self._now() + self.max_age, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

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
                    self._store(key, flight.value)  # type: ignore[arg-type]
                del self._flights[key]
            flight.done.set()

    @staticmethod
    def _follow(flight: _Flight[T]) -> T:
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return flight.value  # type: ignore[return-value]

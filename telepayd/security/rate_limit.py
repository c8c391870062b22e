"""A memory-bounded rate limiter: GCRA (the token bucket's exact twin) with an LRU cap on tracked keys.

Each key costs one float (its theoretical arrival time). When ``max_clients`` keys are tracked, the least
recently seen one is evicted first, so a flood of distinct addresses cannot grow memory. An evicted key
starts again with a full burst: bounded memory is worth more than a perfect memory of idle clients.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RateLimiter:
    """``per_minute`` sustained requests per key, with bursts of up to ``burst`` requests."""

    __slots__ = ("per_minute", "burst", "max_clients", "_interval", "_tolerance", "_arrivals", "_clock")

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or burst < 1 or max_clients < 1:
            raise ValueError("per_minute, burst and max_clients must be at least 1")
        self.per_minute = per_minute
        self.burst = burst
        self.max_clients = max_clients
        self._interval = 60.0 / per_minute
        self._tolerance = self._interval * burst
        self._arrivals: OrderedDict[Hashable, float] = OrderedDict()
        self._clock = clock

    def acquire(self, key: Hashable) -> float:
        """Count one request for ``key``: return 0.0 when allowed, else the seconds to wait."""
        now = self._clock()
        arrivals = self._arrivals
        arrival = arrivals.get(key)
        if arrival is None:
            if len(arrivals) >= self.max_clients:
                arrivals.popitem(last=False)
            arrival = now
        elif arrival < now:
            arrival = now
        next_arrival = arrival + self._interval
        wait = next_arrival - self._tolerance - now
        if wait > 1e-9:  # not 0: float rounding must not refuse the last request of a burst
            if key in arrivals:
                arrivals.move_to_end(key)
            return wait
        arrivals[key] = next_arrival
        arrivals.move_to_end(key)
        return 0.0

    def __len__(self) -> int:
        return len(self._arrivals)

    def same_limits(self, per_minute: int, burst: int, max_clients: int) -> bool:
        return (self.per_minute, self.burst, self.max_clients) == (per_minute, burst, max_clients)

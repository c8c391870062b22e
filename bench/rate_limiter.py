"""Rate limiter under an address flood: 1,000,000 distinct addresses, capped at 100,000 tracked keys."""

from __future__ import annotations

import gc
import ipaddress
import statistics
import time
import tracemalloc

from bench.targets import verdict
from telepayd.security.client_address import rate_limit_key
from telepayd.security.rate_limit import RateLimiter

ADDRESSES = 1_000_000
CAP = 100_000
BATCH = 1000


class UnboundedLimiter:
    """The same GCRA on a plain dict with no cap: what the LRU bound is measured against."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self._interval = 60.0 / per_minute
        self._tolerance = self._interval * burst
        self._arrivals: dict[int, float] = {}

    def acquire(self, key: int) -> float:
        now = time.monotonic()
        arrival = max(self._arrivals.get(key, now), now)
        wait = arrival + self._interval - self._tolerance - now
        if wait > 0:
            return wait
        self._arrivals[key] = arrival + self._interval
        return 0.0


def _median_ns(acquire, keys: list[int]) -> float:
    per_decision: list[float] = []
    for start in range(0, len(keys), BATCH):
        chunk = keys[start:start + BATCH]
        t0 = time.perf_counter_ns()
        for key in chunk:
            acquire(key)
        per_decision.append((time.perf_counter_ns() - t0) / BATCH)
    return statistics.median(per_decision)


def main() -> dict[str, float]:
    # Keys are derived from already parsed addresses (the allowlist check parses each address once).
    keys = [rate_limit_key(ipaddress.IPv4Address(0x0A000000 + n)) for n in range(ADDRESSES // 2)]
    keys += [rate_limit_key(ipaddress.IPv6Address((0x20010DB8 << 96) + (n << 64))) for n in range(ADDRESSES // 2)]

    # Memory and the cap, under tracemalloc.
    limiter = RateLimiter(120, 30, max_clients=CAP)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    peak_keys = 0
    for start in range(0, ADDRESSES, BATCH):
        for key in keys[start:start + BATCH]:
            limiter.acquire(key)
        peak_keys = max(peak_keys, len(limiter))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    # Decision time, without tracemalloc, against the unbounded twin in the same run.
    bounded_ns = _median_ns(RateLimiter(120, 30, max_clients=CAP).acquire, keys)
    unbounded_ns = _median_ns(UnboundedLimiter(120, 30).acquire, keys)
    median_us = bounded_ns / 1000
    ratio = bounded_ns / unbounded_ns
    print("rate limiter: 1,000,000 distinct addresses (half IPv4, half IPv6 /64s), cap 100,000 keys")
    print(f"  tracked keys at most          {peak_keys:,} (cap {CAP:,}): {verdict(peak_keys <= CAP, 'rate limiter keys within the cap')}")
    print(f"  memory growth                 {grown / 2**20:.1f} MB (target < 64 MB): {verdict(grown < 64 * 2**20, 'rate limiter memory under 64 MB')}")
    print(f"  median decision               {median_us:.2f} us (target < 2 us): {verdict(median_us < 2, 'rate limiter decision under 2 us')}")
    print(f"  bounded LRU / unbounded dict  {ratio:.2f}x the time per decision (same run)")
    return {"peak_keys": peak_keys, "memory_mb": grown / 2**20, "median_us": median_us, "lru_cost_ratio": ratio}


if __name__ == "__main__":
    main()

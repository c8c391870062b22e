"""GCRA rate limiter: bursts, sustained rate, wait times and the bound on tracked keys."""

from __future__ import annotations

import pytest

from telepayd.security.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_the_wait():
    clock = Clock()
    limiter = RateLimiter(60, 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_sustained_rate_is_per_minute():
    clock = Clock()
    limiter = RateLimiter(120, 1, clock=clock)
    allowed = 0
    for _ in range(240):  # 60 seconds in 0.25 s steps (exact in binary floating point)
        allowed += limiter.acquire("k") == 0.0
        clock.now += 0.25
    assert allowed == 120


def test_refused_requests_do_not_consume():
    clock = Clock()
    limiter = RateLimiter(60, 1, clock=clock)
    assert limiter.acquire("a") == 0.0
    for _ in range(10):
        assert limiter.acquire("a") > 0
    clock.now += 1.0
    assert limiter.acquire("a") == 0.0


def test_keys_are_independent():
    limiter = RateLimiter(60, 1, clock=Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_tracked_keys_never_exceed_the_cap_and_lru_is_evicted():
    clock = Clock()
    limiter = RateLimiter(60, 1, max_clients=3, clock=clock)
    for key in "abc":
        limiter.acquire(key)
    limiter.acquire("a")  # refused, but "a" becomes the most recently seen
    limiter.acquire("d")  # evicts "b", the least recently seen
    assert len(limiter) == 3
    assert limiter.acquire("a") > 0  # still tracked
    assert limiter.acquire("b") == 0.0  # forgotten, so a fresh burst
    for n in range(1000):
        limiter.acquire(n)
        assert len(limiter) <= 3


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        RateLimiter(0, 1)

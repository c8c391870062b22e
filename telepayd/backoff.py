"""Exponential backoff with jitter, for everything that retries (a task restart, a reconnection)."""

from __future__ import annotations

import random


class Backoff:
    """``next()`` gives ``first``, then about twice the previous delay, never above ``most``; ``reset()``
    after a success. Each delay is spread by ±``jitter`` so that daemons that failed together do not retry
    together."""

    def __init__(self, *, first: float = 1.0, most: float = 30.0, jitter: float = 0.1) -> None:
        self._first = first
        self._most = most
        self._jitter = jitter
        self._delay = first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self._most)
        return delay * random.uniform(1 - self._jitter, 1 + self._jitter)

    def reset(self) -> None:
        self._delay = self._first

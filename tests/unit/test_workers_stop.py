"""Background workers stop when cancelled, even while they are woken all the time (Python 3.11's
asyncio.wait_for swallowed such a cancellation, and a busy daemon then never finished stopping)."""

from __future__ import annotations

import asyncio

from telepayd.config import Config, OutboxConfig, SubscriptionsConfig
from telepayd.outbox import OutboxWorker
from telepayd.sweeper import Sweeper


async def _cancel_while_woken(wait_once, wake) -> int:
    """How many of 200 cancellations, each sent while ``wake`` keeps firing, did not stop the waiter."""
    missed = 0
    for round_ in range(200):
        async def forever() -> None:
            while True:
                await wait_once()

        async def waking() -> None:
            while True:
                wake()
                await asyncio.sleep(0)

        waiter, waker = asyncio.create_task(forever()), asyncio.create_task(waking())
        await asyncio.sleep(0.0005 * (round_ % 5))
        waiter.cancel()
        done, _ = await asyncio.wait([waiter], timeout=0.5)
        missed += not done
        waker.cancel()
        waiter.cancel()
        await asyncio.wait([waiter, waker], timeout=0.5)
    return missed


async def test_the_outbox_worker_stops_while_woken_all_the_time():
    worker = OutboxWorker(None, lambda: None, lambda: OutboxConfig())  # type: ignore[arg-type]
    assert await _cancel_while_woken(lambda: worker._sleep(1.0), worker.wake) == 0


async def test_the_sweeper_stops_while_nudged_all_the_time():
    config = Config.__new__(Config)
    object.__setattr__(config, "subscriptions", SubscriptionsConfig(sweep_interval_seconds=1))
    sweeper = Sweeper(None, lambda: config, ready=lambda: False, wake_outbox=lambda: None)  # type: ignore[arg-type]
    assert await _cancel_while_woken(sweeper.run, sweeper.nudge) == 0


async def _idle_while_woken(worker: OutboxWorker, *, urgent_after: float | None) -> float:
    """How long an idle worker that just looked stays idle while notifications wake it every millisecond
    (and, ``urgent_after`` seconds in, a join link does)."""
    import time

    async def waking() -> None:
        started = time.monotonic()
        while True:
            worker.wake(urgent=urgent_after is not None and time.monotonic() - started >= urgent_after)
            await asyncio.sleep(0.001)

    worker._urgent = False
    worker._looked_at = time.monotonic()
    waker = asyncio.create_task(waking())
    started = time.monotonic()
    try:
        await worker._idle(1.0)
        return time.monotonic() - started
    finally:
        waker.cancel()
        await asyncio.gather(waker, return_exceptions=True)


async def test_notifications_wake_an_idle_outbox_at_most_once_per_gap_and_a_join_link_at_once():
    """A burst of owner notifications while their chat cools down made the worker query the outbox once per
    notification (a tenth of the daemon's CPU under a signed-ingest load): now once per gap at most."""
    from telepayd.outbox import NOT_URGENT_GAP_SECONDS

    worker = OutboxWorker(None, lambda: None, lambda: OutboxConfig())  # type: ignore[arg-type]
    idle = await _idle_while_woken(worker, urgent_after=None)
    assert NOT_URGENT_GAP_SECONDS * 0.9 <= idle < 0.5
    assert await _idle_while_woken(worker, urgent_after=0.005) < NOT_URGENT_GAP_SECONDS * 0.9

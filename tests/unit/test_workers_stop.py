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

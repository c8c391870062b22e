"""The pool keeps a cancellation that comes as it hands a connection over.

psycopg_pool waits for a connection with ``asyncio.wait_for``, which on Python 3.11 then returns the
connection and drops the cancellation: a worker stopped just after the daemon started (each waits for its
first connection then) went on to its next sleep, and the stop waited 5 s for it, 1 stop in 8."""

from __future__ import annotations

import asyncio
import sys

from psycopg_pool import AsyncConnectionPool, PoolTimeout

from telepayd.config import DatabaseConfig
from telepayd.store.pool import create_pool


async def _stops_when_cancelled_as_handed_over(pool: AsyncConnectionPool) -> bool:
    """Whether a worker that waits for the pool's one connection stops when cancelled just as it gets it."""
    held = await pool.getconn()

    async def worker() -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        await asyncio.sleep(3600)  # its next round

    task = asyncio.create_task(worker())
    for _ in range(5):
        await asyncio.sleep(0)  # waiting in the pool's queue
    await pool.putconn(held)  # handed to the worker ...
    task.cancel()  # ... and cancelled in the same turn of the loop
    done, _ = await asyncio.wait([task], timeout=1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return bool(done)


async def test_psycopg_pools_own_pool_loses_the_cancellation(database_dsn):
    """What the next test guards against, shown with psycopg_pool's pool (Python 3.12 no longer loses it)."""
    pool = AsyncConnectionPool(database_dsn, min_size=1, max_size=1, open=False)
    await pool.open(wait=True)
    try:
        assert await _stops_when_cancelled_as_handed_over(pool) is (sys.version_info >= (3, 12))
    finally:
        await pool.close()


async def test_telepayds_pool_keeps_it_and_gets_the_connection_back(database_dsn):
    pool = create_pool(DatabaseConfig(dsn=database_dsn, min_size=1, max_size=1))
    await pool.open(wait=True)
    try:
        assert await _stops_when_cancelled_as_handed_over(pool)
        async with pool.connection(timeout=2) as conn:  # the pool's one connection came back, and works
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()


async def test_a_task_cleaning_up_after_its_cancellation_still_gets_a_connection(database_dsn):
    """Only a cancellation requested while the task waited is raised: one that came before (a worker that
    writes something down as it stops) is the task's own business."""
    pool = create_pool(DatabaseConfig(dsn=database_dsn, min_size=1, max_size=1))
    await pool.open(wait=True)
    cleaned = asyncio.Event()

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            async with pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            cleaned.set()
            raise

    try:
        task = asyncio.create_task(worker())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and cleaned.is_set()
    finally:
        await pool.close()


async def _lose_the_cancellation() -> None:
    """What psycopg_pool's wait_for does on Python 3.11: the cancellation is requested, then dropped."""
    asyncio.current_task().cancel()
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        pass


async def test_a_lost_cancellation_is_raised_when_the_pool_then_gives_up(monkeypatch):
    """Lost at the hand-over, then the connection fails its check until the deadline: PoolTimeout, which
    the workers catch and sleep on; the cancellation must win."""
    async def lost_then_timed_out(self, timeout=None):
        await _lose_the_cancellation()
        raise PoolTimeout("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(AsyncConnectionPool, "getconn", lost_then_timed_out)
    waiter = asyncio.create_task(create_pool(DatabaseConfig()).getconn())
    await asyncio.wait([waiter], timeout=1.0)
    assert waiter.cancelled()


async def test_the_connection_goes_back_even_if_cancelled_again_meanwhile(monkeypatch):
    connection, returned = object(), []

    async def lost(self, timeout=None):
        await _lose_the_cancellation()
        return connection

    async def slow_putconn(self, conn):
        await asyncio.sleep(0.05)
        returned.append(conn)

    monkeypatch.setattr(AsyncConnectionPool, "getconn", lost)
    monkeypatch.setattr(AsyncConnectionPool, "putconn", slow_putconn)
    waiter = asyncio.create_task(create_pool(DatabaseConfig()).getconn())
    await asyncio.sleep(0.01)  # giving the connection back
    waiter.cancel()
    await asyncio.wait([waiter], timeout=1.0)
    await asyncio.sleep(0.1)
    assert waiter.cancelled() and returned == [connection]

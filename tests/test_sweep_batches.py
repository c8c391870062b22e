"""The sweep's cost follows what is due, not what the table holds: only subscriptions owed a reminder are
read and locked, and a backlog of reminders and removals larger than a batch clears in one sweep (issue 14)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from telepayd import sweeper as sweeper_module
from telepayd.config import load
from telepayd.store import schema, sweeps
from telepayd.sweeper import Sweeper
from tools.local_config import ConfigFiles


@pytest.fixture
async def conn(database_dsn):
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as connection:
        await schema.migrate(connection)
        await connection.execute(
            "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title) VALUES (-1001, -1002, 5, 'T')")
        yield connection


async def add(conn, user_id: int, ends_in: timedelta, reminded: list[int], removed: bool = False) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (user_id, channel_id, ends_at, reminded_days, removed_at)"
        " VALUES (%s, 1, now() + %s, %s, CASE WHEN %s THEN now() END)", [user_id, ends_in, reminded, removed])


async def sweep_once(database_dsn, tmp_path) -> None:
    """One sweep by telepayd's Sweeper, with the default config, on its own pool."""
    files = ConfigFiles(tmp_path, database_dsn)
    files.write()
    config = load(files.path)
    pool = AsyncConnectionPool(database_dsn, min_size=1, max_size=3, open=False)
    await pool.open()
    try:
        assert await Sweeper(pool, lambda: config, ready=lambda: True, wake_outbox=lambda: None).sweep_once()
    finally:
        await pool.close()


async def test_only_subscriptions_owed_a_reminder_are_read(conn):
    await add(conn, 1, timedelta(hours=12), [3, 1])      # both reminders sent
    await add(conn, 2, timedelta(hours=12), [3])         # owed the 1-day reminder
    await add(conn, 3, timedelta(days=2), [])            # owed the 3-day reminder
    await add(conn, 4, timedelta(days=2), [3])           # the 3-day one sent, the 1-day one not yet due
    await add(conn, 5, timedelta(days=10), [])           # not within the window
    await add(conn, 6, timedelta(hours=5), [], removed=True)  # removed earlier (revoked), not reminded again
    async with conn.transaction():
        owed = await sweeps.to_remind(conn, [3, 1], datetime.now(timezone.utc))
    assert sorted(s.user_id for s in owed) == [2, 3]
    async with conn.transaction():
        first = await sweeps.to_remind(conn, [3, 1], datetime.now(timezone.utc), limit=1)
        assert [s.user_id for s in first] == [2]  # the nearest end first
        later = await sweeps.to_remind(conn, [3, 1], datetime.now(timezone.utc), after=first[0].ends_at + timedelta(seconds=1))
        assert [s.user_id for s in later] == [3]  # the next batch reads on from where the last one stopped


async def test_a_backlog_larger_than_a_batch_clears_in_one_sweep(conn, database_dsn, tmp_path, monkeypatch):
    monkeypatch.setattr(sweeper_module, "BATCH", 5)
    for n in range(23):
        await add(conn, 100 + n, -timedelta(minutes=n + 1), [])
    for n in range(12):
        await add(conn, 200 + n, timedelta(hours=n + 1), [3])
    await sweep_once(database_dsn, tmp_path)
    kinds = dict((await (await conn.execute("SELECT kind, count(*) FROM outbox GROUP BY kind")).fetchall()))
    assert kinds == {"remove_member": 23, "message": 12}
    left = await (await conn.execute(
        "SELECT count(*) FROM subscriptions WHERE removed_at IS NULL AND (ends_at <= now() OR NOT 1 = ANY(reminded_days))")).fetchone()
    assert left[0] == 0


async def test_the_sweep_and_its_query_agree_when_the_daemons_clock_is_behind_the_databases(conn, database_dsn, tmp_path,
                                                                                         monkeypatch):
    """Found in review: the query judged "owed" by the database's clock and the sweeper by its own; rows the
    two disagreed on filled batches that queued nothing, and the reminders after them never went out."""
    monkeypatch.setattr(sweeper_module, "BATCH", 5)
    real_datetime = sweeper_module.datetime

    class Behind(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.now(tz) - timedelta(minutes=10)

    monkeypatch.setattr(sweeper_module, "datetime", Behind)
    for n in range(6):  # owed their 1-day reminder by the database's clock, not yet by the daemon's
        await add(conn, 300 + n, timedelta(days=1, minutes=-5 + n * 0.1), [3])
    for n in range(3):  # owed their 3-day reminder by both
        await add(conn, 400 + n, timedelta(days=2, hours=n), [])
    await sweep_once(database_dsn, tmp_path)
    reminded = await (await conn.execute(
        "SELECT user_id FROM subscriptions WHERE 3 = ANY(reminded_days) AND user_id >= 400 ORDER BY 1")).fetchall()
    assert [r[0] for r in reminded] == [400, 401, 402]

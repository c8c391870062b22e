"""Migrations on a database that already holds data (issue 14: they must stay safe on a big table)."""

from __future__ import annotations

import psycopg

from telepayd.store import schema


async def test_0008_gives_running_subscriptions_the_tier_of_the_order_paid_last(database_dsn):
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as conn:
        await schema.migrate(conn, up_to=7)
        await conn.execute(
            "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title) VALUES (-1001, -1002, 5, 'T');"
            "INSERT INTO tiers (channel_id, position, price, days) VALUES (1, 1, 5, 7), (1, 2, 9, 30);"
            # User 1: tier 1, later tier 2, both paid (running); user 2: tier 1 paid, then a tier-2 order
            # marked refunded (running: the backfill leaves it out); user 3: an operator's grant (running);
            # user 4: paid, ended; user 5: a tier-2 order created first but paid last (its updated_at).
            "INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status, created_at, updated_at) VALUES"
            " ('a', 'subscription', 1, 1, 1, 7, 5, 'paid', now() - interval '40 days', now() - interval '40 days'),"
            " ('b', 'subscription', 1, 1, 2, 30, 9, 'paid', now() - interval '2 days', now() - interval '2 days'),"
            " ('c', 'subscription', 2, 1, 2, 30, 9, 'refunded', now() - interval '1 day', now() - interval '1 day'),"
            " ('d', 'subscription', 2, 1, 1, 7, 5, 'paid', now() - interval '3 days', now() - interval '3 days'),"
            " ('e', 'subscription', 4, 1, 2, 30, 9, 'paid', now() - interval '90 days', now() - interval '90 days'),"
            " ('f', 'subscription', 5, 1, 2, 30, 9, 'paid', now() - interval '10 days', now() - interval '1 day'),"
            " ('g', 'subscription', 5, 1, 1, 7, 5, 'paid', now() - interval '5 days', now() - interval '4 days');"
            "INSERT INTO subscriptions (user_id, channel_id, ends_at) VALUES"
            " (1, 1, now() + interval '28 days'), (2, 1, now() + interval '4 days'), (3, 1, now() + interval '3 days'),"
            " (4, 1, now() - interval '60 days'), (5, 1, now() + interval '29 days')")
        applied = await schema.migrate(conn)
        assert [m.version for m in applied][0] == 8
        rows = await (await conn.execute("SELECT user_id, tier_id FROM subscriptions ORDER BY user_id")).fetchall()
    assert rows == [(1, 2), (2, 1), (3, None), (4, None), (5, 2)]


def test_a_long_migration_at_start_runs_once_while_the_daemon_serves_degraded(config_files, start_daemon):
    """Found in review: the first attempt to prepare the database was cancelled after 3 s, so a migration
    that takes longer (0008 on a million subscriptions) rolled back and ran again from the start, and
    /status said "not connected yet" meanwhile. Here another session holds subscriptions for a while."""
    import asyncio
    import json
    import time
    import urllib.error
    import urllib.request

    async def schema_7() -> None:
        async with await psycopg.AsyncConnection.connect(config_files.dsn, autocommit=True) as conn:
            await schema.migrate(conn, up_to=7)

    asyncio.run(schema_7())

    def get(path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(daemon.base_url + path, timeout=10) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.load(exc)

    with psycopg.connect(config_files.dsn) as locker:
        locker.execute("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        started = time.monotonic()
        daemon = start_daemon(config_files)  # READY=1, degraded
        assert time.monotonic() - started < 10
        time.sleep(4)  # past the first attempt's 3 s
        status, body = get("/status")
        assert body["database"] == {"ready": False, "problem": "migrating the schema"}, body
        assert get("/ready")[0] == 503
    deadline = time.monotonic() + 20
    while get("/ready")[0] != 200:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.2)
    assert daemon.log().count("applying migration 0008") == 1, daemon.log()
    with psycopg.connect(config_files.dsn) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == schema.latest_version()

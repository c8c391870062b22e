"""Migrations on a database that already holds data (issue 14: they must stay safe on a big table)."""

from __future__ import annotations

import psycopg

from telepayd.store import schema


async def migrate_to(conn: psycopg.AsyncConnection, version: int) -> None:
    async with conn.transaction():
        await conn.execute(schema._CREATE_TABLE)
        for migration in schema.migrations():
            if migration.version <= version:
                await conn.execute(migration.sql.encode())
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                   [migration.version, migration.name])


async def test_0008_gives_running_subscriptions_the_tier_of_the_last_plan_paid_for(database_dsn):
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as conn:
        await migrate_to(conn, 7)
        await conn.execute(
            "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title) VALUES (-1001, -1002, 5, 'T');"
            "INSERT INTO tiers (channel_id, position, price, days) VALUES (1, 1, 5, 7), (1, 2, 9, 30);"
            # User 1: paid tier 1, later tier 2 (running); user 2: tier 1, later tier 2 paid and refunded
            # (running: the refunded plan counts, as it does once the daemon keeps the tier itself); user 3:
            # an operator's grant (running); user 4: paid, ended.
            "INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status, created_at) VALUES"
            " ('a', 'subscription', 1, 1, 1, 7, 5, 'paid', now() - interval '40 days'),"
            " ('b', 'subscription', 1, 1, 2, 30, 9, 'paid', now() - interval '2 days'),"
            " ('c', 'subscription', 2, 1, 2, 30, 9, 'refunded', now() - interval '1 day'),"
            " ('d', 'subscription', 2, 1, 1, 7, 5, 'paid', now() - interval '3 days'),"
            " ('e', 'subscription', 4, 1, 2, 30, 9, 'paid', now() - interval '90 days');"
            "INSERT INTO subscriptions (user_id, channel_id, ends_at) VALUES"
            " (1, 1, now() + interval '28 days'), (2, 1, now() + interval '4 days'), (3, 1, now() + interval '3 days'),"
            " (4, 1, now() - interval '60 days')")
        applied = await schema.migrate(conn)
        assert [m.version for m in applied][0] == 8
        rows = await (await conn.execute("SELECT user_id, tier_id FROM subscriptions ORDER BY user_id")).fetchall()
    assert rows == [(1, 2), (2, 2), (3, None), (4, None)]

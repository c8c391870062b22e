"""Queries on ``trials``: a channel's free trial, taken once per user and channel, ever."""

from __future__ import annotations

from psycopg import AsyncConnection


async def offered(conn: AsyncConnection, user_id: int, channel_id: int) -> bool:
    """Whether the user may still take the channel's trial: no trial and no subscription there, ever."""
    cursor = await conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM trials WHERE user_id = %(user)s AND channel_id = %(channel)s)"
        " AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE user_id = %(user)s AND channel_id = %(channel)s)",
        {"user": user_id, "channel": channel_id},
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


async def take(conn: AsyncConnection, user_id: int, channel_id: int, days: int) -> bool:
    """Record the user's trial of the channel; False when they had one or a subscription there (the primary
    key decides between two at once). The caller grants the access in the same transaction."""
    cursor = await conn.execute(
        "INSERT INTO trials (user_id, channel_id, days, ends_at)"
        " SELECT %(user)s, %(channel)s, %(days)s, now() + make_interval(days => %(days)s)"
        " WHERE NOT EXISTS (SELECT 1 FROM subscriptions WHERE user_id = %(user)s AND channel_id = %(channel)s)"
        " ON CONFLICT (user_id, channel_id) DO NOTHING RETURNING 1",
        {"user": user_id, "channel": channel_id, "days": days},
    )
    return await cursor.fetchone() is not None

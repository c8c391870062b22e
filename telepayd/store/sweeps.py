"""Queries for the periodic sweeps: ending subscriptions, stale keypads, broadcast jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class Ending:
    user_id: int
    channel_id: int
    ends_at: datetime
    reminded_days: list[int]
    title: str
    closed_channel_id: int
    renews: bool  # a Stars subscription renews it (not cancelled)
    language: str | None = None  # the user's /language choice
    telegram_language: str | None = None  # the language Telegram gave for them last


_ENDING = (
    "SELECT s.user_id, s.channel_id, s.ends_at, s.reminded_days, c.title, c.closed_channel_id,"
    " (s.renewal_charge_id IS NOT NULL AND NOT s.renewal_canceled) AS renews, u.language, u.telegram_language"
    " FROM subscriptions s JOIN channels c ON c.id = s.channel_id LEFT JOIN users u ON u.user_id = s.user_id"
    " WHERE s.removed_at IS NULL"
)
# Telegram charges a Stars renewal when the period ends; the update may come a little later. A member whose
# renewal is on is removed only this long after the end, if no renewal came.
RENEWAL_GRACE = "interval '1 day'"


async def to_remind(conn: AsyncConnection, days: list[int], now: datetime, limit: int = 500, *,
                    after: datetime | None = None) -> list[Ending]:
    """Running subscriptions owed a reminder at ``now`` (the caller's clock, so that it decides on the same
    rows), nearest end first: one of ``days`` (of 86,400 s, whatever the session's time zone) before the end
    has come and is not in ``reminded_days``. Only those are locked; ``after`` (the last end of the previous
    batch) starts the reading there, so a sweep reads the reminder window once, not once a batch."""
    cursor = conn.cursor(row_factory=class_row(Ending))
    await cursor.execute(
        _ENDING + " AND s.ends_at > %(now)s AND s.ends_at >= coalesce(%(after)s::timestamptz, '-infinity')"
        " AND s.ends_at <= %(now)s + make_interval(secs => %(most)s * 86400)"
        " AND EXISTS (SELECT 1 FROM unnest(%(days)s::int[]) d"
        "  WHERE s.ends_at <= %(now)s + make_interval(secs => d * 86400) AND NOT d = ANY(s.reminded_days))"
        " ORDER BY s.ends_at LIMIT %(limit)s FOR UPDATE OF s SKIP LOCKED",
        {"now": now, "most": max(days), "days": list(days), "limit": limit, "after": after},
    )
    return await cursor.fetchall()


async def mark_reminded(conn: AsyncConnection, user_id: int, channel_id: int, days: list[int]) -> None:
    await conn.execute(
        "UPDATE subscriptions SET reminded_days = %s WHERE user_id = %s AND channel_id = %s", [days, user_id, channel_id]
    )


async def ended(conn: AsyncConnection, limit: int = 500) -> list[Ending]:
    cursor = conn.cursor(row_factory=class_row(Ending))
    await cursor.execute(
        _ENDING + " AND s.ends_at <= now() AND NOT (s.renewal_charge_id IS NOT NULL AND NOT s.renewal_canceled"
        f" AND s.ends_at > now() - {RENEWAL_GRACE}) ORDER BY s.ends_at LIMIT %s FOR UPDATE OF s SKIP LOCKED",
        [limit],
    )
    return await cursor.fetchall()


async def mark_removed(conn: AsyncConnection, user_id: int, channel_id: int) -> None:
    await conn.execute(
        "UPDATE subscriptions SET removed_at = now() WHERE user_id = %s AND channel_id = %s", [user_id, channel_id]
    )


@dataclass(frozen=True)
class StaleKeypad:
    user_id: int
    chat_id: int
    message_id: int


async def take_stale_keypads(conn: AsyncConnection, older_than_seconds: int) -> list[StaleKeypad]:
    """Delete and return keypads nobody pressed for ``older_than_seconds``."""
    cursor = conn.cursor(row_factory=class_row(StaleKeypad))
    await cursor.execute(
        "DELETE FROM keypad_sessions WHERE updated_at < now() - make_interval(secs => %s)"
        " RETURNING user_id, chat_id, message_id",
        [older_than_seconds],
    )
    return await cursor.fetchall()


@dataclass(frozen=True)
class BroadcastJob:
    id: int
    open_channel_ids: list[str] | None


async def take_broadcast_jobs(conn: AsyncConnection) -> list[BroadcastJob]:
    cursor = conn.cursor(row_factory=class_row(BroadcastJob))
    await cursor.execute(
        "UPDATE broadcast_jobs SET started_at = now(), finished_at = now()"
        " WHERE id IN (SELECT id FROM broadcast_jobs WHERE started_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED)"
        " RETURNING id, open_channel_ids"
    )
    return await cursor.fetchall()


async def add_broadcast_job(conn: AsyncConnection, open_channel_ids: list[str] | None) -> int:
    cursor = await conn.execute(
        "INSERT INTO broadcast_jobs (open_channel_ids) VALUES (%s) RETURNING id", [open_channel_ids]
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])

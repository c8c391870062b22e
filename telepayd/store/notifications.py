"""Queries on ``notifications`` (payment notifications from Cloud Run) and ``channel_posts``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class OwnerNotification:
    id: int
    open_channel_id: str
    payment_type: str
    payment_data: dict[str, Any]
    channel_id: int | None
    owner_chat_id: int | None
    title: str | None


async def get(conn: AsyncConnection, notification_id: int) -> OwnerNotification | None:
    """The notification with its channel (``channel_id`` None when no active channel has that open id)."""
    cursor = conn.cursor(row_factory=class_row(OwnerNotification))
    await cursor.execute(
        "SELECT n.id, n.open_channel_id, n.payment_type, n.payment_data, c.id AS channel_id, c.owner_chat_id, c.title"
        " FROM notifications n LEFT JOIN channels c"
        "   ON c.open_channel_id::text = n.open_channel_id AND c.removed_at IS NULL"
        " WHERE n.id = %s",
        [notification_id],
    )
    return await cursor.fetchone()


async def mark_delivered(conn: AsyncConnection, notification_id: int) -> None:
    await conn.execute("UPDATE notifications SET delivered_at = now() WHERE id = %s", [notification_id])


@dataclass(frozen=True)
class ChannelPost:
    channel_id: int
    chat_id: int
    message_id: int


async def get_post(conn: AsyncConnection, channel_id: int) -> ChannelPost | None:
    cursor = conn.cursor(row_factory=class_row(ChannelPost))
    await cursor.execute("SELECT channel_id, chat_id, message_id FROM channel_posts WHERE channel_id = %s", [channel_id])
    return await cursor.fetchone()


async def save_post(conn: AsyncConnection, channel_id: int, chat_id: int, message_id: int) -> None:
    await conn.execute(
        "INSERT INTO channel_posts (channel_id, chat_id, message_id) VALUES (%s, %s, %s)"
        " ON CONFLICT (channel_id) DO UPDATE SET chat_id = EXCLUDED.chat_id, message_id = EXCLUDED.message_id,"
        " updated_at = now()",
        [channel_id, chat_id, message_id],
    )


async def touch_post(conn: AsyncConnection, channel_id: int) -> None:
    await conn.execute("UPDATE channel_posts SET updated_at = now() WHERE channel_id = %s", [channel_id])

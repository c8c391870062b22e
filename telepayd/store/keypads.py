"""Queries on ``keypad_sessions``: the donation amount being typed, so a restart loses nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class KeypadSession:
    user_id: int
    channel_id: int
    chat_id: int
    message_id: int
    amount: str
    updated_at: datetime


async def start(conn: AsyncConnection, *, user_id: int, channel_id: int, chat_id: int, message_id: int) -> None:
    """A new keypad replaces the user's previous one."""
    await conn.execute(
        "INSERT INTO keypad_sessions (user_id, channel_id, chat_id, message_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (user_id) DO UPDATE SET channel_id = EXCLUDED.channel_id, chat_id = EXCLUDED.chat_id,"
        " message_id = EXCLUDED.message_id, amount = '', updated_at = now()",
        [user_id, channel_id, chat_id, message_id],
    )


async def get_for_update(conn: AsyncConnection, user_id: int) -> KeypadSession | None:
    cursor = conn.cursor(row_factory=class_row(KeypadSession))
    await cursor.execute(
        "SELECT user_id, channel_id, chat_id, message_id, amount, updated_at FROM keypad_sessions WHERE user_id = %s FOR UPDATE",
        [user_id],
    )
    return await cursor.fetchone()


async def set_amount(conn: AsyncConnection, user_id: int, amount: str) -> None:
    await conn.execute("UPDATE keypad_sessions SET amount = %s, updated_at = now() WHERE user_id = %s", [amount, user_id])


async def finish(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute("DELETE FROM keypad_sessions WHERE user_id = %s", [user_id])

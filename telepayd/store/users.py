"""Queries on ``users``: the language each user chose, or the one Telegram last said they use."""

from __future__ import annotations

from psycopg import AsyncConnection


async def seen(conn: AsyncConnection, user_id: int, telegram_language: str | None) -> str | None:
    """Remember the language Telegram gave for the user (when it changed); return the one they chose."""
    if telegram_language is None:
        cursor = await conn.execute("SELECT language FROM users WHERE user_id = %s", [user_id])
        row = await cursor.fetchone()
        return row[0] if row else None
    cursor = await conn.execute(
        "WITH upserted AS ("
        " INSERT INTO users (user_id, telegram_language) VALUES (%(user)s, %(language)s)"
        " ON CONFLICT (user_id) DO UPDATE SET telegram_language = EXCLUDED.telegram_language, updated_at = now()"
        " WHERE users.telegram_language IS DISTINCT FROM EXCLUDED.telegram_language RETURNING language)"
        " SELECT language FROM upserted UNION ALL SELECT language FROM users WHERE user_id = %(user)s LIMIT 1",
        {"user": user_id, "language": telegram_language},
    )
    row = await cursor.fetchone()
    return row[0] if row else None


async def choose(conn: AsyncConnection, user_id: int, language: str) -> None:
    await conn.execute(
        "INSERT INTO users (user_id, language) VALUES (%s, %s)"
        " ON CONFLICT (user_id) DO UPDATE SET language = EXCLUDED.language, updated_at = now()",
        [user_id, language],
    )


async def language_of(conn: AsyncConnection, user_id: int) -> tuple[str | None, str | None]:
    """(chosen, from Telegram) for the user; (None, None) for one we never saw."""
    cursor = await conn.execute("SELECT language, telegram_language FROM users WHERE user_id = %s", [user_id])
    row = await cursor.fetchone()
    return (row[0], row[1]) if row else (None, None)

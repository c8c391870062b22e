"""Queries on ``outbox``: messages to Telegram, queued in the transaction that decided them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    kind: str
    chat_id: int
    payload: dict[str, Any]
    attempts: int
    status: str
    last_error: str | None
    created_at: datetime
    priority: int = 1


_SELECT = "SELECT id, kind, chat_id, payload, attempts, status, last_error, created_at, priority FROM outbox"


# Delivered first: what a buyer is waiting for (a join link) and what must not wait (removing a member whose
# access ended). Everything else is priority 1.
URGENT = 0
IN_TURN = 1


async def enqueue(
    conn: AsyncConnection, kind: str, chat_id: int, payload: dict[str, Any], *, priority: int = IN_TURN
) -> int:
    cursor = await conn.execute(
        "INSERT INTO outbox (kind, chat_id, payload, priority) VALUES (%s, %s, %s, %s) RETURNING id",
        [kind, chat_id, Jsonb(payload), priority],
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def enqueue_message(conn: AsyncConnection, chat_id: int, text: str, *, renew_channel_key: int | None = None,
                          language: str | None = None) -> int:
    """A text (HTML) for a user or an owner; with ``renew_channel_key``, under a Renew button for that channel
    (labelled in ``language``)."""
    payload: dict[str, Any] = {"text": text}
    if renew_channel_key is not None:
        payload["renew_channel_key"] = renew_channel_key
    if language is not None:
        payload["language"] = language
    return await enqueue(conn, "message", chat_id, payload)


async def enqueue_channel_post(conn: AsyncConnection, open_channel_id: int, channel_key: int) -> int:
    """Post (or edit in place) the channel's Subscribe/Donate message in its open channel."""
    return await enqueue(conn, "channel_post", open_channel_id, {"channel_key": channel_key})


async def enqueue_edit(conn: AsyncConnection, chat_id: int, message_id: int, text: str) -> int:
    """Replace the text of a message the bot sent (nothing if it is gone or unchanged)."""
    return await enqueue(conn, "edit", chat_id, {"message_id": message_id, "text": text})


async def enqueue_join_link(
    conn: AsyncConnection, user_id: int, *, closed_chat_id: int, title: str, hours: int,
    order_id: str | None = None, ends_at: datetime | None = None, language: str | None = None, reason: str | None = None,
) -> int:
    """A personal join link for ``user_id``: after a payment (``order_id``, ``ends_at``), or a fresh one;
    its message in ``language``; ``reason`` 'trial' or 'code' for access that was not paid for."""
    payload: dict[str, Any] = {"order_id": order_id, "closed_chat_id": closed_chat_id, "title": title, "hours": hours}
    if language is not None:
        payload["language"] = language
    if reason is not None:
        payload["reason"] = reason
    if ends_at is None:
        payload["fresh"] = True
    else:
        payload["ends_at"] = ends_at.isoformat()
    return await enqueue(conn, "join_link", user_id, payload, priority=URGENT)


async def enqueue_removal(conn: AsyncConnection, user_id: int, *, closed_chat_id: int, title: str, channel_key: int,
                          language: str | None = None) -> int:
    """Remove ``user_id`` from the closed channel (unless they paid again meanwhile), revoke their open
    invite links there, and tell them (in ``language``), with a Renew button."""
    payload: dict[str, Any] = {"closed_chat_id": closed_chat_id, "title": title, "channel_key": channel_key}
    if language is not None:
        payload["language"] = language
    return await enqueue(conn, "remove_member", user_id, payload, priority=URGENT)


async def due(conn: AsyncConnection, limit: int, *, skip_chats: list[int] | None = None) -> list[OutboxMessage]:
    """Pending messages whose time has come, buyers' first, then oldest first, leaving out chats that must wait."""
    cursor = conn.cursor(row_factory=class_row(OutboxMessage))
    await cursor.execute(
        _SELECT + " WHERE status = 'pending' AND next_attempt_at <= now()"
        " AND (chat_id IS NULL OR NOT chat_id = ANY(%(skip)s)) ORDER BY priority, id LIMIT %(limit)s",
        {"skip": skip_chats or [], "limit": limit},
    )
    return await cursor.fetchall()


async def resolve_chat(conn: AsyncConnection, message_id: int, chat_id: int) -> None:
    await conn.execute("UPDATE outbox SET chat_id = %s WHERE id = %s", [chat_id, message_id])


async def failed(conn: AsyncConnection, limit: int = 1000) -> list[OutboxMessage]:
    cursor = conn.cursor(row_factory=class_row(OutboxMessage))
    await cursor.execute(
        _SELECT + " WHERE status = 'failed' ORDER BY id LIMIT %s",
        [limit],
    )
    return await cursor.fetchall()


async def requeue(conn: AsyncConnection, message_id: int | None) -> int:
    """Queue failed messages again (one, or all when ``message_id`` is None); return how many."""
    cursor = await conn.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now()"
        " WHERE status = 'failed' AND (%(id)s::bigint IS NULL OR id = %(id)s) RETURNING id",
        {"id": message_id},
    )
    return len(await cursor.fetchall())


async def failed_after(conn: AsyncConnection, after_id: int, limit: int = 1000) -> list[OutboxMessage]:
    """Failed messages with an id above ``after_id``, oldest first (to walk them all, page by page)."""
    cursor = conn.cursor(row_factory=class_row(OutboxMessage))
    await cursor.execute(_SELECT + " WHERE status = 'failed' AND id > %s ORDER BY id LIMIT %s", [after_id, limit])
    return await cursor.fetchall()


async def get_failed(conn: AsyncConnection, message_id: int) -> OutboxMessage | None:
    cursor = conn.cursor(row_factory=class_row(OutboxMessage))
    await cursor.execute(_SELECT + " WHERE status = 'failed' AND id = %s", [message_id])
    return await cursor.fetchone()


async def requeue_ids(conn: AsyncConnection, message_ids: list[int]) -> int:
    """Queue these failed messages again; return how many were still failed."""
    cursor = await conn.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now()"
        " WHERE status = 'failed' AND id = ANY(%s) RETURNING id",
        [message_ids],
    )
    return len(await cursor.fetchall())


async def purge_sent(conn: AsyncConnection, older_than_days: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM outbox WHERE status = 'sent' AND sent_at < now() - make_interval(days => %s)", [older_than_days]
    )
    return cursor.rowcount


async def save_progress(conn: AsyncConnection, message_id: int, payload: dict[str, Any]) -> None:
    """Keep what a multi-step delivery already did (a created invite link), so a retry reuses it."""
    await conn.execute("UPDATE outbox SET payload = %s WHERE id = %s", [Jsonb(payload), message_id])


async def mark_sent(conn: AsyncConnection, message_id: int) -> None:
    await conn.execute(
        "UPDATE outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = %s",
        [message_id],
    )


async def retry_later(conn: AsyncConnection, message_id: int, delay_seconds: float, error: str) -> None:
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
        [error, delay_seconds, message_id],
    )


async def mark_failed(conn: AsyncConnection, message_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = %s WHERE id = %s",
        [error, message_id],
    )

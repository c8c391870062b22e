"""Queries on ``webhook_messages`` and the rows that accepted webhooks create (notifications, broadcasts).

A webhook-id is inserted in the same transaction as the row it creates; a webhook-id already present makes
the message a duplicate that writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus


@dataclass(frozen=True, slots=True)
class IncomingNotification:
    """A verified payment notification; ``body`` is the raw JSON text, stored exactly as sent."""

    webhook_id: str
    body: str


@dataclass(frozen=True, slots=True)
class IncomingBroadcast:
    """A verified broadcast trigger; ``open_channel_ids`` is ``None`` for every channel."""

    webhook_id: str
    open_channel_ids: tuple[str, ...] | None


Incoming = IncomingNotification | IncomingBroadcast

_INSERT_NOTIFICATIONS = """
WITH incoming AS (
    -- Two JSON arrays, the ids and the bodies, matched by position (one parameter each: building them is
    -- a join of the raw bodies and one json.dumps, where a text[] parameter is dumped element by element).
    SELECT i.webhook_id, b.doc
    FROM jsonb_array_elements_text(%(ids)s::jsonb) WITH ORDINALITY AS i(webhook_id, n)
    JOIN jsonb_array_elements(%(bodies)s::jsonb) WITH ORDINALITY AS b(doc, n) USING (n)
), fresh AS (
    INSERT INTO webhook_messages (webhook_id, route)
    SELECT webhook_id, 'notification' FROM incoming
    ON CONFLICT (webhook_id) DO NOTHING
    RETURNING webhook_id
)
, stored AS (
    INSERT INTO notifications (webhook_id, open_channel_id, payment_type, payment_data)
    SELECT i.webhook_id, i.doc->>'open_channel_id', i.doc->>'payment_type', i.doc->'payment_data'
    FROM incoming i
    JOIN fresh USING (webhook_id)
    RETURNING id, webhook_id, open_channel_id
), queued AS (
    -- The owner's message, in the same transaction, to the owner of the channel on sale now (NULL when
    -- none is: delivery looks again, then records the notification as undeliverable).
    INSERT INTO outbox (kind, chat_id, payload)
    SELECT 'notification', c.owner_chat_id, jsonb_build_object('notification_id', s.id)
    FROM stored s
    LEFT JOIN channels c ON c.open_channel_id::text = s.open_channel_id AND c.removed_at IS NULL
)
SELECT webhook_id FROM stored
"""

_CLAIM_ID = """
INSERT INTO webhook_messages (webhook_id, route) VALUES (%(id)s, %(route)s)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

_INSERT_BROADCAST = """
INSERT INTO broadcast_jobs (webhook_id, open_channel_ids) VALUES (%(id)s, %(channels)s)
"""


async def insert_batch(conn: AsyncConnection, batch: Sequence[Incoming]) -> set[str]:
    """Insert every message whose webhook-id is new; return those ids. Ids in ``batch`` must be distinct.

    Runs inside the caller's transaction.
    """
    accepted: set[str] = set()
    notifications = [m for m in batch if isinstance(m, IncomingNotification)]
    broadcasts = [m for m in batch if isinstance(m, IncomingBroadcast)]
    for chunk in _chunks(notifications):
        cursor = await conn.execute(_INSERT_NOTIFICATIONS, {
            "ids": json.dumps([m.webhook_id for m in chunk]),
            # Each body is a JSON object as the caller sent it (parsed and checked before it got here).
            "bodies": "[" + ",".join(m.body for m in chunk) + "]",
        })
        accepted.update(row[0] for row in await cursor.fetchall())
    for broadcast in broadcasts:  # rare: one statement each is fine
        cursor = await conn.execute(_CLAIM_ID, {"id": broadcast.webhook_id, "route": "broadcast"})
        if await cursor.fetchone():
            channels = None if broadcast.open_channel_ids is None else list(broadcast.open_channel_ids)
            await conn.execute(_INSERT_BROADCAST, {"id": broadcast.webhook_id, "channels": channels})
            accepted.add(broadcast.webhook_id)
    return accepted


async def store_batch(conn: AsyncConnection, batch: Sequence[Incoming]) -> set[str]:
    """Insert ``batch`` in one transaction (as ``insert_batch``) on a connection outside any transaction.

    A batch that is one statement (notifications only, one chunk: the usual case) runs as that statement
    alone, in autocommit: PostgreSQL makes a single statement its own transaction, as atomic and as durable
    as BEGIN ... COMMIT, without their two round trips (about 1.2x the signed ingest's throughput)."""
    if _one_statement(batch):
        await conn.set_autocommit(True)
        try:
            return await insert_batch(conn, batch)
        finally:
            # Back to the pool's mode, unless the connection is closed (the pool throws it away) or not idle
            # (left mid-statement by a cancellation: psycopg closes it; an error here must not hide that one).
            if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                await conn.set_autocommit(False)
    async with conn.transaction():
        return await insert_batch(conn, batch)


# A jsonb value holds at most 256 MB: the bodies of one statement stay far below (a body is at most
# [server] max_body_bytes, 16 MB at most; usually a batch of 500 is a few hundred kB in one statement).
CHUNK_CHARACTERS = 32 * 1024 * 1024


def _one_statement(batch: Sequence[Incoming]) -> bool:
    """Whether ``insert_batch`` writes ``batch`` with one statement: notifications only, in one chunk."""
    notifications = [m for m in batch if isinstance(m, IncomingNotification)]
    return len(notifications) == len(batch) and len(_chunks(notifications)) == 1


def _chunks(notifications: list[IncomingNotification]) -> list[list[IncomingNotification]]:
    chunks: list[list[IncomingNotification]] = []
    size = 0
    for message in notifications:
        if not chunks or (chunks[-1] and size + len(message.body) > CHUNK_CHARACTERS):
            chunks.append([])
            size = 0
        chunks[-1].append(message)
        size += len(message.body)
    return chunks


async def purge_ids(conn: AsyncConnection, older_than_days: int) -> int:
    """Forget webhook-ids past the replay window (the notifications themselves are kept)."""
    cursor = await conn.execute(
        "DELETE FROM webhook_messages WHERE received_at < now() - make_interval(days => %s)", [older_than_days]
    )
    return cursor.rowcount

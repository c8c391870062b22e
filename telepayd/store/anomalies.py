"""Queries on ``anomalies``: things that should not happen and that an operator must see."""

from __future__ import annotations

from psycopg import AsyncConnection


async def record(conn: AsyncConnection, kind: str, detail: str, *, order_id: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO anomalies (kind, order_id, detail) VALUES (%s, %s, %s)", [kind, order_id, detail]
    )


async def record_operator_action(
    conn: AsyncConnection, action: str, detail: str, *, user_id: int | None = None, channel_id: int | None = None
) -> None:
    await conn.execute(
        "INSERT INTO operator_actions (action, user_id, channel_id, detail) VALUES (%s, %s, %s, %s)",
        [action, user_id, channel_id, detail],
    )

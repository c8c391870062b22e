"""Queries on ``stars_charges`` (each Telegram Stars charge once), the Stars subscription a subscription
carries, and where the transactions sweep stopped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class Charge:
    charge_id: str
    order_id: str | None
    payload: str
    user_id: int
    currency: str
    amount: int
    is_recurring: bool
    subscription_until: datetime | None
    source: str
    outcome: str
    received_at: datetime
    granted_at: datetime | None
    granted_from: datetime | None
    granted_until: datetime | None
    refunded_at: datetime | None


@dataclass(frozen=True)
class Renewal:
    """The Stars subscription that renews a user's access to a channel."""

    charge_id: str
    until: datetime | None
    canceled: bool


_COLUMNS = ("charge_id, order_id, payload, user_id, currency, amount, is_recurring, subscription_until, source, outcome,"
            " received_at, granted_at, granted_from, granted_until, refunded_at")


async def record(
    conn: AsyncConnection, *, charge_id: str, payload: str, user_id: int, currency: str, amount: int,
    is_recurring: bool, subscription_until: datetime | None, source: str, body: str,
) -> bool:
    """Store a charge; False when this charge id was stored before (whatever its source)."""
    cursor = await conn.execute(
        "INSERT INTO stars_charges (charge_id, payload, user_id, currency, amount, is_recurring, subscription_until, source, body)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (charge_id) DO NOTHING RETURNING 1",
        [charge_id, payload, user_id, currency, amount, is_recurring, subscription_until, source, body],
    )
    return await cursor.fetchone() is not None


async def set_outcome(conn: AsyncConnection, charge_id: str, outcome: str, *, order_id: str | None = None) -> None:
    await conn.execute(
        "UPDATE stars_charges SET outcome = %s, order_id = coalesce(%s, order_id) WHERE charge_id = %s",
        [outcome, order_id, charge_id],
    )


async def set_granted(conn: AsyncConnection, charge_id: str, granted_from: datetime | None, granted_until: datetime | None) -> None:
    await conn.execute(
        "UPDATE stars_charges SET granted_at = now(), granted_from = %s, granted_until = %s WHERE charge_id = %s",
        [granted_from, granted_until, charge_id],
    )


async def get(conn: AsyncConnection, charge_id: str, *, for_update: bool = False) -> Charge | None:
    cursor = conn.cursor(row_factory=class_row(Charge))
    await cursor.execute(f"SELECT {_COLUMNS} FROM stars_charges WHERE charge_id = %s" + (" FOR UPDATE" if for_update else ""),
                         [charge_id])
    return await cursor.fetchone()


async def for_order(conn: AsyncConnection, order_id: str) -> list[Charge]:
    cursor = conn.cursor(row_factory=class_row(Charge))
    await cursor.execute(f"SELECT {_COLUMNS} FROM stars_charges WHERE order_id = %s ORDER BY received_at", [order_id])
    return await cursor.fetchall()


async def mark_refunded(conn: AsyncConnection, charge_id: str) -> bool:
    """Mark the charge refunded; False when it already was (a refund applies once)."""
    cursor = await conn.execute(
        "UPDATE stars_charges SET refunded_at = now() WHERE charge_id = %s AND refunded_at IS NULL RETURNING 1", [charge_id]
    )
    return await cursor.fetchone() is not None


async def refundable(conn: AsyncConnection, charge_ids: list[str]) -> set[str]:
    """Which of ``charge_ids`` are recorded and not refunded yet."""
    cursor = await conn.execute("SELECT charge_id FROM stars_charges WHERE charge_id = ANY(%s) AND refunded_at IS NULL",
                                [charge_ids])
    return {row[0] for row in await cursor.fetchall()}


async def first_charge(conn: AsyncConnection, order_id: str) -> str | None:
    """The charge that paid ``order_id`` first (a Stars subscription is named by it)."""
    cursor = await conn.execute(
        "SELECT charge_id FROM stars_charges WHERE order_id = %s ORDER BY received_at LIMIT 1", [order_id])
    row = await cursor.fetchone()
    return row[0] if row else None


async def renewing_in_channel(conn: AsyncConnection, channel_id: int) -> list[tuple[int, str]]:
    """(user, first charge) of every subscription to the channel that a Stars subscription renews."""
    cursor = await conn.execute(
        "SELECT user_id, renewal_charge_id FROM subscriptions WHERE channel_id = %s AND renewal_charge_id IS NOT NULL"
        " AND NOT renewal_canceled", [channel_id])
    return [(int(row[0]), row[1]) for row in await cursor.fetchall()]


async def known(conn: AsyncConnection, charge_ids: list[str]) -> set[str]:
    """Which of ``charge_ids`` are recorded."""
    cursor = await conn.execute("SELECT charge_id FROM stars_charges WHERE charge_id = ANY(%s)", [charge_ids])
    return {row[0] for row in await cursor.fetchall()}


async def set_renewal(conn: AsyncConnection, *, user_id: int, channel_id: int, charge_id: str, until: datetime | None) -> None:
    """The access now renews by the Stars subscription started by ``charge_id`` (its next charge ``until``)."""
    await conn.execute(
        "UPDATE subscriptions SET renewal_charge_id = %s, renewal_until = %s, renewal_canceled = false"
        " WHERE user_id = %s AND channel_id = %s",
        [charge_id, until, user_id, channel_id],
    )


async def renewal_for(conn: AsyncConnection, user_id: int, channel_id: int, *, running: bool = False) -> Renewal | None:
    """The Stars subscription of the user's access to the channel; ``running``: only while that access runs."""
    cursor = await conn.execute(
        "SELECT renewal_charge_id, renewal_until, renewal_canceled FROM subscriptions"
        " WHERE user_id = %s AND channel_id = %s AND renewal_charge_id IS NOT NULL"
        + (" AND ends_at > now()" if running else ""),
        [user_id, channel_id],
    )
    row = await cursor.fetchone()
    return Renewal(row[0], row[1], row[2]) if row else None


async def set_renewal_canceled(conn: AsyncConnection, *, user_id: int, channel_id: int, canceled: bool) -> None:
    await conn.execute(
        "UPDATE subscriptions SET renewal_canceled = %s WHERE user_id = %s AND channel_id = %s AND renewal_charge_id IS NOT NULL",
        [canceled, user_id, channel_id],
    )


async def end_renewal(conn: AsyncConnection, *, user_id: int, channel_id: int) -> None:
    """The Stars subscription no longer renews this access (refunded, or the access ended)."""
    await conn.execute(
        "UPDATE subscriptions SET renewal_charge_id = NULL, renewal_until = NULL, renewal_canceled = false"
        " WHERE user_id = %s AND channel_id = %s",
        [user_id, channel_id],
    )


async def sweep_position(conn: AsyncConnection) -> int:
    """How many of the bot's Star transactions the sweep has read (oldest first)."""
    cursor = await conn.execute("SELECT read_up_to FROM stars_sweep WHERE id = 1")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def set_sweep_position(conn: AsyncConnection, read_up_to: int) -> None:
    await conn.execute(
        "INSERT INTO stars_sweep (id, read_up_to, swept_at) VALUES (1, %s, now())"
        " ON CONFLICT (id) DO UPDATE SET read_up_to = EXCLUDED.read_up_to, swept_at = now()",
        [read_up_to],
    )

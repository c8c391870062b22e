"""Queries on ``payments`` and ``ipn_events``: each (payment_id, status) is recorded once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class Payment:
    payment_id: int
    order_id: str
    status: str
    granted_at: datetime | None
    granted_from: datetime | None  # the access it bought (subscriptions granted since 0004)
    granted_until: datetime | None


@dataclass(frozen=True)
class IpnEvent:
    id: int
    payment_id: int | None
    payment_status: str | None
    outcome: str
    received_at: datetime
    source: str  # 'ipn' or 'reconcile'


@dataclass(frozen=True)
class MovingPayment:
    """A payment that is not final and not finished: the reconcile sweep asks NowPayments about it."""

    payment_id: int
    order_id: str
    status: str
    updated_at: datetime
    checks: int


async def record_event(
    conn: AsyncConnection, *, payment_id: int | None, status: str | None, order_id: str | None, body: str,
    source: str = "ipn",
) -> int | None:
    """Store a payment status (an IPN, or an answer of NowPayments' API: ``source``); return its id, or None
    when this (payment_id, status) was stored before, whatever its source."""
    cursor = await conn.execute(
        "INSERT INTO ipn_events (payment_id, payment_status, order_id, body, source) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (payment_id, payment_status) WHERE payment_id IS NOT NULL DO NOTHING RETURNING id",
        [payment_id, status, order_id, body, source],
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else None


async def set_event_outcome(conn: AsyncConnection, event_id: int, outcome: str) -> None:
    await conn.execute("UPDATE ipn_events SET outcome = %s WHERE id = %s", [outcome, event_id])


_SELECT = "SELECT payment_id, order_id, status, granted_at, granted_from, granted_until FROM payments"


async def get_for_update(conn: AsyncConnection, payment_id: int) -> Payment | None:
    cursor = conn.cursor(row_factory=class_row(Payment))
    await cursor.execute(_SELECT + " WHERE payment_id = %s FOR UPDATE", [payment_id])
    return await cursor.fetchone()


async def upsert(
    conn: AsyncConnection,
    *,
    payment_id: int,
    order_id: str,
    status: str,
    actually_paid: Decimal | None,
    pay_currency: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO payments (payment_id, order_id, status, actually_paid, pay_currency) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (payment_id) DO UPDATE SET status = EXCLUDED.status,"
        " actually_paid = EXCLUDED.actually_paid, pay_currency = EXCLUDED.pay_currency, updated_at = now(), checks = 0",
        [payment_id, order_id, status, actually_paid, pay_currency],
    )


async def mark_granted(conn: AsyncConnection, payment_id: int) -> bool:
    """Mark the grant; False when this payment already granted (so it grants once)."""
    cursor = await conn.execute(
        "UPDATE payments SET granted_at = now() WHERE payment_id = %s AND granted_at IS NULL RETURNING 1", [payment_id]
    )
    return await cursor.fetchone() is not None


async def set_granted_window(conn: AsyncConnection, payment_id: int, granted_from: datetime, granted_until: datetime) -> None:
    """Remember the stretch of access this payment bought (a refund takes back only what is left of it)."""
    await conn.execute(
        "UPDATE payments SET granted_from = %s, granted_until = %s WHERE payment_id = %s",
        [granted_from, granted_until, payment_id],
    )


async def events_for_order(conn: AsyncConnection, order_id: str) -> list[IpnEvent]:
    cursor = conn.cursor(row_factory=class_row(IpnEvent))
    await cursor.execute(
        "SELECT id, payment_id, payment_status, outcome, received_at, source FROM ipn_events WHERE order_id = %s ORDER BY id",
        [order_id],
    )
    return await cursor.fetchall()


async def for_order(conn: AsyncConnection, order_id: str) -> list[Payment]:
    cursor = conn.cursor(row_factory=class_row(Payment))
    await cursor.execute(
        _SELECT + " WHERE order_id = %s ORDER BY payment_id",
        [order_id],
    )
    return await cursor.fetchall()


MOVING_STATUSES = ("waiting", "confirming", "confirmed", "sending", "partially_paid")  # as in index payments_moving
LIVE_STATUSES = (*MOVING_STATUSES, "finished")  # a payment that paid or still may


async def due_for_check(conn: AsyncConnection, *, stale_after: timedelta, limit: int) -> list[MovingPayment]:
    """Payments no status moved for ``stale_after``, whose next check is due: the gap after a check is
    ``stale_after`` doubled per check without a change, at most a day. Oldest first."""
    cursor = conn.cursor(row_factory=class_row(MovingPayment))
    await cursor.execute(
        "SELECT payment_id, order_id, status, updated_at, checks FROM payments"
        " WHERE status = ANY(%(moving)s) AND updated_at < now() - %(stale)s"
        " AND (checked_at IS NULL OR checked_at < now() - least(%(stale)s * power(2, least(checks, 20)), interval '1 day'))"
        " ORDER BY updated_at LIMIT %(limit)s",
        {"moving": list(MOVING_STATUSES), "stale": stale_after, "limit": limit},
    )
    return await cursor.fetchall()


async def mark_checked(conn: AsyncConnection, payment_id: int) -> None:
    """Remember a check (the next waits longer, until the status moves: ``upsert`` resets the count)."""
    await conn.execute("UPDATE payments SET checked_at = now(), checks = checks + 1 WHERE payment_id = %s", [payment_id])


async def get(conn: AsyncConnection, payment_id: int) -> Payment | None:
    cursor = conn.cursor(row_factory=class_row(Payment))
    await cursor.execute(_SELECT + " WHERE payment_id = %s", [payment_id])
    return await cursor.fetchone()


async def forget_event(conn: AsyncConnection, event_id: int) -> None:
    await conn.execute("DELETE FROM ipn_events WHERE id = %s", [event_id])


async def order_has_other_live_payment(conn: AsyncConnection, order_id: str, payment_id: int) -> bool:
    """Whether another payment of the order finished or is still moving."""
    cursor = await conn.execute(
        "SELECT 1 FROM payments WHERE order_id = %s AND payment_id <> %s AND status = ANY(%s) LIMIT 1",
        [order_id, payment_id, list(LIVE_STATUSES)],
    )
    return await cursor.fetchone() is not None

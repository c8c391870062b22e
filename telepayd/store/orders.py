"""Queries on ``orders``: created before the invoice, keeping the price they were sold at."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from .payments import LIVE_STATUSES


@dataclass(frozen=True)
class Order:
    order_id: str
    kind: str
    user_id: int
    username: str | None
    channel_id: int
    tier_id: int | None
    days: int | None
    price: Decimal
    currency: str
    status: str
    invoice_id: str | None
    invoice_url: str | None
    created_at: datetime
    rail: str = "nowpayments"  # or 'stars' (price in whole Stars, currency 'xtr')
    renews_order_id: str | None = None  # a Stars renewal: the order whose subscription it renews
    list_price: Decimal | None = None  # the plan's price before an access code's discount (None: no code)
    code: str | None = None  # the access code whose discount this order got

    @property
    def is_open(self) -> bool:
        """Not paid, failed, expired or refunded yet: an invoice for it may still be paid."""
        return self.status in ("created", "invoiced")


ORDER_ID = re.compile(r"tp_[0-9a-f]{20}")


def looks_like_order_id(text: str) -> bool:
    """The shape of our order ids (an invoice payload of ours): anything else is not looked up."""
    return ORDER_ID.fullmatch(text) is not None


def new_order_id() -> str:
    """Opaque and unique: 'tp_' + 20 random hex characters (fits an invite link's 32-character name)."""
    return "tp_" + secrets.token_hex(10)


_COLUMNS = ("order_id, kind, user_id, username, channel_id, tier_id, days, price, currency, status, invoice_id, invoice_url,"
            " created_at, rail, renews_order_id, list_price, code")
STARS_CURRENCY = "xtr"  # how a Stars order's currency is stored (Telegram says "XTR")


async def create(
    conn: AsyncConnection,
    *,
    order_id: str,
    kind: str,
    user_id: int,
    username: str | None,
    channel_id: int,
    tier_id: int | None,
    days: int | None,
    price: Decimal,
    rail: str = "nowpayments",
    status: str = "created",
    renews_order_id: str | None = None,
    list_price: Decimal | None = None,
    code: str | None = None,
) -> Order:
    """A new order; ``rail`` 'stars' keeps its price in whole Stars (currency 'xtr'). With an access code's
    discount, ``price`` is what is charged and ``list_price`` the plan's price."""
    currency = STARS_CURRENCY if rail == "stars" else "usd"
    cursor = conn.cursor(row_factory=class_row(Order))
    await cursor.execute(
        f"INSERT INTO orders (order_id, kind, user_id, username, channel_id, tier_id, days, price, currency, rail, status,"
        f" renews_order_id, list_price, code) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}",
        [order_id, kind, user_id, username, channel_id, tier_id, days, price, currency, rail, status, renews_order_id,
         list_price, code],
    )
    order = await cursor.fetchone()
    assert order is not None
    return order


async def get(conn: AsyncConnection, order_id: str, *, for_update: bool = False) -> Order | None:
    cursor = conn.cursor(row_factory=class_row(Order))
    lock = " FOR UPDATE" if for_update else ""
    await cursor.execute(f"SELECT {_COLUMNS} FROM orders WHERE order_id = %s{lock}", [order_id])
    return await cursor.fetchone()


async def find_reusable(conn: AsyncConnection, *, user_id: int, tier_id: int, rail: str = "nowpayments") -> Order | None:
    """An unpaid order of the last hour for the same tier and rail, so a retry reuses it instead of a second
    invoice; one an access code discounted, whatever its age (while it is open, its discount is on it: a
    retry after its invoice failed gets that price again)."""
    cursor = conn.cursor(row_factory=class_row(Order))
    await cursor.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE user_id = %s AND tier_id = %s AND rail = %s AND status IN ('created', 'invoiced')"
        " AND (created_at > now() - interval '1 hour' OR code IS NOT NULL)"
        " ORDER BY code IS NOT NULL DESC, created_at DESC LIMIT 1",
        [user_id, tier_id, rail],
    )
    return await cursor.fetchone()


async def find_reusable_donation(conn: AsyncConnection, *, user_id: int, channel_id: int, price: Decimal,
                                 rail: str = "nowpayments") -> Order | None:
    """An unpaid donation order of the last hour to the same channel for the same amount and rail (its invoice reused)."""
    cursor = conn.cursor(row_factory=class_row(Order))
    await cursor.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE user_id = %s AND kind = 'donation' AND channel_id = %s AND price = %s"
        " AND rail = %s AND status IN ('created', 'invoiced') AND created_at > now() - interval '1 hour'"
        " ORDER BY created_at DESC LIMIT 1",
        [user_id, channel_id, price, rail],
    )
    return await cursor.fetchone()


async def created_last_hour(conn: AsyncConnection, user_id: int) -> int:
    """How many orders (each with its own invoice) the user started in the last hour."""
    cursor = await conn.execute(
        "SELECT count(*) FROM orders WHERE user_id = %s AND created_at > now() - interval '1 hour' AND renews_order_id IS NULL", [user_id]
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def set_invoice(conn: AsyncConnection, order_id: str, invoice_id: str, invoice_url: str) -> None:
    await conn.execute(
        "UPDATE orders SET invoice_id = %s, invoice_url = %s, status = 'invoiced', updated_at = now()"
        " WHERE order_id = %s AND status = 'created'",
        [invoice_id, invoice_url, order_id],
    )


async def set_invoice_link(conn: AsyncConnection, order_id: str, invoice_url: str) -> None:
    """A Stars order's invoice link (Telegram's createInvoiceLink: no invoice id)."""
    await conn.execute(
        "UPDATE orders SET invoice_url = %s, status = 'invoiced', updated_at = now() WHERE order_id = %s AND status = 'created'",
        [invoice_url, order_id],
    )


async def set_status(conn: AsyncConnection, order_id: str, status: str) -> None:
    await conn.execute("UPDATE orders SET status = %s, updated_at = now() WHERE order_id = %s", [status, order_id])


async def for_user(conn: AsyncConnection, user_id: int, *, limit: int = 20) -> list[Order]:
    cursor = conn.cursor(row_factory=class_row(Order))
    await cursor.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE user_id = %s ORDER BY created_at DESC LIMIT %s", [user_id, limit]
    )
    return await cursor.fetchall()


async def open_for_user(conn: AsyncConnection, user_id: int, *, within: timedelta, limit: int = 3) -> list[Order]:
    """The user's unpaid NowPayments orders with an invoice, newest first (a buyer who paid one can ask to check it)."""
    cursor = conn.cursor(row_factory=class_row(Order))
    await cursor.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE user_id = %s AND status = 'invoiced' AND rail = 'nowpayments' AND created_at > now() - %s"
        " ORDER BY created_at DESC LIMIT %s",
        [user_id, within, limit],
    )
    return await cursor.fetchall()


async def expire_unpaid(conn: AsyncConnection, *, older_than: timedelta, limit: int = 1000) -> list[str]:
    """Mark ``expired`` the unpaid orders older than ``older_than`` that have no payment still moving (the
    invoice can no longer be paid); return their ids. A payment that finishes later still grants."""
    cursor = await conn.execute(
        "UPDATE orders SET status = 'expired', updated_at = now() WHERE order_id IN ("
        " SELECT order_id FROM orders o WHERE status IN ('created', 'invoiced') AND created_at < now() - %s"
        " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.order_id AND p.status = ANY(%s))"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING order_id",
        [older_than, list(LIVE_STATUSES), limit],
    )
    return [row[0] for row in await cursor.fetchall()]


async def stars_orders_among(conn: AsyncConnection, order_ids: list[str]) -> set[str]:
    """Which of ``order_ids`` are Stars orders of ours (the transactions sweep ignores other payloads)."""
    cursor = await conn.execute("SELECT order_id FROM orders WHERE order_id = ANY(%s) AND rail = 'stars'", [order_ids])
    return {row[0] for row in await cursor.fetchall()}


async def any_stars_order(conn: AsyncConnection) -> bool:
    """Whether any order was ever paid or offered in Stars (index ``orders_stars``)."""
    cursor = await conn.execute("SELECT EXISTS (SELECT 1 FROM orders WHERE rail = 'stars')")
    row = await cursor.fetchone()
    return bool(row and row[0])


async def renewals_of(conn: AsyncConnection, order_id: str) -> list[Order]:
    """The Stars renewals of ``order_id`` (each a paid order of its own), oldest first."""
    cursor = conn.cursor(row_factory=class_row(Order))
    await cursor.execute(f"SELECT {_COLUMNS} FROM orders WHERE renews_order_id = %s ORDER BY created_at", [order_id])
    return await cursor.fetchall()

"""The owner's numbers (issue 13): a channel's figures for a month, the paid orders of a month, the channels a
user owns. Read by ``telepayd report`` and the bot's /stats; never on a hot path.

An order is paid when its status is 'paid'; its ``updated_at`` is when it was marked paid (a refunded order,
status 'refunded', is not revenue). "Running now" is ``ends_at > now() AND removed_at IS NULL``, judged with
the database's clock, once per call (one transaction, one ``now()``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from psycopg import AsyncConnection

# Keys of ChannelFigures.active_by_tier and active_by_rail for a subscription no paid plan or order stands
# behind (an operator's grant, a trial, a code's days).
NONE = "none"


@dataclass(frozen=True)
class ChannelFigures:
    channel_id: int
    title: str
    month_start: datetime   # UTC, first instant of the month
    # Running subscriptions now by the plan paid last ("1", "2", "3": the tier's position), or "none".
    active_by_tier: dict[str, int]
    # Running subscriptions now by the rail of the subscription order paid last for that user and channel
    # ("nowpayments", "stars"), or "none" when there is no such order.
    active_by_rail: dict[str, int]
    new: int            # paid subscription orders in the month whose user had no earlier paid one in this channel
    renewed: int        # paid subscription orders in the month whose user had an earlier one in this channel
    churned: int        # subscriptions whose ends_at fell within the month and is already past
    revenue: dict[tuple[str, str], Decimal]   # (rail, currency) -> sum of the prices of the month's paid orders
    trials_taken: int   # trials taken in the month
    trials_converted: int  # of those, users with a paid subscription order in this channel after taking it
    codes_redeemed: int # redemptions of this channel's codes in the month

    @property
    def active(self) -> int:
        return sum(self.active_by_tier.values())


class PaidOrder(NamedTuple):
    """One paid order, as a row of ``telepayd report --csv``."""

    paid_at: datetime
    channel_id: int
    tier: int | None        # the plan's position 1-3; None for a donation
    rail: str
    currency: str
    amount: Decimal
    user_id: int
    code: str | None


# A subscription order paid before this one (o), by the same user in the same channel. Ties on the instant are
# broken by order id, so of two orders paid together exactly one is the first. Served by orders_user.
_EARLIER_PAID = (
    "EXISTS (SELECT 1 FROM orders e WHERE e.user_id = o.user_id AND e.channel_id = o.channel_id"
    " AND e.kind = 'subscription' AND e.status = 'paid' AND (e.updated_at, e.order_id) < (o.updated_at, o.order_id))"
)


async def channel_figures(conn: AsyncConnection, channel_id: int, month_start: datetime, month_end: datetime) -> ChannelFigures:
    """The figures of one channel (a channel taken off sale too) for ``[month_start, month_end)``; raises
    ``LookupError`` for a channel that does not exist."""
    span = {"channel": channel_id, "start": month_start, "end": month_end}
    async with conn.transaction():
        # Grouped lookups per running subscription cost more to JIT-compile than to run (see stats.snapshot).
        await conn.execute("SET LOCAL jit = off")
        cursor = await conn.execute("SELECT title FROM channels WHERE id = %(channel)s", span)
        row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"no channel {channel_id}")
        title = row[0]

        # The running subscriptions come from subscriptions_running (ends_at, INCLUDE channel_id, tier_id).
        cursor = await conn.execute(
            "SELECT coalesce(t.position::text, %(none)s), count(*) FROM subscriptions s LEFT JOIN tiers t ON t.id = s.tier_id"
            " WHERE s.channel_id = %(channel)s AND s.ends_at > now() AND s.removed_at IS NULL GROUP BY 1",
            {**span, "none": NONE})
        by_tier = {key: int(n) for key, n in await cursor.fetchall()}
        cursor = await conn.execute(
            "SELECT coalesce(last.rail, %(none)s), count(*) FROM subscriptions s LEFT JOIN LATERAL ("
            " SELECT o.rail FROM orders o WHERE o.user_id = s.user_id AND o.channel_id = s.channel_id"
            " AND o.kind = 'subscription' AND o.status = 'paid' ORDER BY o.updated_at DESC, o.order_id DESC LIMIT 1) last ON true"
            " WHERE s.channel_id = %(channel)s AND s.ends_at > now() AND s.removed_at IS NULL GROUP BY 1",
            {**span, "none": NONE})
        by_rail = {key: int(n) for key, n in await cursor.fetchall()}

        cursor = await conn.execute(
            f"SELECT count(*) FILTER (WHERE NOT earlier), count(*) FILTER (WHERE earlier) FROM ("
            f" SELECT {_EARLIER_PAID} AS earlier FROM orders o WHERE o.channel_id = %(channel)s AND o.status = 'paid'"
            f" AND o.kind = 'subscription' AND o.updated_at >= %(start)s AND o.updated_at < %(end)s) m",
            span)
        new, renewed = (int(n) for n in await cursor.fetchone())

        # Past ends only: an end later this month has not happened yet (and such a subscription still runs).
        cursor = await conn.execute(
            "SELECT count(*) FROM subscriptions WHERE channel_id = %(channel)s"
            " AND ends_at >= %(start)s AND ends_at < %(end)s AND ends_at <= now()",
            span)
        churned = int((await cursor.fetchone())[0])

        cursor = await conn.execute(
            "SELECT rail, currency, sum(price) FROM orders WHERE channel_id = %(channel)s AND status = 'paid'"
            " AND updated_at >= %(start)s AND updated_at < %(end)s GROUP BY 1, 2",
            span)
        revenue = {(rail, currency): Decimal(total) for rail, currency, total in await cursor.fetchall()}

        # trials_channel (channel_id, taken_at); the conversion by orders_user.
        cursor = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = t.user_id"
            " AND o.channel_id = t.channel_id AND o.kind = 'subscription' AND o.status = 'paid' AND o.updated_at > t.taken_at))"
            " FROM trials t WHERE t.channel_id = %(channel)s AND t.taken_at >= %(start)s AND t.taken_at < %(end)s",
            span)
        trials_taken, trials_converted = (int(n) for n in await cursor.fetchone())

        # access_codes_channel, then each code's redemptions by the primary key (code, user_id).
        cursor = await conn.execute(
            "SELECT count(*) FROM access_codes c JOIN code_redemptions r ON r.code = c.code"
            " WHERE c.channel_id = %(channel)s AND r.redeemed_at >= %(start)s AND r.redeemed_at < %(end)s",
            span)
        codes_redeemed = int((await cursor.fetchone())[0])
    return ChannelFigures(
        channel_id=channel_id, title=title, month_start=month_start, active_by_tier=by_tier, active_by_rail=by_rail,
        new=new, renewed=renewed, churned=churned, revenue=revenue, trials_taken=trials_taken,
        trials_converted=trials_converted, codes_redeemed=codes_redeemed,
    )


async def paid_orders(conn: AsyncConnection, *, channel_id: int | None, start: datetime, end: datetime) -> list[PaidOrder]:
    """The orders paid in ``[start, end)`` (subscriptions and donations), in the order they were paid: of one
    channel, or of every channel (taken off sale or not) when ``channel_id`` is None."""
    if channel_id is None:
        cursor = await conn.execute("SELECT id FROM channels ORDER BY id")
        ids = [row[0] for row in await cursor.fetchall()]
    else:
        ids = [channel_id]
    # By channel, so that an index on (channel_id, updated_at) serves each channel's month.
    cursor = await conn.execute(
        "SELECT o.updated_at, o.channel_id, t.position, o.rail, o.currency, o.price, o.user_id, o.code"
        " FROM orders o LEFT JOIN tiers t ON t.id = o.tier_id"
        " WHERE o.channel_id = ANY(%(ids)s) AND o.status = 'paid' AND o.updated_at >= %(start)s AND o.updated_at < %(end)s"
        " ORDER BY o.updated_at, o.order_id",
        {"ids": ids, "start": start, "end": end})
    return [PaidOrder(paid_at, int(channel), None if tier is None else int(tier), rail, currency, Decimal(amount), int(user), code)
            for paid_at, channel, tier, rail, currency, amount, user, code in await cursor.fetchall()]


async def owned_channels(conn: AsyncConnection, owner_chat_id: int) -> list[tuple[int, str]]:
    """``(channel key, title)`` of the channels on sale whose owner is that user, by key."""
    cursor = await conn.execute(
        "SELECT id, title FROM channels WHERE owner_chat_id = %s AND removed_at IS NULL ORDER BY id", [owner_chat_id])
    return [(int(key), title) for key, title in await cursor.fetchall()]

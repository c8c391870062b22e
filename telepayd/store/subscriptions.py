"""Queries on ``subscriptions`` (one row per user and channel) and ``join_links``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class Subscription:
    user_id: int
    channel_id: int
    ends_at: datetime
    last_link_at: datetime | None
    title: str
    closed_channel_id: int
    renewal_charge_id: str | None = None  # a Stars subscription renews this access
    renewal_canceled: bool = False

    @property
    def renews(self) -> bool:
        return self.renewal_charge_id is not None and not self.renewal_canceled


@dataclass(frozen=True)
class JoinLink:
    invite_link: str
    order_id: str | None
    user_id: int
    chat_id: int
    expires_at: datetime
    approved_at: datetime | None
    revoked_at: datetime | None


async def extend(conn: AsyncConnection, *, user_id: int, channel_id: int, days: int, tier_id: int | None = None) -> datetime:
    """Move the end to max(now, current end) + days; return the new end. ``tier_id``: the plan paid for
    (None, an operator's grant, keeps the tier the subscription had)."""
    cursor = await conn.execute(
        "INSERT INTO subscriptions (user_id, channel_id, ends_at, tier_id)"
        " VALUES (%(user)s, %(channel)s, now() + make_interval(days => %(days)s), %(tier)s)"
        " ON CONFLICT (user_id, channel_id) DO UPDATE"
        " SET ends_at = greatest(now(), subscriptions.ends_at) + make_interval(days => %(days)s), updated_at = now(),"
        " reminded_days = '{}', removed_at = NULL, tier_id = coalesce(EXCLUDED.tier_id, subscriptions.tier_id)"
        " RETURNING ends_at",
        {"user": user_id, "channel": channel_id, "days": days, "tier": tier_id},
    )
    row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def get_state_for_update(conn: AsyncConnection, user_id: int, channel_id: int) -> tuple[datetime, datetime | None] | None:
    """The subscription's end and its last revoke, locked (None: no subscription)."""
    cursor = await conn.execute(
        "SELECT ends_at, revoked_at FROM subscriptions WHERE user_id = %s AND channel_id = %s FOR UPDATE",
        [user_id, channel_id],
    )
    row = await cursor.fetchone()
    return (row[0], row[1]) if row else None


async def shorten(conn: AsyncConnection, *, user_id: int, channel_id: int, by: timedelta) -> datetime | None:
    """Take ``by`` off the end, never below now; return the new end (None: no subscription).

    An end that reaches now leaves the row for the sweeper, which removes the member as at expiry."""
    cursor = await conn.execute(
        "UPDATE subscriptions SET ends_at = least(ends_at, greatest(now(), ends_at - %(by)s)), updated_at = now()"
        " WHERE user_id = %(user)s AND channel_id = %(channel)s RETURNING ends_at",
        {"user": user_id, "channel": channel_id, "by": by},
    )
    row = await cursor.fetchone()
    return row[0] if row else None


async def shorten_to_now(conn: AsyncConnection, *, user_id: int, channel_id: int) -> bool:
    """Revoke: the access ends now, and every grant made before now is spent."""
    cursor = await conn.execute(
        "UPDATE subscriptions SET ends_at = now(), revoked_at = now(), updated_at = now() WHERE user_id = %s AND channel_id = %s"
        " AND ends_at > now() RETURNING 1",
        [user_id, channel_id],
    )
    return await cursor.fetchone() is not None


_SELECT = (
    "SELECT s.user_id, s.channel_id, s.ends_at, s.last_link_at, c.title, c.closed_channel_id, s.renewal_charge_id,"
    " s.renewal_canceled FROM subscriptions s JOIN channels c ON c.id = s.channel_id"
)


async def for_user(conn: AsyncConnection, user_id: int) -> list[Subscription]:
    cursor = conn.cursor(row_factory=class_row(Subscription))
    await cursor.execute(_SELECT + " WHERE s.user_id = %s ORDER BY s.ends_at DESC", [user_id])
    return await cursor.fetchall()


async def get_for_update(conn: AsyncConnection, user_id: int, channel_id: int) -> Subscription | None:
    cursor = conn.cursor(row_factory=class_row(Subscription))
    await cursor.execute(_SELECT + " WHERE s.user_id = %s AND s.channel_id = %s FOR UPDATE OF s", [user_id, channel_id])
    return await cursor.fetchone()


async def touch_link(conn: AsyncConnection, user_id: int, channel_id: int) -> None:
    await conn.execute(
        "UPDATE subscriptions SET last_link_at = now() WHERE user_id = %s AND channel_id = %s", [user_id, channel_id]
    )


async def add_join_link(
    conn: AsyncConnection, *, invite_link: str, order_id: str | None, user_id: int, chat_id: int, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO join_links (invite_link, order_id, user_id, chat_id, expires_at) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (invite_link) DO NOTHING",
        [invite_link, order_id, user_id, chat_id, expires_at],
    )


_SELECT_JOIN_LINK = "SELECT invite_link, order_id, user_id, chat_id, expires_at, approved_at, revoked_at FROM join_links"


async def get_join_link(conn: AsyncConnection, invite_link: str) -> JoinLink | None:
    cursor = conn.cursor(row_factory=class_row(JoinLink))
    await cursor.execute(
        _SELECT_JOIN_LINK + " WHERE invite_link = %s",
        [invite_link],
    )
    return await cursor.fetchone()


async def mark_approved(conn: AsyncConnection, invite_link: str) -> None:
    await conn.execute("UPDATE join_links SET approved_at = now() WHERE invite_link = %s", [invite_link])


async def join_links_for_order(conn: AsyncConnection, order_id: str) -> list[JoinLink]:
    cursor = conn.cursor(row_factory=class_row(JoinLink))
    await cursor.execute(
        _SELECT_JOIN_LINK + " WHERE order_id = %s",
        [order_id],
    )
    return await cursor.fetchall()


async def usable_join_links(conn: AsyncConnection, user_id: int, chat_id: int) -> list[str]:
    """The user's links to ``chat_id`` that Telegram would still honour (not expired, not revoked)."""
    cursor = await conn.execute(
        "SELECT invite_link FROM join_links WHERE user_id = %s AND chat_id = %s AND revoked_at IS NULL"
        " AND expires_at > now() ORDER BY created_at",
        [user_id, chat_id],
    )
    return [row[0] for row in await cursor.fetchall()]


async def mark_revoked(conn: AsyncConnection, invite_link: str) -> None:
    await conn.execute("UPDATE join_links SET revoked_at = now() WHERE invite_link = %s AND revoked_at IS NULL", [invite_link])


async def has_access(conn: AsyncConnection, user_id: int, closed_chat_id: int) -> bool:
    """True while the user's access to the closed channel ``closed_chat_id`` runs (paid or granted)."""
    cursor = await conn.execute(
        "SELECT 1 FROM subscriptions s JOIN channels c ON c.id = s.channel_id"
        " WHERE s.user_id = %s AND c.closed_channel_id = %s AND s.ends_at > now() LIMIT 1",
        [user_id, closed_chat_id],
    )
    return await cursor.fetchone() is not None


async def is_active(conn: AsyncConnection, user_id: int, channel_id: int) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM subscriptions WHERE user_id = %s AND channel_id = %s AND ends_at > now()", [user_id, channel_id]
    )
    return await cursor.fetchone() is not None


async def is_member(conn: AsyncConnection, user_id: int, channel_id: int) -> bool:
    """Whether the user is in the closed channel as far as we know: they were not removed (their access may
    have just ended: a renewal's grace day) and their latest join link there was approved. A renewal then
    needs no new join link."""
    cursor = await conn.execute(
        "SELECT (SELECT j.approved_at IS NOT NULL FROM join_links j WHERE j.user_id = s.user_id AND j.chat_id = c.closed_channel_id"
        "        ORDER BY j.created_at DESC LIMIT 1)"
        " FROM subscriptions s JOIN channels c ON c.id = s.channel_id"
        " WHERE s.user_id = %s AND s.channel_id = %s AND s.removed_at IS NULL",
        [user_id, channel_id],
    )
    row = await cursor.fetchone()
    return bool(row and row[0])

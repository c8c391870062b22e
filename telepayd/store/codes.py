"""Queries on ``access_codes`` and ``code_redemptions``: codes that give days of access or a percentage off.

Codes are passed as typed or as stored: ``get``, ``redemptions``, ``disable`` and ``redeem`` normalize them
(``telepayd.codes.normalize``: case, spaces, dashes); something that cannot be a code is simply not found.
The caller owns the transaction; ``redeem`` alone opens one when given an autocommit connection outside
any, because its lock must last until the redemption is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row

from ..codes import normalize

# What ``redeem`` answers, first the refusals in the order they are checked.
UNKNOWN, DISABLED, EXPIRED, ALREADY, USED_UP, OK = "unknown", "disabled", "expired", "already", "used_up", "ok"


@dataclass(frozen=True)
class AccessCode:
    code: str
    channel_id: int
    days: int | None  # days of access (like an operator's grant), or
    percent: int | None  # a percentage off the next invoice in the channel
    tier_position: int | None  # a percent code for that plan only (1-3); None: any plan
    uses: int
    used: int
    expires_at: datetime | None
    disabled_at: datetime | None
    created_at: datetime

    def state(self, now: datetime) -> str:
        """``disabled``, ``expired``, ``used up`` or ``active`` (for people; ``redeem`` decides in the database)."""
        if self.disabled_at is not None:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.used >= self.uses:
            return "used up"
        return "active"


@dataclass(frozen=True)
class Redemption:
    code: str
    user_id: int
    redeemed_at: datetime
    order_id: str | None  # a percent code: the order it lowered (None until the user's next invoice)


class CodeConflict(Exception):
    """A code to create exists already."""


_COLUMNS = "code, channel_id, days, percent, tier_position, uses, used, expires_at, disabled_at, created_at"
_C_COLUMNS = ", ".join(f"c.{name.strip()}" for name in _COLUMNS.split(","))


async def create(
    conn: AsyncConnection, *, channel_id: int, codes: list[str], days: int | None, percent: int | None,
    tier_position: int | None, uses: int, expires_at: datetime | None,
) -> None:
    """Store ``codes`` (normalized already, see ``telepayd.codes``), all alike, in one statement. Raises
    ``CodeConflict`` when one exists already (the caller's transaction is then aborted: roll it back)."""
    from psycopg.errors import UniqueViolation

    try:
        await conn.execute(
            "INSERT INTO access_codes (code, channel_id, days, percent, tier_position, uses, expires_at)"
            " SELECT code, %s, %s, %s, %s, %s, %s FROM unnest(%s::text[]) AS code",
            [channel_id, days, percent, tier_position, uses, expires_at, codes],
        )
    except UniqueViolation as exc:
        raise CodeConflict(f"a code to create exists already ({exc.diag.message_detail or exc})") from None


async def list_codes(conn: AsyncConnection, channel_id: int | None, limit: int = 1000) -> list[AccessCode]:
    """The codes of a channel (every channel's with None), newest first."""
    cursor = conn.cursor(row_factory=class_row(AccessCode))
    await cursor.execute(
        f"SELECT {_COLUMNS} FROM access_codes WHERE %(channel)s::bigint IS NULL OR channel_id = %(channel)s"
        " ORDER BY created_at DESC, code LIMIT %(limit)s",
        {"channel": channel_id, "limit": limit},
    )
    return await cursor.fetchall()


async def get(conn: AsyncConnection, code: str) -> AccessCode | None:
    key = normalize(code)
    if key is None:
        return None
    cursor = conn.cursor(row_factory=class_row(AccessCode))
    await cursor.execute(f"SELECT {_COLUMNS} FROM access_codes WHERE code = %s", [key])
    return await cursor.fetchone()


async def redemptions(conn: AsyncConnection, code: str) -> list[Redemption]:
    """Who redeemed the code, oldest first."""
    key = normalize(code)
    if key is None:
        return []
    cursor = conn.cursor(row_factory=class_row(Redemption))
    await cursor.execute(
        "SELECT code, user_id, redeemed_at, order_id FROM code_redemptions WHERE code = %s ORDER BY redeemed_at, user_id",
        [key],
    )
    return await cursor.fetchall()


async def disable(conn: AsyncConnection, code: str) -> bool:
    """Disable the code now: True, or False when there is no such code or it was disabled before. A disabled
    code is refused by ``redeem``, and its redemptions not yet on an invoice give no discount any more."""
    key = normalize(code)
    if key is None:
        return False
    cursor = await conn.execute(
        "UPDATE access_codes SET disabled_at = now() WHERE code = %s AND disabled_at IS NULL RETURNING 1", [key]
    )
    return await cursor.fetchone() is not None


@contextlib.asynccontextmanager
async def _atomic(conn: AsyncConnection) -> AsyncIterator[None]:
    """Within the caller's transaction; a transaction of its own only on an autocommit connection outside
    any (where a row lock would end with its statement)."""
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            yield
    else:
        yield


async def redeem(conn: AsyncConnection, code: str, user_id: int) -> tuple[str, AccessCode | None]:
    """Redeem ``code`` (as typed) for ``user_id``, decided in the database under a lock on the code's row, so
    that of several users redeeming its last use at once exactly one gets it. Answers, in the order checked:

    - ``("unknown", None)``: no such code (or not the shape of one);
    - ``("disabled", code)``, ``("expired", code)`` (``expires_at <= now()``);
    - ``("already", code)``: this user redeemed it before (whatever is left of it);
    - ``("used_up", code)``: no use left;
    - ``("ok", code)``: the redemption is stored and counted (``code.used`` includes it). For a days code the
      caller grants the days in the same transaction; a percent code waits for ``pending_discount``.

    A refusal changes nothing."""
    key = normalize(code)
    if key is None:
        return UNKNOWN, None
    async with _atomic(conn):
        cursor = conn.cursor(row_factory=class_row(_Locked))
        await cursor.execute(
            f"SELECT {_COLUMNS}, expires_at IS NOT NULL AND expires_at <= now() AS expired"
            " FROM access_codes WHERE code = %s FOR UPDATE",
            [key],
        )
        locked = await cursor.fetchone()
        if locked is None:
            return UNKNOWN, None
        found = locked.access_code()
        if found.disabled_at is not None:
            return DISABLED, found
        if locked.expired:
            return EXPIRED, found
        # A statement of its own, after the lock: it sees a redemption committed while this one waited.
        before = await conn.execute("SELECT 1 FROM code_redemptions WHERE code = %s AND user_id = %s", [key, user_id])
        if await before.fetchone() is not None:
            return ALREADY, found
        if found.used >= found.uses:
            return USED_UP, found
        inserted = await conn.execute(
            "INSERT INTO code_redemptions (code, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1", [key, user_id]
        )
        if await inserted.fetchone() is None:  # cannot happen under the lock; never count it twice
            return ALREADY, found
        cursor = conn.cursor(row_factory=class_row(AccessCode))
        await cursor.execute(f"UPDATE access_codes SET used = used + 1 WHERE code = %s RETURNING {_COLUMNS}", [key])
        counted = await cursor.fetchone()
        assert counted is not None
        return OK, counted


@dataclass(frozen=True)
class _Locked:
    code: str
    channel_id: int
    days: int | None
    percent: int | None
    tier_position: int | None
    uses: int
    used: int
    expires_at: datetime | None
    disabled_at: datetime | None
    created_at: datetime
    expired: bool

    def access_code(self) -> AccessCode:
        return AccessCode(self.code, self.channel_id, self.days, self.percent, self.tier_position, self.uses,
                          self.used, self.expires_at, self.disabled_at, self.created_at)


async def pending_discount(conn: AsyncConnection, *, user_id: int, channel_id: int, tier_position: int) -> AccessCode | None:
    """The percent code ``user_id`` redeemed for ``channel_id`` that lowers their next invoice there for the plan
    at ``tier_position``: its redemption is on no order yet (one discount, one order: an order that ended
    unpaid keeps it, since a payment of it may still finish and grant); a code made for one plan matches that
    plan only; a disabled code gives no discount. The oldest redemption first.

    The redemption's row stays locked until the caller's transaction ends: a second invoice made at the same
    time waits, then finds the discount taken once ``attach`` put it on the first order."""
    cursor = conn.cursor(row_factory=class_row(AccessCode))
    await cursor.execute(
        f"SELECT {_C_COLUMNS} FROM code_redemptions r JOIN access_codes c ON c.code = r.code"
        " WHERE r.user_id = %(user)s AND c.channel_id = %(channel)s AND c.percent IS NOT NULL AND c.disabled_at IS NULL"
        " AND (c.tier_position IS NULL OR c.tier_position = %(tier)s)"
        " AND r.order_id IS NULL ORDER BY r.redeemed_at, r.code LIMIT 1 FOR UPDATE OF r",
        {"user": user_id, "channel": channel_id, "tier": tier_position},
    )
    return await cursor.fetchone()


async def attach(conn: AsyncConnection, *, code: str, user_id: int, order_id: str) -> None:
    """Put ``user_id``'s redemption of ``code`` on ``order_id`` (the invoice it lowered). Raises LookupError
    when that user never redeemed that code."""
    cursor = await conn.execute(
        "UPDATE code_redemptions SET order_id = %s WHERE code = %s AND user_id = %s RETURNING 1", [order_id, code, user_id]
    )
    if await cursor.fetchone() is None:
        raise LookupError(f"user {user_id} has no redemption of code {code}")


async def redeemed_in(conn: AsyncConnection, channel_id: int, start: datetime, end: datetime) -> int:
    """How many redemptions of the channel's codes were made in [start, end)."""
    cursor = await conn.execute(
        "SELECT count(*) FROM code_redemptions r JOIN access_codes c ON c.code = r.code"
        " WHERE c.channel_id = %s AND r.redeemed_at >= %s AND r.redeemed_at < %s",
        [channel_id, start, end],
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0

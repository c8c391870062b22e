"""Queries on ``channels`` and ``tiers``: what is for sale."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row


@dataclass(frozen=True)
class Tier:
    id: int
    position: int
    price: Decimal
    days: int
    stars_price: int | None = None  # whole Stars; None: not offered in Stars


@dataclass(frozen=True)
class Channel:
    id: int
    open_channel_id: int
    closed_channel_id: int
    owner_chat_id: int
    title: str
    description: str
    removed: bool
    tiers: tuple[Tier, ...] = ()
    trial_days: int = 0  # a free trial of this many days, once per user (0: none)

    @property
    def lowest_price(self) -> Decimal | None:
        return min((t.price for t in self.tiers), default=None)

    @property
    def sells_in_stars(self) -> bool:
        return any(t.stars_price is not None for t in self.tiers)


@dataclass(frozen=True)
class TierSpec:
    """A plan as the operator writes it: ``PRICE:DAYS[:STARS]``."""

    price: Decimal
    days: int
    stars: int | None = None


class ChannelConflict(Exception):
    """The open or closed channel is already registered."""


_CHANNEL_COLUMNS = """
    c.id, c.open_channel_id, c.closed_channel_id, c.owner_chat_id, c.title, c.description,
    c.removed_at IS NOT NULL AS removed, c.trial_days
"""


async def _with_tiers(conn: AsyncConnection, rows: list[dict]) -> list[Channel]:
    if not rows:
        return []
    cursor = conn.cursor(row_factory=class_row(_TierRow))
    await cursor.execute(
        "SELECT channel_id, id, position, price, days, stars_price FROM tiers"
        " WHERE channel_id = ANY(%(ids)s) AND retired_at IS NULL ORDER BY channel_id, position",
        {"ids": [r["id"] for r in rows]},
    )
    tiers: dict[int, list[Tier]] = {}
    for t in await cursor.fetchall():
        tiers.setdefault(t.channel_id, []).append(Tier(t.id, t.position, t.price, t.days, t.stars_price))
    return [Channel(**row, tiers=tuple(tiers.get(row["id"], ()))) for row in rows]


@dataclass
class _TierRow:
    channel_id: int
    id: int
    position: int
    price: Decimal
    days: int
    stars_price: int | None


async def _fetch(conn: AsyncConnection, where: str, params: dict, *, page: str = "") -> list[Channel]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT {_CHANNEL_COLUMNS} FROM channels c WHERE {where} ORDER BY c.id{page}", params)
    return await _with_tiers(conn, await cursor.fetchall())


async def list_active(conn: AsyncConnection) -> list[Channel]:
    return await _fetch(conn, "c.removed_at IS NULL", {})


# On sale: not removed, with at least one plan.
_ON_SALE = "c.removed_at IS NULL AND EXISTS (SELECT 1 FROM tiers t WHERE t.channel_id = c.id AND t.retired_at IS NULL)"


# More pages than any operator has channels: a button that asks for one is forged (and its OFFSET could
# overflow PostgreSQL's bigint); it gets the last page, as an old button past the end does.
MAX_PAGES = 1_000_000


async def on_sale_page(conn: AsyncConnection, page: int, size: int) -> tuple[list[Channel], int, bool]:
    """One page of the channels on sale, by key, with only that page's plans read (not every channel's):
    ``(channels, page, more)``, ``more`` when a page follows; a page past the end gives the last one.

    Reads the page and one channel more, not a count of every channel on sale (with 2,000 channels the
    first page took 2.64 ms with the count, 0.81 ms without)."""
    page = min(max(page, 0), MAX_PAGES)
    found = await _on_sale_from(conn, page, size) if page < MAX_PAGES else []
    if not found and page > 0:  # past the end (channels taken off sale since the list was shown): the last page
        cursor = await conn.execute(f"SELECT count(*) FROM channels c WHERE {_ON_SALE}")
        row = await cursor.fetchone()
        page = max(0, -(-int(row[0] if row else 0) // size) - 1)
        found = await _on_sale_from(conn, page, size)
        if not found and page > 0:  # more taken off sale between the count and this read
            page, found = 0, await _on_sale_from(conn, 0, size)
    return found[:size], page, len(found) > size


async def _on_sale_from(conn: AsyncConnection, page: int, size: int) -> list[Channel]:
    return await _fetch(conn, _ON_SALE, {"limit": size + 1, "offset": page * size}, page=" LIMIT %(limit)s OFFSET %(offset)s")


async def list_all(conn: AsyncConnection) -> list[Channel]:
    return await _fetch(conn, "TRUE", {})


async def get(conn: AsyncConnection, channel_key: int) -> Channel | None:
    """A channel by its key (row id), removed ones included (their subscriptions still run)."""
    found = await _fetch(conn, "c.id = %(id)s", {"id": channel_key})
    return found[0] if found else None


async def find_by_open_id(conn: AsyncConnection, open_channel_id: int) -> Channel | None:
    found = await _fetch(conn, "c.open_channel_id = %(id)s AND c.removed_at IS NULL", {"id": open_channel_id})
    return found[0] if found else None


async def find_by_closed_id(conn: AsyncConnection, closed_channel_id: int) -> Channel | None:
    found = await _fetch(conn, "c.closed_channel_id = %(id)s AND c.removed_at IS NULL", {"id": closed_channel_id})
    return found[0] if found else None


async def add(
    conn: AsyncConnection,
    *,
    open_channel_id: int,
    closed_channel_id: int,
    owner_chat_id: int,
    title: str,
    description: str,
    tiers: list[TierSpec],
    trial_days: int = 0,
) -> int:
    """Register a channel with its tiers; raise ``ChannelConflict`` when either id is taken."""
    cursor = await conn.execute(
        "SELECT 1 FROM channels WHERE removed_at IS NULL AND"
        " (open_channel_id IN (%(open)s, %(closed)s) OR closed_channel_id IN (%(open)s, %(closed)s))",
        {"open": open_channel_id, "closed": closed_channel_id},
    )
    if await cursor.fetchone():
        raise ChannelConflict(f"channel {open_channel_id} or {closed_channel_id} is already registered")
    cursor = await conn.execute(
        "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title, description, trial_days)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        [open_channel_id, closed_channel_id, owner_chat_id, title, description, trial_days],
    )
    row = await cursor.fetchone()
    assert row is not None
    await replace_tiers(conn, row[0], tiers)
    return int(row[0])


async def replace_tiers(conn: AsyncConnection, channel_key: int, tiers: list[TierSpec]) -> None:
    """Retire the current tiers and add new ones (orders keep pointing at the tier they were sold from)."""
    await conn.execute("UPDATE tiers SET retired_at = now() WHERE channel_id = %s AND retired_at IS NULL", [channel_key])
    for position, tier in enumerate(tiers, start=1):
        await conn.execute(
            "INSERT INTO tiers (channel_id, position, price, days, stars_price) VALUES (%s, %s, %s, %s, %s)",
            [channel_key, position, tier.price, tier.days, tier.stars],
        )


async def any_stars_price(conn: AsyncConnection) -> bool:
    """Whether any plan on sale has a Stars price (Stars are then on unless ``[stars] enabled`` says no)."""
    cursor = await conn.execute("SELECT EXISTS (SELECT 1 FROM tiers WHERE stars_price IS NOT NULL AND retired_at IS NULL)")
    row = await cursor.fetchone()
    return bool(row and row[0])


async def update(conn: AsyncConnection, channel_key: int, fields: dict[str, object]) -> None:
    """Update title, description, owner_chat_id, trial_days (a fixed set of columns)."""
    allowed = {"title", "description", "owner_chat_id", "trial_days"}
    assert set(fields) <= allowed
    for column, value in fields.items():
        await conn.execute(f"UPDATE channels SET {column} = %s WHERE id = %s", [value, channel_key])


async def active_subscribers(conn: AsyncConnection, channel_key: int) -> int:
    cursor = await conn.execute(
        "SELECT count(*) FROM subscriptions WHERE channel_id = %s AND ends_at > now()", [channel_key]
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def remove(conn: AsyncConnection, channel_key: int) -> None:
    """Take a channel off sale; its subscriptions run to their end."""
    await conn.execute("UPDATE channels SET removed_at = now() WHERE id = %s AND removed_at IS NULL", [channel_key])
    await conn.execute("UPDATE tiers SET retired_at = now() WHERE channel_id = %s AND retired_at IS NULL", [channel_key])

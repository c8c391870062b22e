"""Session advisory locks: one daemon at a time does a job (outbox delivery, expiry sweeps)."""

from __future__ import annotations

from psycopg import AsyncConnection

# Lock keys, fixed forever: every daemon on the database must agree on them.
OUTBOX_LOCK = 0x74656C65_6F757462  # "teleoutb"


async def try_lock(conn: AsyncConnection, key: int) -> bool:
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", [key])
    row = await cursor.fetchone()
    return bool(row and row[0])


async def unlock(conn: AsyncConnection, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", [key])


async def ping(conn: AsyncConnection) -> None:
    """A round trip: raises when the session (and so its locks) is gone."""
    await conn.execute("SELECT 1")
SWEEPER_LOCK = 0x74656C65_73776570  # "telesweep"
RECONCILE_LOCK = 0x74656C65_7265636F  # "telereco"
STARS_LOCK = 0x74656C65_73746172  # "telestar"

"""Numbered SQL migrations, read with ``importlib.resources`` and applied under an advisory lock."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection

from ..errors import SchemaTooNew

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key for migrations: "telepayd" as a number, shared by every daemon on the database.
MIGRATION_LOCK = 0x74656C6570617964 >> 1
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this telepayd, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def latest_version() -> int:
    return migrations()[-1].version


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def current_version(conn: AsyncConnection) -> int:
    """The schema version of the database (0 when never migrated)."""
    cursor = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cursor.fetchone()
    if not row or not row[0]:
        return 0
    cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: AsyncConnection, *, up_to: int | None = None) -> list[Migration]:
    """Apply the pending migrations (those up to version ``up_to`` only, when given: tests and benchmarks
    build an older schema) in one transaction; return those applied. Raises ``SchemaTooNew``."""
    known = migrations()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        await conn.execute(_CREATE_TABLE)
        version = await current_version(conn)
        if version > known[-1].version:
            raise SchemaTooNew(version, known[-1].version)
        pending = [m for m in known if version < m.version <= (known[-1].version if up_to is None else up_to)]
        for migration in pending:
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            await conn.execute(migration.sql.encode("utf-8"))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                [migration.version, migration.name],
            )
    return pending


async def check_version(conn: AsyncConnection) -> int:
    """Return the database's version; raise ``SchemaTooNew`` when it is ahead of this code."""
    version = await current_version(conn)
    known = latest_version()
    if version > known:
        raise SchemaTooNew(version, known)
    return version

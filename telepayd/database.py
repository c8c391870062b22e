"""The database's life in the daemon: pool, schema at start, recovery while degraded."""

from __future__ import annotations

import asyncio
import logging
import time

from psycopg_pool import PoolTimeout

from .backoff import Backoff
from .config import DatabaseConfig
from .errors import StoreUnavailable
from .store import locks, schema
from .store.pool import UNAVAILABLE_ERRORS, connect, create_pool, first_line

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
PING_EVERY_SECONDS = 1.0


# Bot updates waiting for a connection beyond this many are refused at once (the user is asked to retry).
BOT_POOL_MAX_WAITING = 50


class Database:
    """The pools plus what the daemon knows of the database's state (for ``/ready`` and ``STATUS=``).

    Two pools, so that Telegram users cannot take what money needs: ``pool`` serves IPNs, signed webhooks,
    the outbox and the sweeper; ``bot_pool`` (``[database] bot_pool_size``) serves the bot's handlers, which
    never hold one of its connections across a call to Telegram or NowPayments."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self.pool = create_pool(config, recent_unchecked=True)
        self.bot_pool = create_pool(
            config, application_name="telepayd-bot", name="telepayd-bot", min_size=1, max_size=config.bot_pool_size,
            max_waiting=BOT_POOL_MAX_WAITING,
        )
        self.schema_ready = False
        self.problem = "not connected yet"
        self._ping: asyncio.Future[bool] | None = None
        self._pinged_at = 0.0

    async def open(self) -> None:
        await self.pool.open(wait=False)
        await self.bot_pool.open(wait=False)

    async def close(self) -> None:
        await self.bot_pool.close(timeout=self.config.timeout_seconds)
        await self.pool.close(timeout=self.config.timeout_seconds)

    async def prepare(self) -> None:
        """Migrate (``migrate_on_start``) or check the schema version, once.

        Raises ``StoreUnavailable`` when the database cannot be reached and ``SchemaTooNew`` when it is
        ahead of this code. A schema that is behind without ``migrate_on_start`` stays "not ready".
        """
        try:
            async with await connect(self.config) as conn:
                if self.config.migrate_on_start:
                    self.problem = "migrating the schema"
                    applied = await schema.migrate(conn)
                    if applied:
                        logger.info("database migrated to version %d", applied[-1].version)
                    version = schema.latest_version()
                else:
                    version = await schema.check_version(conn)
        except StoreUnavailable as exc:
            self.problem = f"unreachable ({exc})"
            raise StoreUnavailable(self.problem) from None
        except UNAVAILABLE_ERRORS as exc:
            self.problem = f"unreachable ({first_line(exc)})"
            raise StoreUnavailable(self.problem) from None
        latest = schema.latest_version()
        if version < latest:
            self.problem = f"schema at version {version}, this telepayd needs {latest}: run 'telepayd migrate'"
            raise StoreUnavailable(self.problem)
        self.schema_ready = True
        self.problem = ""

    async def keep_preparing(self) -> None:
        """Retry ``prepare()`` with backoff until it succeeds (``SchemaTooNew`` propagates)."""
        backoff = Backoff(first=1.0, most=MAX_BACKOFF_SECONDS)
        while True:
            try:
                await self.prepare()
            except StoreUnavailable:
                delay = backoff.next()
                logger.warning("database not ready: %s; retrying in %.0f s", self.problem, delay)
                await asyncio.sleep(delay)
            else:
                logger.info("database ready")
                return

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers a round trip. ``/ready`` is public: every caller within
        ``PING_EVERY_SECONDS`` shares one ping, so a flood of probes costs one connection a second."""
        if not self.schema_ready:
            return False
        now = time.monotonic()
        if self._ping is None or (self._ping.done() and now - self._pinged_at >= PING_EVERY_SECONDS):
            self._pinged_at = now
            self._ping = asyncio.ensure_future(self._ping_once(timeout))
        return await asyncio.shield(self._ping)

    async def _ping_once(self, timeout: float) -> bool:
        try:
            async with self.pool.connection(timeout=timeout) as conn:
                await locks.ping(conn)
        except PoolTimeout:
            # No pooled connection in time: every one is busy (loaded, but up), or none can be made (down).
            # One connection of its own tells which (at most once a second: callers share the ping).
            try:
                async with await connect(self.config) as conn:
                    await locks.ping(conn)
            except StoreUnavailable as exc:
                self.problem = f"unreachable ({exc})"
                return False
            except UNAVAILABLE_ERRORS as exc:
                self.problem = f"unreachable ({first_line(exc)})"
                return False
        except UNAVAILABLE_ERRORS as exc:
            self.problem = f"unreachable ({first_line(exc)})"
            return False
        self.problem = ""
        return True


"""Periodic work on one daemon at a time (advisory lock): reminders and removals of ending subscriptions,
expired donation keypads, broadcast jobs, unpaid orders past the invoice's lifetime, and retention. Everything it decides goes to the outbox in the
same transaction, so a sweep is idempotent: a reminder day or a removal is recorded when it is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .config import Config
from . import languages
from .reconcile import INVOICE_LIFETIME
from .store import channels, locks, orders, sweeps, webhook_messages
from .store import outbox as outbox_store
from .store.pool import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

# Reminders and removals are decided BATCH subscriptions a transaction, until none is left or MAX_BATCHES
# were done (the next sweep goes on): a sweep costs what is due, and a backlog clears in one sweep.
BATCH = 500
MAX_BATCHES = 200


class Sweeper:
    def __init__(self, pool: AsyncConnectionPool, config: Callable[[], Config], *, ready: Callable[[], bool],
                 wake_outbox: Callable[[], None],
                 on_error: Callable[[str, BaseException], None] = lambda where, exc: None) -> None:
        self._pool = pool
        self._on_error = on_error
        self._config = config
        self._ready = ready
        self._wake_outbox = wake_outbox
        self._dry_run_logged: set[tuple[int, int]] = set()
        self._nudge = asyncio.Event()

    def nudge(self) -> None:
        """Sweep now (a broadcast job was stored)."""
        self._nudge.set()

    async def run(self) -> None:
        while True:
            try:
                if self._ready():
                    await self.sweep_once()
            except (PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
                logger.warning("sweeper: database unavailable (%s)", exc)
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancellation
                async with asyncio.timeout(self._config().subscriptions.sweep_interval_seconds):
                    await self._nudge.wait()
            self._nudge.clear()

    async def sweep_once(self) -> bool:
        """One sweep, if this daemon holds the lock; return whether it did."""
        async with self._pool.connection() as lock_conn:
            if not await locks.try_lock(lock_conn, locks.SWEEPER_LOCK):
                return False
            try:
                config = self._config()
                queued = 0
                # Each part on its own: one that fails (a bug, a row it cannot handle) does not stop the others.
                for part in (self._broadcasts, self._reminders, self._removals, self._keypads, self._unpaid_orders,
                             self._retention):
                    try:
                        queued += await part(config)
                    except (PoolTimeout, *UNAVAILABLE_ERRORS):
                        raise
                    except Exception as exc:
                        self._on_error(f"sweeper {part.__name__.strip('_')}", exc)
            finally:
                await locks.unlock(lock_conn, locks.SWEEPER_LOCK)
        if queued:
            self._wake_outbox()
        return True

    async def _broadcasts(self, config: Config) -> int:
        async with self._pool.connection() as conn:
            async with conn.transaction():
                jobs = await sweeps.take_broadcast_jobs(conn)
                if not jobs:
                    return 0
                active = await channels.list_active(conn)
                queued = 0
                for job in jobs:
                    wanted = set(job.open_channel_ids) if job.open_channel_ids is not None else None
                    targets = [c for c in active if wanted is None or str(c.open_channel_id) in wanted]
                    for channel in targets:
                        await outbox_store.enqueue_channel_post(conn, channel.open_channel_id, channel.id)
                    unknown = sorted(wanted - {str(c.open_channel_id) for c in active}) if wanted else []
                    logger.info("broadcast job %d: %d channel post(s) queued%s", job.id, len(targets),
                                f"; unknown channels skipped: {', '.join(unknown)}" if unknown else "")
                    queued += len(targets)
                return queued

    async def _reminders(self, config: Config) -> int:
        days = config.subscriptions.reminder_days
        if not days:
            return 0
        return await _in_batches(lambda after: self._remind_batch(days, after, config.bot.default_language))

    async def _remind_batch(self, days: tuple[int, ...], after: datetime | None,
                            default_language: str) -> tuple[int, int, datetime | None]:
        queued = 0
        async with self._pool.connection() as conn:
            async with conn.transaction():
                now = datetime.now(timezone.utc)
                owed = await sweeps.to_remind(conn, list(days), now, BATCH, after=after)
                for sub in owed:
                    left_days = (sub.ends_at - now).total_seconds() / 86400
                    due = [d for d in days if left_days <= d and d not in sub.reminded_days]
                    if not due:
                        continue
                    # One reminder per sweep, for the nearest day; the farther ones are then past.
                    texts = languages.texts_for(sub.language, sub.telegram_language, default_language)
                    if sub.renews:  # no nagging: it renews by itself
                        await outbox_store.enqueue_message(conn, sub.user_id, texts.reminder_renews(sub.title, sub.ends_at))
                    else:
                        await outbox_store.enqueue_message(conn, sub.user_id, texts.reminder(sub.title, sub.ends_at),
                                                           renew_channel_key=sub.channel_id, language=texts.language)
                    await sweeps.mark_reminded(conn, sub.user_id, sub.channel_id, sorted(set(sub.reminded_days) | set(due)))
                    queued += 1
        return len(owed), queued, owed[-1].ends_at if owed else after

    async def _removals(self, config: Config) -> int:
        return await _in_batches(lambda _: self._remove_batch(config.subscriptions.removal_dry_run,
                                                             config.bot.default_language))

    async def _remove_batch(self, dry_run: bool, default_language: str) -> tuple[int, int, None]:
        queued = 0
        async with self._pool.connection() as conn:
            async with conn.transaction():
                ended = await sweeps.ended(conn, BATCH)
                for sub in ended:
                    if dry_run:
                        key = (sub.user_id, sub.channel_id)
                        if key not in self._dry_run_logged:
                            self._dry_run_logged.add(key)
                            logger.info("removal_dry_run: would remove user %s from %s (ended %s)",
                                        sub.user_id, sub.closed_channel_id, sub.ends_at)
                        continue
                    language = languages.pick(sub.language, sub.telegram_language, default_language)
                    await outbox_store.enqueue_removal(conn, sub.user_id, closed_chat_id=sub.closed_channel_id,
                                                       title=sub.title, channel_key=sub.channel_id, language=language)
                    await sweeps.mark_removed(conn, sub.user_id, sub.channel_id)
                    logger.info("subscription of user %s to channel %s ended: removal queued", sub.user_id, sub.channel_id)
                    queued += 1
        return len(ended), queued, None

    async def _keypads(self, config: Config) -> int:
        async with self._pool.connection() as conn:
            async with conn.transaction():
                stale = await sweeps.take_stale_keypads(conn, config.donations.keypad_timeout_seconds)
                for pad in stale:
                    texts = await languages.texts_of(conn, pad.user_id, config.bot.default_language)
                    await outbox_store.enqueue_edit(conn, pad.chat_id, pad.message_id, texts.KEYPAD_EXPIRED)
        return len(stale)

    async def _unpaid_orders(self, config: Config) -> int:
        """Orders never paid within NowPayments' invoice lifetime are marked expired (a payment that
        finishes later still grants: the money rules look at payments, not at this status)."""
        async with self._pool.connection() as conn:
            async with conn.transaction():
                expired = await orders.expire_unpaid(conn, older_than=INVOICE_LIFETIME)
        if expired:
            logger.info("%d unpaid order(s) older than %d days marked expired: %s%s", len(expired), INVOICE_LIFETIME.days,
                        ", ".join(expired[:10]), " ..." if len(expired) > 10 else "")
        return 0  # nothing queued

    async def _retention(self, config: Config) -> int:
        async with self._pool.connection() as conn:
            sent = await outbox_store.purge_sent(conn, config.retention.sent_outbox_days)
            ids = await webhook_messages.purge_ids(conn, config.retention.webhook_ids_days)
        if sent or ids:
            logger.info("retention: purged %d sent outbox message(s) and %d old webhook-id(s)", sent, ids)
        return 0  # nothing queued


async def _in_batches(batch: Callable[[Any], Awaitable[tuple[int, int, Any]]]) -> int:
    """Run ``batch(position)`` (which returns rows read, messages queued, where the next batch starts)
    until it reads less than a full batch or queues nothing (a dry run reads the same rows again); return
    the messages queued."""
    queued, position = 0, None
    for _ in range(MAX_BATCHES):
        read, done, position = await batch(position)
        queued += done
        if read < BATCH or not done:
            break
    return queued

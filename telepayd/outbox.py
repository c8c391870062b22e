"""Delivers the outbox to Telegram, on one daemon at a time (advisory lock), retrying until Telegram
accepts a message or rejects it for good.

A message is marked sent right after Telegram accepts it. A crash between the two repeats that one
message at most once per crash (the join link step keeps its created link in the row, so a retry reuses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError

from .handlers import texts
from .store import locks, subscriptions
from .store import outbox as outbox_store
from .store.pool import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

BATCH = 50
POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
SEND_INTERVAL_SECONDS = 1 / 30  # Telegram's overall limit is about 30 messages per second


class PermanentFailure(Exception):
    """Telegram refused the message for good (blocked, chat not found, ...)."""


class OutboxWorker:
    """Polls due messages (or wakes when this daemon queued one) and sends them with the bot."""

    def __init__(self, pool: AsyncConnectionPool, bot: Callable[[], Bot | None]) -> None:
        self._pool = pool
        self._bot = bot
        self._wake = asyncio.Event()
        self.leader = False
        self.sent = 0
        self.failed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                async with self._pool.connection() as lock_conn:
                    if not await locks.try_lock(lock_conn, locks.OUTBOX_LOCK):
                        self.leader = False
                        await self._sleep(POLL_SECONDS * 5)
                        continue
                    self.leader = True
                    delay = 1.0
                    try:
                        await self._deliver_while_leader(lock_conn)
                    finally:
                        self.leader = False
                        with contextlib.suppress(Exception):
                            await locks.unlock(lock_conn, locks.OUTBOX_LOCK)
            except (PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
                logger.warning("outbox: database unavailable (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except psycopg.Error:
                # A bug or a schema problem: keep the daemon serving payments, say so loudly, retry later.
                logger.exception("outbox: database error; retrying in %.0f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _deliver_while_leader(self, lock_conn) -> None:
        while True:
            await locks.ping(lock_conn)  # the lock lives as long as this session
            bot = self._bot()
            if bot is None:
                await self._sleep(POLL_SECONDS)
                continue
            async with self._pool.connection() as conn:
                due = await outbox_store.due(conn, BATCH)
            for message in due:
                await self._deliver(bot, message)
                await asyncio.sleep(SEND_INTERVAL_SECONDS)
            if len(due) < BATCH:
                await self._sleep(POLL_SECONDS)

    async def _deliver(self, bot: Bot, message: outbox_store.OutboxMessage) -> None:
        try:
            if message.kind == "message":
                await self._send_message(bot, message.chat_id, message.payload)
            elif message.kind == "join_link":
                await self._send_join_link(bot, message)
            else:
                raise PermanentFailure(f"unknown outbox kind {message.kind!r}")
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            logger.warning("outbox %d: Telegram asks to wait %.0f s", message.id, wait)
            await self._update(outbox_store.retry_later, message.id, wait, f"429 retry after {wait:.0f} s")
            await asyncio.sleep(wait)
        except (Forbidden, BadRequest, InvalidToken, PermanentFailure) as exc:
            logger.warning("outbox %d to chat %d failed for good: %s", message.id, message.chat_id, exc)
            self.failed += 1
            await self._update(outbox_store.mark_failed, message.id, f"{exc.__class__.__name__}: {exc}")
        except TelegramError as exc:  # network errors, timeouts, 5xx
            wait = min(MAX_BACKOFF_SECONDS, 2.0 ** min(message.attempts, 8))
            logger.info("outbox %d: %s; retrying in %.0f s", message.id, exc, wait)
            await self._update(outbox_store.retry_later, message.id, wait, f"{exc.__class__.__name__}: {exc}")
        else:
            self.sent += 1
            await self._update(outbox_store.mark_sent, message.id)

    async def _update(self, query, *args) -> None:
        async with self._pool.connection() as conn:
            await query(conn, *args)

    async def _send_message(self, bot: Bot, chat_id: int, payload: dict[str, Any]) -> None:
        await bot.send_message(chat_id, payload["text"], parse_mode=ParseMode.HTML, disable_web_page_preview=True)

    async def _send_join_link(self, bot: Bot, message: outbox_store.OutboxMessage) -> None:
        payload = dict(message.payload)
        if "invite_link" not in payload:
            expires = datetime.now(timezone.utc) + timedelta(hours=int(payload["hours"]))
            name = (payload.get("order_id") or f"user {message.chat_id}")[:32]
            link = await bot.create_chat_invite_link(
                payload["closed_chat_id"], name=name, expire_date=expires, creates_join_request=True
            )
            payload["invite_link"] = link.invite_link
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    await subscriptions.add_join_link(
                        conn, invite_link=link.invite_link, order_id=payload.get("order_id"),
                        user_id=message.chat_id, chat_id=payload["closed_chat_id"], expires_at=expires,
                    )
                    await outbox_store.save_progress(conn, message.id, payload)
        if payload.get("fresh"):
            text = texts.fresh_join_link(payload["title"], payload["invite_link"], int(payload["hours"]))
        else:
            text = texts.join_link(
                payload["title"], payload["invite_link"], int(payload["hours"]), datetime.fromisoformat(payload["ends_at"])
            )
        await bot.send_message(message.chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True)


def _seconds(value: timedelta | int | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)

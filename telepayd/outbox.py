"""Delivers the outbox to Telegram, on one daemon at a time (advisory lock), retrying until Telegram accepts
a message or rejects it for good, within Telegram's limits (overall, per chat, per group or channel).

A message is marked sent right after Telegram accepts it, so a crash in between sends that one message
again after the restart: at most one duplicate per message in flight (one at a time here). Multi-step
deliveries (a join link, a removal) keep what they already did in the row, so a retry does not redo it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.helpers import create_deep_linked_url

from .backoff import Backoff
from .metrics import Instruments
from .config import OutboxConfig
from . import languages
from .texts import Texts
from .store import anomalies, channels, locks, notifications, subscriptions
from .store import outbox as outbox_store
from .store.pool import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

BATCH = 100
POLL_SECONDS = 1.0
# An idle worker woken by a message that is not urgent (an owner's notification) looks again no sooner than
# this after its last look. A look reads past every pending row of the chats cooling down that comes before
# the rows it can send (delivery order is by priority and age, not by chat), so a burst of notifications to
# one owner, which made the worker look once per notification, re-read that owner's whole backlog thousands
# of times a second: PostgreSQL took a core and the signed ingest ran at 0.7x. Now a burst costs at most
# four looks a second, and a notification waits at most this long more.
NOT_URGENT_GAP_SECONDS = 0.25
MAX_PAUSE_SECONDS = 30.0
# Telegram measures arrivals, which network jitter brings closer together than we sent them: pace 5% slower.
SAFETY_MARGIN = 1.05
NOT_MODIFIED = "message is not modified"
EDIT_TARGET_GONE = ("message to edit not found", "message can't be edited")


class PermanentFailure(Exception):
    """Telegram refused the message for good (blocked, chat not found, ...), or it cannot be delivered."""


class Pacer:
    """Telegram's limits: an overall rate, one message per second per chat, 20 per minute per group."""

    def __init__(self, limits: Callable[[], OutboxConfig]) -> None:
        self._limits = limits
        self._next_any = 0.0
        self._next_chat: dict[int, float] = {}

    def _chat_interval(self, chat_id: int) -> float:
        limits = self._limits()
        if chat_id < 0:  # groups and channels
            return SAFETY_MARGIN * 60.0 / limits.per_group_per_minute if limits.per_group_per_minute else 0.0
        return SAFETY_MARGIN / limits.per_chat_per_second if limits.per_chat_per_second else 0.0

    def busy_chats(self) -> list[int]:
        now = time.monotonic()
        for chat in [c for c, t in self._next_chat.items() if t <= now]:
            del self._next_chat[chat]  # keeps the map as small as the chats cooling down
        return list(self._next_chat)

    def is_busy(self, chat_id: int) -> bool:
        return self._next_chat.get(chat_id, 0.0) > time.monotonic()

    async def turn(self, chat_id: int) -> None:
        """Wait for this chat's turn and the overall one, then book both."""
        now = time.monotonic()
        start = max(now, self._next_any, self._next_chat.get(chat_id, 0.0))
        if start > now:
            await asyncio.sleep(start - now)
        rate = self._limits().messages_per_second
        self._next_any = start + (SAFETY_MARGIN / rate if rate else 0.0)
        interval = self._chat_interval(chat_id)
        if interval:
            self._next_chat[chat_id] = start + interval

    def pause(self, seconds: float) -> None:
        """Telegram said wait (429) or is down: nobody sends before then."""
        self._next_any = max(self._next_any, time.monotonic() + seconds)


class OutboxWorker:
    """Polls due messages (or wakes when this daemon queued one) and sends them with the bot."""

    def __init__(self, pool: AsyncConnectionPool, bot: Callable[[], Bot | None], limits: Callable[[], OutboxConfig],
                 *, on_error: Callable[[str, BaseException], None] = lambda where, exc: None,
                 instruments: Instruments | None = None, default_language: Callable[[], str] = lambda: "en") -> None:
        self._pool = pool
        self._default_language = default_language  # for rows queued without a language, and owners
        self._instruments = instruments or Instruments(enabled=False)
        self._on_error = on_error
        self._bot = bot
        self._wake = asyncio.Event()
        self._urgent = False  # queued since the last query: something that may go before the batch
        self._looked_at = 0.0  # monotonic time of the last query for due messages
        self._pacer = Pacer(limits)
        self._outage_pause = 1.0
        self.leader = False
        self.sent = 0
        self.failed = 0

    def wake(self, *, urgent: bool = True) -> None:
        """Something was queued: look now. ``urgent`` (the default: a join link, a removal may be among it)
        also leaves the batch being delivered, so it goes first; messages that queue behind the others
        anyway (owner notifications from the ingest, thousands a second at worst) only wake an idle
        worker: leaving the batch for each of them made the worker read 50 rows per message delivered."""
        self._urgent = self._urgent or urgent
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(first=1.0, most=30.0)
        while True:
            try:
                async with self._pool.connection() as lock_conn:
                    if not await locks.try_lock(lock_conn, locks.OUTBOX_LOCK):
                        self.leader = False
                        await self._sleep(POLL_SECONDS * 5)
                        continue
                    self.leader = True
                    backoff.reset()
                    logger.info("outbox: this daemon delivers")
                    try:
                        await self._deliver_while_leader(lock_conn)
                    finally:
                        self.leader = False
                        with contextlib.suppress(Exception):
                            await locks.unlock(lock_conn, locks.OUTBOX_LOCK)
            except (PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
                delay = backoff.next()
                logger.warning("outbox: database unavailable (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that comes as the
        # event is set (a busy outbox is woken all the time), and a stop then waits for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _idle(self, seconds: float) -> None:
        """Sleep ``seconds`` or until woken; a wake that is not urgent ends it only once
        ``NOT_URGENT_GAP_SECONDS`` have passed since the last look."""
        deadline = time.monotonic() + seconds
        await self._sleep(seconds)
        while not self._urgent:
            now = time.monotonic()
            left = min(self._looked_at + NOT_URGENT_GAP_SECONDS, deadline) - now
            if left <= 0:
                return
            await self._sleep(left)

    async def _deliver_while_leader(self, lock_conn: psycopg.AsyncConnection) -> None:
        while True:
            await locks.ping(lock_conn)  # the lock lives as long as this session
            bot = self._bot()
            if bot is None:
                await self._sleep(POLL_SECONDS)
                continue
            self._wake.clear()  # from here on, a wake means "queued since this query"
            self._urgent = False
            self._looked_at = time.monotonic()
            async with self._pool.connection() as conn:
                due = await outbox_store.due(conn, BATCH, skip_chats=self._pacer.busy_chats())
            delivered = 0
            for message in due:
                if self._urgent and message.priority != outbox_store.URGENT:
                    break  # something new was queued (a buyer's join link?): look again, most urgent first
                if message.chat_id is not None and self._pacer.is_busy(message.chat_id):
                    continue  # its chat is cooling down: the next round takes it
                delivered += await self._deliver(bot, message)
            if not due or not delivered:
                await self._idle(POLL_SECONDS if not due else 0.05)

    async def _deliver(self, bot: Bot, message: outbox_store.OutboxMessage) -> int:
        """Try one message; return 1 when it was settled (sent or failed for good).

        Whatever goes wrong with one message fails that message (kept with its reason for ``telepayd outbox
        failed``), never the worker; only the database being unavailable stops the round."""
        try:
            chat_id = message.chat_id
            if chat_id is None:
                chat_id = await self._resolve(message)
                if self._pacer.is_busy(chat_id):
                    return 0  # its chat is cooling down: a later round takes it, the other chats go on
            await self._pacer.turn(chat_id)
            await self._send(bot, message, chat_id)
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            logger.warning("outbox %d: Telegram asks to wait %.0f s; pausing all delivery", message.id, wait)
            self._pacer.pause(wait)
            self._instruments.paused()
            await self._update(outbox_store.retry_later, message.id, wait, f"429 retry after {wait:.0f} s")
            return 0
        except (Forbidden, BadRequest, InvalidToken, PermanentFailure) as exc:
            logger.warning("outbox %d (%s) to chat %s failed for good: %s", message.id, message.kind, message.chat_id, exc)
            self.failed += 1
            self._instruments.delivered(message.kind, sent=False)
            await self._update(outbox_store.mark_failed, message.id, f"{exc.__class__.__name__}: {exc}")
            return 1
        except TelegramError as exc:  # network errors, timeouts, 5xx: Telegram is down for everyone
            logger.info("outbox %d: %s; pausing delivery %.0f s", message.id, exc, self._outage_pause)
            self._pacer.pause(self._outage_pause)
            await self._update(outbox_store.retry_later, message.id, self._outage_pause, f"{exc.__class__.__name__}: {exc}")
            self._outage_pause = min(self._outage_pause * 2, MAX_PAUSE_SECONDS)
            return 0
        except (PoolTimeout, *UNAVAILABLE_ERRORS):
            raise
        except Exception as exc:  # a bad payload, a row that changed under us, a bug: this message only
            self._on_error(f"outbox delivery of a {message.kind} message", exc)
            self.failed += 1
            self._instruments.delivered(message.kind, sent=False)
            await self._update(outbox_store.mark_failed, message.id, f"undeliverable: {exc.__class__.__name__}: {exc}"[:500])
            return 1
        self._outage_pause = 1.0
        self.sent += 1
        self._instruments.delivered(message.kind, sent=True)
        await self._update(outbox_store.mark_sent, message.id)
        return 1

    async def _update(self, query, *args) -> None:
        async with self._pool.connection() as conn:
            await query(conn, *args)

    async def _resolve(self, message: outbox_store.OutboxMessage) -> int:
        """A notification's chat is its channel owner's, found at delivery (unknown channel: undeliverable)."""
        async with self._pool.connection() as conn:
            found = await notifications.get(conn, int(message.payload["notification_id"]))
            if found is not None and found.owner_chat_id is not None:
                await outbox_store.resolve_chat(conn, message.id, found.owner_chat_id)
                return found.owner_chat_id
            detail = (f"notification {message.payload['notification_id']} names no known channel"
                      f" ({found.open_channel_id if found else '?'})")
            logger.warning("anomaly unknown_channel: %s", detail)
            await anomalies.record(conn, "unknown_channel", detail)
        # Raised outside the block: leaving it with an exception would roll the anomaly back.
        raise PermanentFailure(f"undeliverable: {detail}")

    async def _send(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        """One delivery function per kind (the store has one builder per kind: ``outbox_store.enqueue_*``)."""
        deliver = {
            "message": self._send_text,
            "notification": self._send_notification,
            "join_link": self._send_join_link,
            "channel_post": self._post_in_channel,
            "remove_member": self._remove_member,
            "edit": self._edit,
        }.get(message.kind)
        if deliver is None:
            raise PermanentFailure(f"undeliverable: unknown outbox kind {message.kind!r}")
        await deliver(bot, message, chat_id)

    async def _send_text(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        payload = message.payload
        renew = payload.get("renew_channel_key")
        markup = _renew_button(bot, renew, await self._texts(payload, chat_id)) if renew is not None else None
        await bot.send_message(chat_id, payload["text"], parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                               reply_markup=markup)

    async def _texts(self, payload: dict[str, Any], chat_id: int) -> Texts:
        """The language the row was queued in, else (queued without one) the recipient's as known now."""
        language = payload.get("language")
        if isinstance(language, str):
            return languages.texts_in(language)
        async with self._pool.connection() as conn:
            return await languages.texts_of(conn, chat_id, self._default_language())

    async def _edit(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        await _edit_or_forget(bot, chat_id, int(message.payload["message_id"]), message.payload["text"])

    async def _send_notification(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        notification_id = int(message.payload["notification_id"])
        async with self._pool.connection() as conn:
            found = await notifications.get(conn, notification_id)
            if found is None:
                raise PermanentFailure(f"notification {notification_id} does not exist")
            owner = await languages.texts_of(conn, chat_id, self._default_language())
        # The channel may have been taken off sale since: its owner still hears of the payment.
        text = owner.owner_notification(found.title or found.open_channel_id, found.payment_type, found.payment_data)
        await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
        async with self._pool.connection() as conn:
            await notifications.mark_delivered(conn, notification_id)

    async def _send_join_link(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        payload = dict(message.payload)
        if "invite_link" not in payload:
            async with self._pool.connection() as conn:
                allowed = await subscriptions.has_access(conn, message.chat_id, int(payload["closed_chat_id"]))
            if not allowed:  # revoked or refunded while this waited: no link for an ended user
                logger.info("outbox %d: the access of user %s ended before their join link went out; not sent",
                            message.id, message.chat_id)
                return
            expires = datetime.now(timezone.utc) + timedelta(hours=int(payload["hours"]))
            name = (payload.get("order_id") or f"user {message.chat_id}")[:32]
            try:
                link = await bot.create_chat_invite_link(
                    payload["closed_chat_id"], name=name, expire_date=expires, creates_join_request=True
                )
            except (BadRequest, Forbidden) as exc:
                await self._lost_rights(int(payload["closed_chat_id"]), str(exc))
                raise
            payload["invite_link"] = link.invite_link
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    await subscriptions.add_join_link(
                        conn, invite_link=link.invite_link, order_id=payload.get("order_id"),
                        user_id=message.chat_id, chat_id=payload["closed_chat_id"], expires_at=expires,
                    )
                    await outbox_store.save_progress(conn, message.id, payload)
        texts = await self._texts(payload, message.chat_id)
        if payload.get("fresh"):
            text = texts.fresh_join_link(payload["title"], payload["invite_link"], int(payload["hours"]))
        else:
            say = {"trial": texts.trial_link, "code": texts.code_link}.get(payload.get("reason"), texts.join_link)
            text = say(payload["title"], payload["invite_link"], int(payload["hours"]), datetime.fromisoformat(payload["ends_at"]))
        await bot.send_message(message.chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True)

    async def _lost_rights(self, closed_chat_id: int, reason: str) -> None:
        """The bot cannot invite in a closed channel: an anomaly, and the owner is told."""
        async with self._pool.connection() as conn:
            async with conn.transaction():
                channel = await channels.find_by_closed_id(conn, closed_chat_id)
                detail = f"cannot create invite links in {closed_chat_id}: {reason}"
                logger.warning("anomaly bot_lost_rights: %s", detail)
                await anomalies.record(conn, "bot_lost_rights", detail)
                if channel is not None:
                    owner = await languages.texts_of(conn, channel.owner_chat_id, self._default_language())
                    await outbox_store.enqueue_message(conn, channel.owner_chat_id, owner.lost_rights(channel.title))

    async def _post_in_channel(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        """Post the subscribe/donate message, or edit the one posted before."""
        # "channel_id" is how rows queued by earlier versions name the channel's key.
        channel_key = int(message.payload.get("channel_key", message.payload.get("channel_id")))
        async with self._pool.connection() as conn:
            channel = await channels.get(conn, channel_key)
            post = await notifications.get_post(conn, channel_key)
        if channel is None or channel.removed:
            raise PermanentFailure(f"channel {channel_key} is no longer on sale")
        texts = languages.texts_in(self._default_language())  # a channel's readers: the default language
        text = texts.channel_post(channel.title, channel.description, channel.lowest_price)
        markup = InlineKeyboardMarkup([[
            InlineKeyboardButton(texts.SUBSCRIBE, url=create_deep_linked_url(bot.username, f"sub_{channel.id}")),
            InlineKeyboardButton(texts.DONATE, url=create_deep_linked_url(bot.username, f"don_{channel.id}")),
        ]])
        try:
            if post is not None and post.chat_id == channel.open_channel_id:
                try:
                    await bot.edit_message_text(text, channel.open_channel_id, post.message_id, parse_mode=ParseMode.HTML, reply_markup=markup)
                except BadRequest as exc:
                    if NOT_MODIFIED in str(exc).lower():
                        return
                    if not any(gone in str(exc).lower() for gone in EDIT_TARGET_GONE):
                        raise
                    logger.info("channel %s: the old post is gone; posting again", channel.id)
                else:
                    async with self._pool.connection() as conn:
                        await notifications.touch_post(conn, channel.id)
                    return
            sent = await bot.send_message(channel.open_channel_id, text, parse_mode=ParseMode.HTML, reply_markup=markup)
        except (BadRequest, Forbidden) as exc:
            async with self._pool.connection() as conn:
                detail = f"channel {channel.id} ({channel.open_channel_id}): {exc}"
                logger.warning("anomaly broadcast_failed: %s", detail)
                await anomalies.record(conn, "broadcast_failed", detail)
            raise
        async with self._pool.connection() as conn:
            await notifications.save_post(conn, channel.id, channel.open_channel_id, sent.message_id)

    async def _remove_member(self, bot: Bot, message: outbox_store.OutboxMessage, chat_id: int) -> None:
        """unbanChatMember without only_if_banned removes a member without banning them; then tell them."""
        payload = dict(message.payload)
        async with self._pool.connection() as conn:
            renewed = await subscriptions.is_active(conn, message.chat_id, int(payload["channel_key"]))
        if renewed:  # they paid again while this waited in the outbox: keep them
            logger.info("outbox %d: user %s renewed before the removal went out; not removed", message.id, message.chat_id)
            return
        # Links first: even if the removal itself fails (the bot lost its rights), nobody gets in with them.
        await self._revoke_links(bot, message.chat_id, int(payload["closed_chat_id"]))
        if not payload.get("removed"):
            await bot.unban_chat_member(payload["closed_chat_id"], message.chat_id)
            payload["removed"] = True
            async with self._pool.connection() as conn:
                await outbox_store.save_progress(conn, message.id, payload)
        texts = await self._texts(payload, message.chat_id)
        await bot.send_message(message.chat_id, texts.removed(payload["title"]), parse_mode=ParseMode.HTML,
                               reply_markup=_renew_button(bot, payload["channel_key"], texts))


    async def _revoke_links(self, bot: Bot, user_id: int, closed_chat_id: int) -> None:
        """Revoke the user's invite links to the channel that could still be used (each marked once done)."""
        async with self._pool.connection() as conn:
            links = await subscriptions.usable_join_links(conn, user_id, closed_chat_id)
        for link in links:
            try:
                await bot.revoke_chat_invite_link(closed_chat_id, link)
            except BadRequest as exc:  # expired or revoked already: nothing left to take back
                logger.info("invite link of user %s in %s not revoked: %s", user_id, closed_chat_id, exc)
            async with self._pool.connection() as conn:
                await subscriptions.mark_revoked(conn, link)
        if links:
            logger.info("revoked %d invite link(s) of user %s in %s", len(links), user_id, closed_chat_id)


async def _edit_or_forget(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    try:
        await bot.edit_message_text(text, chat_id, message_id, parse_mode=ParseMode.HTML)
    except BadRequest as exc:
        lowered = str(exc).lower()
        if NOT_MODIFIED not in lowered and not any(gone in lowered for gone in EDIT_TARGET_GONE):
            raise


def _renew_button(bot: Bot, channel_key: Any, texts: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(texts.RENEW, url=create_deep_linked_url(bot.username, f"sub_{int(channel_key)}"))]])


def _seconds(value: timedelta | int | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)

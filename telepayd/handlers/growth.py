"""The bot's side of growth: /language, a channel's free trial, access codes (/redeem and start=code_X),
and an owner's numbers (/stats).

Mixed into ``Handlers`` (handlers/commands.py): the same pools, gate and helpers."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from .. import codes, languages
from ..report import month_bounds, previous_month
from ..store import channels, reports, subscriptions, trials
from ..store import codes as codes_store
from ..store import outbox as outbox_store
from . import keyboards
from .gate import one_at_a_time
from .payment_check import PerHourLimit
from .speaking import speak, texts

logger = logging.getLogger(__name__)

# Code attempts a user may make in a burst before [bot] wrong_codes_per_hour paces them.
CODE_BURST = 5


class GrowthHandlers:
    """A mixin of ``Handlers`` (``self.deps``, ``self._pool``, ``self._languages``, ``self._show``...)."""

    _code_attempts: PerHourLimit | None = None

    @one_at_a_time
    async def language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/language: a keyboard of the languages, each in its own name."""
        if update.effective_message is not None:
            await update.effective_message.reply_text(texts.LANGUAGE_CHOOSE, reply_markup=keyboards.languages_menu())

    async def _choose_language(self, update: Update, index: int) -> None:
        user = update.effective_user
        if user is None or not 0 <= index < len(languages.AVAILABLE):
            return
        speak(await self._languages.choose(user, languages.AVAILABLE[index]))
        logger.info("user %s chose language %s", user.id, languages.AVAILABLE[index])
        await self._show(update, texts.LANGUAGE_SET, None, edit=True)

    async def _take_trial(self, update: Update, channel_key: int) -> None:
        """The channel's free trial: once per user and channel, ever (the database decides), then access
        like a subscription: a buyer-only join link, a reminder, removal at the end."""
        user = update.effective_user
        if user is None:
            return
        async with self._pool.connection() as conn:
            async with conn.transaction():
                channel = await channels.get(conn, channel_key)
                on_offer = channel is not None and not channel.removed and channel.trial_days > 0
                taken = on_offer and await trials.take(conn, user.id, channel.id, channel.trial_days)
                if taken:
                    ends_at = await self._give_days(conn, user.id, channel, channel.trial_days, reason="trial")
                    owner = await languages.texts_of(conn, channel.owner_chat_id, self._languages.default)
                    await outbox_store.enqueue_message(conn, channel.owner_chat_id,
                                                       owner.owner_trial(channel.title, channel.trial_days, user.id, user.username))
        if not on_offer:
            await self._show_loaded_channel(update, channel, edit=True)
            return
        if not taken:
            logger.info("user %s asked for the trial of channel %s again; refused", user.id, channel_key)
            await self._show(update, texts.TRIAL_TAKEN_BEFORE, keyboards.channel_tiers(channel, self.stars_offered), edit=True)
            return
        logger.info("user %s took the %d-day trial of channel %s (until %s)", user.id, channel.trial_days, channel.id, ends_at)
        self.deps.wake_outbox()
        await self._show(update, texts.LINK_QUEUED, None, edit=True)

    async def _give_days(self, conn, user_id: int, channel: channels.Channel, days: int, *, reason: str) -> datetime:
        """Access not paid for (a trial, a code's days): the subscription extended like a paid one, and the
        buyer-only join link queued in the user's language; ``reason`` picks its message. In the caller's
        transaction; returns the new end."""
        ends_at = await subscriptions.extend(conn, user_id=user_id, channel_id=channel.id, days=days)
        await subscriptions.touch_link(conn, user_id, channel.id)
        await outbox_store.enqueue_join_link(
            conn, user_id, closed_chat_id=channel.closed_channel_id, title=channel.title,
            hours=self.deps.runtime.config.subscriptions.invite_link_hours, ends_at=ends_at, language=texts.language,
            reason=reason)
        return ends_at

    @one_at_a_time
    async def redeem(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/redeem CODE."""
        if context.args:
            await self._redeem(update, " ".join(context.args))
        elif update.effective_message is not None:
            await update.effective_message.reply_text(texts.REDEEM_ASK, parse_mode=ParseMode.HTML)

    async def _redeem(self, update: Update, typed: str) -> None:
        """An access code, from /redeem or a deep link: days of access granted now, or a discount kept for
        the user's next invoice in that channel. Every attempt counts against the user's limit."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        per_hour = self.deps.runtime.config.bot.wrong_codes_per_hour
        if self._code_attempts is None or self._code_attempts.per_hour != per_hour:
            self._code_attempts = PerHourLimit(per_hour, min(CODE_BURST, per_hour))
        if self._code_attempts.acquire(user.id):
            logger.info("user %s tried too many access codes; refused without a look", user.id)
            await message.reply_text(texts.CODE_TOO_MANY)
            return
        code = codes.normalize(typed)
        outcome, found, channel = "unknown", None, None
        if code is not None:
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    found = await codes_store.get(conn, code)
                    channel = await channels.get(conn, found.channel_id) if found is not None else None
                    if channel is not None and channel.removed:
                        outcome = "expired"  # a code of a channel taken off sale grants nothing
                    elif found is not None:
                        outcome, found = await codes_store.redeem(conn, code, user.id)
                    if outcome == "ok" and found.days:
                        await self._give_days(conn, user.id, channel, found.days, reason="code")
        logger.info("user %s redeemed code %s: %s", user.id, code or "(malformed)", outcome)
        if outcome != "ok":
            refusal = {"used_up": texts.CODE_USED_UP, "expired": texts.CODE_EXPIRED, "disabled": texts.CODE_EXPIRED,
                       "already": texts.CODE_ALREADY}.get(outcome, texts.CODE_WRONG)
            await message.reply_text(refusal)
            return
        if found.days:
            self.deps.wake_outbox()
            await message.reply_text(texts.LINK_QUEUED)
            return
        await self._show(update, texts.code_discount(channel.title, found.percent),
                         keyboards.channel_tiers(channel, self.stars_offered), edit=False)

    @one_at_a_time
    async def stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/stats: an owner's numbers, for the channels they own (and only those)."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        async with self._pool.connection() as conn:
            owned = await reports.owned_channels(conn, user.id)
        if not owned:
            await message.reply_text(texts.STATS_NOT_OWNER)
        elif len(owned) == 1:
            await self._show_stats(update, user.id, owned[0][0])
        else:
            await message.reply_text(texts.STATS_CHOOSE, reply_markup=keyboards.owned_channels(owned))

    async def _show_stats(self, update: Update, user_id: int, channel_key: int) -> None:
        start, end = month_bounds(None, datetime.now(timezone.utc))
        last_start, last_end = previous_month(start)
        async with self._pool.connection() as conn:
            channel = await channels.get(conn, channel_key)
            if channel is None or channel.owner_chat_id != user_id:  # a forged or stale button: only their own
                text = texts.STATS_NOT_OWNER
            else:
                this = await reports.channel_figures(conn, channel.id, start, end)
                last = await reports.channel_figures(conn, channel.id, last_start, last_end)
                text = texts.stats(this, last)
        await self._reply(update, text)


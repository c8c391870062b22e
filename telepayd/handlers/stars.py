"""The bot's side of Telegram Stars: invoices in Stars, the pre-checkout answer, successful and refunded
payments, cancelling and resuming a subscription's renewal, /paysupport and /terms.

Mixed into ``Handlers`` (handlers/commands.py): the same pools, gate and helpers. The money rules are in
telepayd/stars.py."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from decimal import Decimal
from html import escape

from psycopg_pool import PoolTimeout
from telegram import LabeledPrice, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from .. import stars
from ..errors import StoreUnavailable
from ..store import channels, orders, subscriptions
from ..store import codes as codes_store
from ..store import stars as stars_store
from ..store.pool import UNAVAILABLE_ERRORS
from . import keyboards
from .speaking import current, speak, texts

logger = logging.getLogger(__name__)

# Telegram waits 10 s for the pre-checkout answer: the database gets at most this much of it.
PRECHECKOUT_DATABASE_SECONDS = 5.0


class StarsHandlers:
    """Handlers for Stars payments (a mixin of ``Handlers``: ``self.deps``, ``self._pool``, ``self._show``...)."""

    def _stars_setting(self) -> bool | None:
        return self.deps.runtime.config.stars.enabled

    def stars_offered(self, tier: channels.Tier) -> bool:
        """A plan is sold in Stars when it has a Stars price and ``[stars] enabled`` is not false."""
        return tier.stars_price is not None and self._stars_setting() is not False

    async def _stars_donations_on(self, conn) -> bool:
        """Donations in Stars: ``[stars] enabled``, or (not set) when any plan has a Stars price."""
        setting = self._stars_setting()
        return setting if setting is not None else await channels.any_stars_price(conn)

    async def pre_checkout(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Let Telegram charge only for an open Stars order of this user at its price (within Telegram's 10 s)."""
        query = update.pre_checkout_query
        if query is None:
            return
        # What this daemon knows at once; read with the order below when it gets that far (one connection).
        speak(self._languages.texts_known(query.from_user))
        refusal: str | None
        if self._stars_setting() is False:
            refusal = texts.PRECHECKOUT_OFF
        elif not orders.looks_like_order_id(query.invoice_payload):
            refusal = texts.PRECHECKOUT_UNKNOWN
        else:
            try:
                async with asyncio.timeout(PRECHECKOUT_DATABASE_SECONDS):
                    async with self._pool.connection() as conn:
                        order = await orders.get(conn, query.invoice_payload)
                        renews = order is not None and await stars_store.renewal_for(
                            conn, query.from_user.id, order.channel_id, running=True) is not None
                        speak(await self._languages.texts_with(conn, query.from_user))
                refusal = stars.precheckout_refusal(order, current(), user_id=query.from_user.id, currency=query.currency,
                                                    total_amount=query.total_amount, renews_already=renews)
            except (TimeoutError, StoreUnavailable, PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
                logger.warning("pre-checkout %s refused: the database did not answer (%s)", query.id, exc.__class__.__name__)
                refusal = texts.PRECHECKOUT_BUSY
            except Exception as exc:  # whatever happens, Telegram gets an answer (else the buyer waits 10 s for nothing)
                self.deps.runtime.metrics.log_error(logger, "a pre-checkout", exc)
                refusal = texts.PRECHECKOUT_BUSY
        if refusal is None:
            logger.info("pre-checkout of order %s by user %s: ok (%d %s)", query.invoice_payload, query.from_user.id,
                        query.total_amount, query.currency)
        else:
            logger.info("pre-checkout of %r by user %s refused: %s", query.invoice_payload[:64], query.from_user.id, refusal)
        try:
            await query.answer(ok=refusal is None, error_message=refusal)
        except TelegramError as exc:
            logger.warning("could not answer pre-checkout %s: %s", query.id, exc)

    async def successful_payment(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A Stars charge: recorded once, checked against its order, granted by the money rules."""
        message = update.effective_message
        paid = message.successful_payment if message is not None else None
        if paid is None or message.from_user is None:
            return
        speak(await self._languages.texts_for(message.from_user))
        payment = stars.StarsPayment(
            charge_id=stars.storable(paid.telegram_payment_charge_id, stars.MAX_CHARGE_ID),
            payload=stars.storable(paid.invoice_payload, 128), user_id=message.from_user.id,
            currency=stars.storable(paid.currency, 16), amount=paid.total_amount, is_recurring=bool(paid.is_recurring),
            is_first_recurring=paid.is_first_recurring, subscription_until=paid.subscription_expiration_date,
            username=message.from_user.username,
        )
        body = stars.storable(json.dumps(paid.to_dict(), sort_keys=True, default=str), 10_000)
        try:
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    outcome = await stars.apply_charge(conn, payment, body, self.deps.runtime.config, source="update")
        except (StoreUnavailable, PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
            # Telegram has charged: the Stars sweep finds this payment in getStarTransactions and grants it.
            logger.warning("Stars charge %s (order %s, user %s) could not be recorded now (%s); the Stars sweep will apply it",
                           payment.charge_id, payment.payload[:64], payment.user_id, exc.__class__.__name__)
            await message.reply_text(texts.STARS_PAYMENT_DELAYED)
            return
        self.deps.runtime.metrics.instruments.stars_payment(outcome)
        logger.info("Stars charge %s (order %s, user %s, %d %s%s): %s", payment.charge_id, payment.payload[:64], payment.user_id,
                    payment.amount, payment.currency, ", recurring" if payment.is_recurring else "", outcome)
        self.deps.wake_outbox()
        if outcome in stars.REFUSALS:
            await message.reply_text(texts.STARS_PAYMENT_REFUSED)

    async def refunded_payment(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Telegram reports a refunded Stars payment: the refund rule, once."""
        message = update.effective_message
        refunded = message.refunded_payment if message is not None else None
        if refunded is None:
            return
        charge_id = stars.storable(refunded.telegram_payment_charge_id, stars.MAX_CHARGE_ID)
        try:
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    outcome = await stars.apply_refund(
                        conn, charge_id, source="update", default_language=self.deps.runtime.config.bot.default_language)
        except (StoreUnavailable, PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
            logger.warning("refund of Stars charge %s could not be recorded now (%s); the Stars sweep will apply it",
                           charge_id[:64], exc.__class__.__name__)
            return
        self.deps.runtime.metrics.instruments.stars_payment(outcome)
        logger.info("refunded Stars charge %s: %s", refunded.telegram_payment_charge_id[:64], outcome)
        self.deps.wake_outbox()

    async def paysupport(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(escape(self.deps.runtime.config.stars.support_text), parse_mode=ParseMode.HTML)

    async def terms(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(escape(self.deps.runtime.config.stars.terms_text), parse_mode=ParseMode.HTML)

    async def _choose_rail(self, update: Update, channel: channels.Channel, tier: channels.Tier) -> None:
        await self._show(update, texts.PAY_CHOOSE, keyboards.choose_rail(channel.id, tier), edit=True)

    async def _buy_stars(self, update: Update, channel_key: int, tier_id: int) -> None:
        """A Stars order for a plan, then its invoice link (a subscription for a 30-day plan)."""
        user = update.effective_user
        if user is None:
            return
        order = None
        async with self._pool.connection() as conn:
            channel, tier = await self._channel_and_tier(conn, channel_key, tier_id)
            renewing_already = False
            if tier is not None and self.stars_offered(tier):
                async with conn.transaction():
                    renewing_already = tier.days == stars.SUBSCRIPTION_DAYS and await stars_store.renewal_for(
                        conn, user.id, channel.id, running=True) is not None
                    # A discount makes the order a one-off invoice (stars.subscription_invoice): no second
                    # subscription then, and the pre-checkout still refuses one that would renew.
                    if renewing_already and await codes_store.pending_discount(
                            conn, user_id=user.id, channel_id=channel.id, tier_position=tier.position) is not None:
                        renewing_already = False
                    if not renewing_already:
                        order = await self._plan_order(conn, user, channel, tier, "stars")
        if channel is None or channel.removed:
            await self._show(update, texts.CHANNEL_GONE, None, edit=True)
        elif tier is None or not self.stars_offered(tier):
            await self._reply(update, texts.STALE_BUTTON)
            await self._show_loaded_channel(update, channel, edit=False)
        elif renewing_already:
            await self._show(update, texts.STARS_RENEWS_ALREADY, keyboards.channel_tiers(channel, self.stars_offered), edit=True)
        elif order is None:
            await self._show(update, texts.TOO_MANY_INVOICES, keyboards.channel_tiers(channel, self.stars_offered), edit=True)
        else:
            renews = stars.subscription_invoice(order)
            link = order.invoice_url or await self._stars_link(update, order, channel.title, renews)
            if link is None:
                await self._show(update, texts.STARS_INVOICE_FAILED, keyboards.channel_tiers(channel, self.stars_offered), edit=True)
                return
            text = texts.stars_invoice_ready(channel.title, int(order.price), tier.days, renews)
            if order.list_price is not None:
                text += "\n" + texts.discount_applied(order.list_price, order.price, order.currency)
            await self._show(update, text,
                             keyboards.pay_stars(link, int(order.price)), edit=True)

    async def _stars_link(self, update: Update, order: orders.Order, title: str, renews: bool) -> str | None:
        """``createInvoiceLink`` in XTR for ``order`` (payload: the order id), stored with it; None when
        Telegram refused or failed (the order is kept: pressing again reuses it)."""
        extra = {"subscription_period": stars.SUBSCRIPTION_PERIOD_SECONDS} if renews else {}
        name = texts.stars_invoice_title(title, order.days)
        try:
            link = await update.get_bot().create_invoice_link(
                title=name, description=texts.stars_invoice_description(title, order.days, renews), payload=order.order_id,
                currency=stars.CURRENCY, prices=[LabeledPrice(name, int(order.price))], **extra,
            )
        except TelegramError as exc:
            logger.warning("Stars invoice for order %s failed: %s", order.order_id, exc)
            return None
        async with self._pool.connection() as conn:
            await orders.set_invoice_link(conn, order.order_id, link)
        return link

    async def _donate(self, update: Update, channel_key: int, cents: int, rail: str) -> None:
        """A donation of ``cents`` (chosen on the keypad) paid with crypto or Stars: order, then invoice."""
        user = update.effective_user
        if user is None:
            return
        limits = self.deps.runtime.config.donations
        usd = Decimal(cents) / 100
        if not limits.min_amount <= usd <= limits.max_amount:
            await self._reply(update, texts.keypad_refused(usd, limits.min_amount, limits.max_amount))
            return
        price = usd
        if rail == "stars":
            count = stars.stars_for_usd(usd, self.deps.runtime.config.stars.usd_per_star)
            if count is None:
                await self._reply(update, texts.STARS_DONATION_OUT_OF_RANGE)
                return
            price = Decimal(count)
        order = None
        refusal = None
        async with self._pool.connection() as conn:
            channel = await channels.get(conn, channel_key)
            if channel is None or channel.removed:
                refusal = texts.CHANNEL_GONE
            elif rail == "stars" and not await self._stars_donations_on(conn):
                refusal = texts.STARS_OFF
            else:
                async with conn.transaction():
                    order, refusal = await self._donation_order(conn, user, channel, price, rail)
        if refusal is not None or order is None or channel is None:
            await self._show(update, refusal or texts.BUSY, None, edit=True)
        elif rail == "stars":
            link = order.invoice_url or await self._stars_link(update, order, channel.title, renews=False)
            if link is None:
                await self._show(update, texts.STARS_INVOICE_FAILED, None, edit=True)
                return
            await self._show(update, texts.stars_donation_invoice(channel.title, usd, int(order.price)),
                             keyboards.pay_stars(link, int(order.price)), edit=True)
        else:
            await self._invoice_donation(update, order, channel)

    async def _change_renewal(self, update: Update, channel_key: int, cancel: bool) -> None:
        """Cancel or resume the buyer's own Stars subscription for a channel (``editUserStarSubscription``);
        access runs to the end already paid either way."""
        user = update.effective_user
        if user is None:
            return
        async with self._pool.connection() as conn:
            renewal = await stars_store.renewal_for(conn, user.id, channel_key)
            now = datetime.now(timezone.utc)
            subs = [s for s in await subscriptions.for_user(conn, user.id) if s.channel_id == channel_key and s.ends_at > now]
        if renewal is None or not subs:
            await self._reply(update, texts.RENEWAL_NONE)
            return
        try:
            await update.get_bot().edit_user_star_subscription(user.id, renewal.charge_id, is_canceled=cancel)
        except TelegramError as exc:
            logger.warning("editUserStarSubscription for user %s, channel %s failed: %s", user.id, channel_key, exc)
            await self._reply(update, texts.RENEWAL_FAILED)
            return
        async with self._pool.connection() as conn:
            await stars_store.set_renewal_canceled(conn, user_id=user.id, channel_id=channel_key, canceled=cancel)
        logger.info("user %s %s the Stars renewal of channel %s", user.id, "cancelled" if cancel else "resumed", channel_key)
        await self._reply(update, texts.renewal_changed(subs[0].title, cancel, subs[0].ends_at))


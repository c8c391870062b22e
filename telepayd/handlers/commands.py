"""The bot's conversation: /start, /help, /status, buttons, payment checks, join requests. State lives in
PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from psycopg_pool import PoolTimeout
from telegram import ForceReply, Update
from telegram.constants import ParseMode
from telegram.error import NetworkError, TelegramError
from telegram.helpers import create_deep_linked_url
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatJoinRequestHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from ..database import Database
from ..errors import StoreUnavailable
from ..numbers import MAX_ID, ascii_int
from ..nowpayments import NowPaymentsClient, PaymentProviderError
from ..runtime import Runtime
from .. import payments as money_rules
from ..store import anomalies, channels, keypads, orders, subscriptions, trials
from ..store import codes as codes_store
from ..store import outbox as outbox_store
from ..store.pool import UNAVAILABLE_ERRORS
from .. import languages
from .. import stars as stars_rules
from .speaking import UserLanguages, texts
from ..reconcile import INVOICE_LIFETIME
from . import keyboards, keypad
from .payment_check import PaymentChecks, payment_id_in
from .callbacks import decode
from .gate import UserGate, one_at_a_time
from .growth import GrowthHandlers
from .stars import StarsHandlers

logger = logging.getLogger(__name__)

LINK_INTERVAL = timedelta(minutes=10)
# Updates of one user queued behind the one being handled; more are turned away (a button press with a toast).
MAX_WAITING_UPDATES_PER_USER = 4


@dataclass
class BotDeps:
    """What the handlers need from the daemon."""

    runtime: Runtime
    database: Database
    nowpayments: NowPaymentsClient
    wake_outbox: Callable[[], None]


class Handlers(StarsHandlers, GrowthHandlers):
    """Small verbs, one per thing a user can do; every one answers something short and helpful.

    Database rule: a handler takes one connection of the bot's pool at a time, and gives it back before it
    calls Telegram or NowPayments, so a slow Telegram or a flood of button presses cannot hold connections."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps
        self._gate = UserGate(waiting=MAX_WAITING_UPDATES_PER_USER)
        self._payment_checks = PaymentChecks(deps)
        self._languages = UserLanguages(deps.database.bot_pool, lambda: deps.runtime.config.bot.default_language)

    def register(self, application: Application) -> None:
        application.add_handler(CommandHandler("start", self.start))
        application.add_handler(CommandHandler("help", self.help))
        application.add_handler(CommandHandler("status", self.status))
        application.add_handler(CommandHandler("whoami", self.whoami))
        application.add_handler(CommandHandler("paysupport", self.paysupport))
        application.add_handler(CommandHandler("terms", self.terms))
        application.add_handler(CommandHandler("language", self.language))
        application.add_handler(CommandHandler("redeem", self.redeem))
        application.add_handler(CommandHandler("stats", self.stats))
        # Money first, and never turned away by the per-user gate (Telegram has charged already).
        application.add_handler(PreCheckoutQueryHandler(self.pre_checkout))
        application.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, self.successful_payment))
        application.add_handler(MessageHandler(filters.StatusUpdate.REFUNDED_PAYMENT, self.refunded_payment))
        application.add_handler(CallbackQueryHandler(self.press_button))
        application.add_handler(ChatJoinRequestHandler(self.join_request))
        application.add_handler(ChatMemberHandler(self.bot_rights_changed, ChatMemberHandler.MY_CHAT_MEMBER))
        application.add_handler(MessageHandler(filters.ChatType.PRIVATE & ~filters.COMMAND, self.other_message))
        application.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.COMMAND, self.other_message))
        application.add_error_handler(self.on_error)

    @property
    def _pool(self):
        return self.deps.database.bot_pool

    @one_at_a_time
    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """List the channels, or open one directly from a deep link (start=sub_<key>)."""
        message = update.effective_message
        if message is None:
            return
        payload = context.args[0] if context.args else ""
        kind, _, number = payload.partition("_")
        channel_key = ascii_int(number)
        if channel_key is not None and channel_key > MAX_ID:
            channel_key = None
        if kind == "sub" and channel_key is not None:
            await self._show_channel(update, channel_key, edit=False)
            return
        if kind == "don" and channel_key is not None:
            await self._open_keypad(update, channel_key)
            return
        if kind == "code" and number:
            await self._redeem(update, number)
            return
        if payload:
            logger.info("unknown /start payload %r from user %s", payload[:64], update.effective_user.id if update.effective_user else "?")
        await self._show_list(update, page=0, edit=False)

    @one_at_a_time
    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """How buying works."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.HELP, parse_mode=ParseMode.HTML)

    @one_at_a_time
    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The user's subscriptions (a fresh join link button on the active ones) and open invoices (an "I
        paid" button); ``/status PAYMENT_ID`` checks that payment with NowPayments."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if context.args:
            await self._check_payment(update, " ".join(context.args))
            return
        async with self._pool.connection() as conn:
            subs = await subscriptions.for_user(conn, user.id)
            unpaid = await orders.open_for_user(conn, user.id, within=INVOICE_LIFETIME)
            titles = {key: channel.title for key in {o.channel_id for o in unpaid}
                      if (channel := await channels.get(conn, key)) is not None}
        if not subs and not unpaid:
            await message.reply_text(texts.STATUS_NONE)
            return
        now = datetime.now(timezone.utc)
        lines = [texts.status_line(s.title, s.ends_at, s.ends_at > now)
                 + (texts.renewal_status(s.renewal_canceled) if s.renewal_charge_id and s.ends_at > now else "") for s in subs]
        if unpaid:
            lines += [texts.open_order_line(titles.get(o.channel_id, "?"), o.price, o.created_at) for o in unpaid]
        active = [s for s in subs if s.ends_at > now]
        await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML,
                                 reply_markup=keyboards.status_links(active, open_orders=bool(unpaid)))

    async def _check_payment(self, update: Update, typed: str) -> None:
        """A payment id the buyer sent: checked with NowPayments, applied by the money rules, answered."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        payment_id = payment_id_in(typed)
        if payment_id is None:
            await message.reply_text(texts.PAID_ASK, parse_mode=ParseMode.HTML)
            return
        await message.reply_text(await self._payment_checks.answer(user.id, payment_id), parse_mode=ParseMode.HTML)

    @one_at_a_time
    async def press_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Route a button press; unknown or stale data gets the current channel list."""
        query = update.callback_query
        if query is None:
            return
        button = decode(query.data)
        if button is not None and button.action == "kp":
            await self._press_key(update, button.args[0])  # the gate keeps one user's key presses in order
            return
        await query.answer()
        if button is None:
            logger.info("unknown callback data %r from user %s", (query.data or "")[:64], query.from_user.id)
            await self._reply(update, texts.STALE_BUTTON)
            await self._show_list(update, page=0, edit=False)
            return
        if button.action == "list":
            await self._show_list(update, page=button.args[0], edit=True)
        elif button.action == "ch":
            await self._show_channel(update, button.args[0], edit=True)
        elif button.action == "tier":
            await self._buy(update, *button.args)
        elif button.action == "np":
            await self._buy(update, *button.args, rail_chosen=True)
        elif button.action == "xtr":
            await self._buy_stars(update, *button.args)
        elif button.action in ("dnp", "dxtr"):
            await self._donate(update, *button.args, rail="stars" if button.action == "dxtr" else "nowpayments")
        elif button.action in ("rnoff", "rnon"):
            await self._change_renewal(update, button.args[0], cancel=button.action == "rnoff")
        elif button.action == "link":
            await self._new_link(update, button.args[0])
        elif button.action == "trial":
            await self._take_trial(update, button.args[0])
        elif button.action == "lang":
            await self._choose_language(update, button.args[0])
        elif button.action == "stats":
            await self._show_stats(update, query.from_user.id, button.args[0])
        elif button.action == "paid":
            await self._reply(update, texts.PAID_ASK, reply_markup=ForceReply(input_field_placeholder="5077125123"))

    @one_at_a_time
    async def whoami(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The user's own Telegram id (an owner's ``--owner``)."""
        message, user = update.effective_message, update.effective_user
        if message is not None and user is not None:
            await message.reply_text(texts.whoami(user.id), parse_mode=ParseMode.HTML)

    @one_at_a_time
    async def other_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A post forwarded from a channel gets that channel's id; other text (or an unknown command) a hint."""
        message = update.effective_message
        if message is None:
            return
        origin = message.forward_origin
        chat = getattr(origin, "chat", None) or getattr(origin, "sender_chat", None)
        if chat is not None:
            await message.reply_text(texts.forwarded_from(chat.title or str(chat.id), chat.id), parse_mode=ParseMode.HTML)
            return
        if payment_id_in(message.text) is not None:  # a payment id, asked for by the "I paid" button
            await self._check_payment(update, message.text or "")
            return
        await message.reply_text(texts.UNKNOWN_INPUT)

    @one_at_a_time
    async def join_request(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Approve the buyer on their own link while their access runs; decline anyone else (a leaked link is
        useless) and the buyer once their access has ended or was revoked (an old link is useless too)."""
        request = update.chat_join_request
        if request is None:
            return
        user_id, chat_id = request.from_user.id, request.chat.id
        link = request.invite_link.invite_link if request.invite_link else None
        async with self._pool.connection() as conn:
            async with conn.transaction():
                known = await subscriptions.get_join_link(conn, link) if link else None
                now = datetime.now(timezone.utc)
                own_link = known is not None and known.user_id == user_id and known.chat_id == chat_id
                usable = own_link and known.expires_at > now and known.revoked_at is None
                allowed = usable and await subscriptions.has_access(conn, user_id, chat_id)
                if allowed:
                    await subscriptions.mark_approved(conn, link)
                elif own_link:
                    logger.info("declined user %s in %s: their link or their access has ended (order %s)",
                                user_id, chat_id, known.order_id)
                else:
                    detail = (
                        f"user {user_id} asked to join {chat_id} with "
                        + (f"the link of order {known.order_id} (bought by user {known.user_id})" if known else f"an unknown link {link!r}")
                    )
                    logger.warning("anomaly intruder_join_request: %s; declined", detail)
                    await anomalies.record(conn, "intruder_join_request", detail, order_id=known.order_id if known else None)
        try:
            if allowed:
                await request.approve()
                logger.info("approved user %s into %s", user_id, chat_id)
            else:
                await request.decline()
        except TelegramError as exc:
            logger.warning("could not answer the join request of user %s in %s: %s", user_id, chat_id, exc)
        if allowed:
            await self._remove_if_access_ended(user_id, chat_id)

    async def _remove_if_access_ended(self, user_id: int, chat_id: int) -> None:
        """After an approval: a revoke or a refund that landed between the check and the approval would find
        nobody to remove (the user was not in yet), so look again and remove them now if their access ended."""
        async with self._pool.connection() as conn:
            async with conn.transaction():
                if await subscriptions.has_access(conn, user_id, chat_id):
                    return
                channel = await channels.find_by_closed_id(conn, chat_id)
                if channel is None:
                    return
                await outbox_store.enqueue_removal(conn, user_id, closed_chat_id=chat_id, title=channel.title,
                                                   channel_key=channel.id)
        logger.warning("user %s was approved into %s as their access ended; removal queued", user_id, chat_id)
        self.deps.wake_outbox()

    async def bot_rights_changed(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot's own membership changed: losing the right to invite in a closed channel is an anomaly."""
        change = update.my_chat_member
        if change is None:
            return
        member = change.new_chat_member
        can_invite = member.status == "creator" or (member.status == "administrator" and bool(getattr(member, "can_invite_users", False)))
        if can_invite:
            logger.info("the bot is %s in %r (id %s)", member.status, change.chat.title, change.chat.id)
            return
        async with self._pool.connection() as conn:
            async with conn.transaction():
                channel = await channels.find_by_closed_id(conn, change.chat.id)
                if channel is None:
                    return
                detail = f"the bot is now {member.status} without invite rights in {change.chat.id} (channel {channel.id})"
                logger.warning("anomaly bot_lost_rights: %s", detail)
                await anomalies.record(conn, "bot_lost_rights", detail)
                owner = await languages.texts_of(conn, channel.owner_chat_id, self._languages.default)
                await outbox_store.enqueue_message(conn, channel.owner_chat_id, owner.lost_rights(channel.title))
        self.deps.wake_outbox()

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the error with its traceback; tell the user something short, never the exception."""
        error = context.error
        if isinstance(error, (StoreUnavailable, PoolTimeout, *UNAVAILABLE_ERRORS)):
            logger.warning("database unavailable while handling an update: %s", error)
        elif isinstance(error, NetworkError):  # Telegram down or slow: not a bug (counted in /metrics)
            logger.warning("Telegram unreachable while handling an update: %s", error)
        elif error is not None:
            self.deps.runtime.metrics.log_error(logger, "a Telegram update", error)
        if isinstance(update, Update) and update.effective_chat and update.effective_chat.type == "private":
            try:
                await context.bot.send_message(update.effective_chat.id, texts.BUSY)
            except TelegramError:
                pass

    async def _reply(self, update: Update, text: str, **kwargs) -> None:
        chat = update.effective_chat
        if chat is not None:
            await update.get_bot().send_message(chat.id, text, parse_mode=ParseMode.HTML, **kwargs)

    async def _show(self, update: Update, text: str, markup, *, edit: bool) -> None:
        query = update.callback_query
        if edit and query is not None and query.message is not None:
            try:
                await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
                return
            except TelegramError as exc:
                logger.info("could not edit the message (%s); sending a new one", exc)
        await self._reply(update, text, reply_markup=markup)

    async def _show_list(self, update: Update, *, page: int, edit: bool) -> None:
        async with self._pool.connection() as conn:
            shown, page, more = await channels.on_sale_page(conn, page, keyboards.PAGE_SIZE)
        if not shown:
            await self._show(update, texts.NO_CHANNELS, None, edit=edit)
            return
        await self._show(update, texts.START, keyboards.channel_list(shown, page, more), edit=edit)

    async def _show_channel(self, update: Update, channel_key: int, *, edit: bool) -> None:
        user = update.effective_user
        async with self._pool.connection() as conn:
            channel = await channels.get(conn, channel_key)
            trial = (channel is not None and channel.trial_days > 0 and user is not None
                     and await trials.offered(conn, user.id, channel.id))
        await self._show_loaded_channel(update, channel, edit=edit, trial=trial)

    async def _show_loaded_channel(self, update: Update, channel: channels.Channel | None, *, edit: bool,
                                   trial: bool = False) -> None:
        """The channel's plans; with ``trial``, its free trial (for a user who may still take it) first."""
        if channel is None or channel.removed or not channel.tiers:
            await self._show(update, texts.CHANNEL_GONE, None, edit=edit)
            return
        await self._show(update, texts.channel_details(channel.title, channel.description),
                         keyboards.channel_tiers(channel, self.stars_offered, trial=trial), edit=edit)

    async def _buy(self, update: Update, channel_key: int, tier_id: int, *, rail_chosen: bool = False) -> None:
        """Create (or reuse) the order, then the NowPayments invoice, and show the Pay button; for a plan also
        sold in Stars, first ask how to pay (unless the buyer chose crypto already)."""
        user = update.effective_user
        if user is None:
            return
        order = None
        async with self._pool.connection() as conn:
            channel, tier = await self._channel_and_tier(conn, channel_key, tier_id)
            if tier is not None and (rail_chosen or not self.stars_offered(tier)):  # else: crypto or Stars first
                async with conn.transaction():
                    order = await self._plan_order(conn, user, channel, tier, "nowpayments")
        # The connection is back in the pool: from here on, Telegram and NowPayments calls only.
        if channel is None or channel.removed:
            await self._show(update, texts.CHANNEL_GONE, None, edit=True)
        elif tier is None:
            await self._reply(update, texts.STALE_BUTTON)
            await self._show_loaded_channel(update, channel, edit=False)
        elif self.stars_offered(tier) and not rail_chosen:
            await self._choose_rail(update, channel, tier)
        elif order is None:
            await self._show(update, texts.TOO_MANY_INVOICES, keyboards.channel_tiers(channel, self.stars_offered), edit=True)
        else:
            url = order.invoice_url or await self._invoice_url(update, order, f"{channel.title}, {texts.day_count(tier.days)}")
            if url is None:
                await self._show(update, texts.INVOICE_FAILED, keyboards.channel_tiers(channel, self.stars_offered), edit=True)
                return
            text = texts.invoice_ready(channel.title, order.price, tier.days)
            if order.list_price is not None:
                text += "\n" + texts.discount_applied(order.list_price, order.price, order.currency)
            await self._show(update, text, keyboards.pay(url, order.price), edit=True)

    @staticmethod
    async def _channel_and_tier(conn, channel_key: int, tier_id: int) -> tuple[channels.Channel | None, channels.Tier | None]:
        """The channel, and the plan of it a button names when the channel is on sale and has it (else None)."""
        channel = await channels.get(conn, channel_key)
        if channel is None or channel.removed:
            return channel, None
        return channel, next((t for t in channel.tiers if t.id == tier_id), None)

    async def _too_many_invoices(self, conn, user_id: int) -> bool:
        """The per-user cap on new orders (each gets a NowPayments invoice): ``[payments] max_invoices_per_user_hour``."""
        cap = self.deps.runtime.config.payments.max_invoices_per_user_hour
        if await orders.created_last_hour(conn, user_id) < cap:
            return False
        logger.info("user %s reached %d new invoices in an hour; refused another", user_id, cap)
        return True

    async def _open_keypad(self, update: Update, channel_key: int) -> None:
        """A donation keypad for a channel, in one message that each key press edits."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        async with self._pool.connection() as conn:
            channel = await channels.get(conn, channel_key)
        if channel is None or channel.removed:
            await message.reply_text(texts.CHANNEL_GONE)
            return
        limits = self.deps.runtime.config.donations
        sent = await message.reply_text(
            texts.keypad(channel.title, "", limits.min_amount, limits.max_amount),
            parse_mode=ParseMode.HTML, reply_markup=keyboards.donation_keypad(),
        )
        async with self._pool.connection() as conn:
            await keypads.start(conn, user_id=user.id, channel_id=channel.id, chat_id=sent.chat_id, message_id=sent.message_id)

    async def _press_key(self, update: Update, key: int) -> None:
        """One keypad key: edit the amount, confirm (order + invoice), or cancel. State lives in PostgreSQL."""
        query = update.callback_query
        assert query is not None
        user = query.from_user
        limits = self.deps.runtime.config.donations
        now = datetime.now(timezone.utc)
        toast: str | None = None
        edit: tuple[str, object] | None = None
        order = channel = None
        async with self._pool.connection() as conn:
            async with conn.transaction():
                session = await keypads.get_for_update(conn, user.id)
                message_id = query.message.message_id if query.message else None
                if session is None or session.message_id != message_id:
                    toast = texts.KEYPAD_STALE
                elif (now - session.updated_at).total_seconds() > limits.keypad_timeout_seconds:
                    await keypads.finish(conn, user.id)
                    edit = (texts.KEYPAD_EXPIRED, None)
                elif key == keypad.CANCEL:
                    await keypads.finish(conn, user.id)
                    edit = (texts.KEYPAD_CANCELLED, None)
                else:
                    channel = await channels.get(conn, session.channel_id)
                    if channel is None or channel.removed:
                        await keypads.finish(conn, user.id)
                        edit = (texts.CHANNEL_GONE, None)
                    elif key == keypad.CONFIRM:
                        amount = keypad.value(session.amount)
                        if amount is None or not keypad.acceptable(amount, limits.min_amount, limits.max_amount):
                            toast = texts.keypad_refused(amount or 0, limits.min_amount, limits.max_amount)
                        elif (in_stars := await self._donation_in_stars(conn, amount)) is not None:
                            await keypads.finish(conn, user.id)  # crypto or Stars: the buttons carry the amount
                            edit = (texts.donation_choose(channel.title, amount),
                                    keyboards.choose_donation_rail(channel.id, int(amount * 100), amount, in_stars))
                        else:
                            order, toast = await self._donation_order(conn, user, channel, amount, "nowpayments")
                            if order is not None:
                                await keypads.finish(conn, user.id)
                    else:
                        typed = keypad.press(session.amount, key)
                        if typed == session.amount:
                            toast = texts.KEYPAD_LIMIT if key not in (keypad.BACKSPACE, keypad.CLEAR) else None
                        else:
                            await keypads.set_amount(conn, user.id, typed)
                            edit = (texts.keypad(channel.title, typed, limits.min_amount, limits.max_amount), keyboards.donation_keypad())
        # The edit first, then the answer: the key's spinner stops once the amount shown is the new one
        # (and whoever waits for the answer, a person or a test, sees the result of the press).
        if edit is not None:
            await self._show(update, edit[0], edit[1], edit=True)
        await query.answer(toast)
        if order is not None and channel is not None:
            await self._invoice_donation(update, order, channel)

    async def _plan_order(self, conn, user, channel: channels.Channel, tier: channels.Tier, rail: str) -> orders.Order | None:
        """The open order of the last hour for this plan and rail (its invoice is reused), or a new one at the
        plan's price on that rail (USD, or whole Stars); None when the user opened too many invoices. In the
        caller's transaction."""
        # A discount the user redeemed for this channel (and plan) goes to the next new order, once, when it
        # lowers the price at all (at the provider's minimum already, it is kept for another plan or rail).
        list_price = Decimal(tier.stars_price) if rail == "stars" else tier.price
        discount = await codes_store.pending_discount(conn, user_id=user.id, channel_id=channel.id, tier_position=tier.position)
        if discount is not None and money_rules.discounted(list_price, discount.percent, rail) >= list_price:
            discount = None
        order = None if discount else await orders.find_reusable(conn, user_id=user.id, tier_id=tier.id, rail=rail)
        if order is not None or await self._too_many_invoices(conn, user.id):
            return order
        price = money_rules.discounted(list_price, discount.percent, rail) if discount else list_price
        order = await orders.create(conn, order_id=orders.new_order_id(), kind="subscription", user_id=user.id,
                                    username=user.username, channel_id=channel.id, tier_id=tier.id, days=tier.days,
                                    price=price, rail=rail, list_price=list_price if discount else None,
                                    code=discount.code if discount else None)
        if discount:
            await codes_store.attach(conn, code=discount.code, user_id=user.id, order_id=order.order_id)
        logger.info("order %s created: user %s, channel %s, %s %s for %s days%s", order.order_id, user.id, channel.id, price,
                    order.currency, tier.days, f" (code {discount.code}: {discount.percent}% off {list_price})" if discount else "")
        return order

    async def _donation_order(self, conn, user, channel: channels.Channel, price, rail: str) -> tuple[orders.Order | None, str | None]:
        """The open donation order of the last hour for this amount and rail (its invoice is reused), or a new
        one; (None, why not) when the user opened too many invoices. In the caller's transaction."""
        order = await orders.find_reusable_donation(conn, user_id=user.id, channel_id=channel.id, price=price, rail=rail)
        if order is not None:
            return order, None
        if await self._too_many_invoices(conn, user.id):
            return None, texts.TOO_MANY_INVOICES
        order = await orders.create(conn, order_id=orders.new_order_id(), kind="donation", user_id=user.id, username=user.username,
                                    channel_id=channel.id, tier_id=None, days=None, price=price, rail=rail)
        logger.info("order %s created: donation of %s %s by user %s to channel %s", order.order_id, price, order.currency,
                    user.id, channel.id)
        return order, None

    async def _donation_in_stars(self, conn, amount) -> int | None:
        """The Stars price of a donation of ``amount`` USD when donations may be paid in Stars, else None."""
        if not await self._stars_donations_on(conn):
            return None
        return stars_rules.stars_for_usd(amount, self.deps.runtime.config.stars.usd_per_star)

    async def _invoice_donation(self, update: Update, order: orders.Order, channel: channels.Channel) -> None:
        url = order.invoice_url or await self._invoice_url(update, order, texts.stars_invoice_description(channel.title, None, False))
        if url is None:
            await self._show(update, texts.INVOICE_FAILED, None, edit=True)
            return
        await self._show(update, texts.donation_invoice(channel.title, order.price), keyboards.pay(url, order.price), edit=True)

    async def _invoice_url(self, update: Update, order: orders.Order, description: str) -> str | None:
        """Create the NowPayments invoice for ``order`` and store it; None when the provider failed
        (the order is kept, so pressing again reuses it)."""
        try:
            invoice = await self.deps.nowpayments.create_invoice(
                order_id=order.order_id, price=order.price, currency=order.currency,
                description=description, success_url=create_deep_linked_url(update.get_bot().username),
            )
        except PaymentProviderError as exc:
            logger.warning("invoice for order %s failed: %s", order.order_id, exc)
            return None
        async with self._pool.connection() as conn:
            await orders.set_invoice(conn, order.order_id, invoice.id, invoice.url)
        return invoice.url

    async def _new_link(self, update: Update, channel_key: int) -> None:
        """A fresh personal join link for an active subscription, at most once per 10 minutes."""
        user = update.effective_user
        if user is None:
            return
        now = datetime.now(timezone.utc)
        markup = None
        async with self._pool.connection() as conn:
            async with conn.transaction():
                sub = await subscriptions.get_for_update(conn, user.id, channel_key)
                if sub is None or sub.ends_at <= now:
                    text = texts.LINK_NOT_ACTIVE
                    markup = keyboards.renew(channel_key)
                elif sub.last_link_at is not None and now - sub.last_link_at < LINK_INTERVAL:
                    wait = LINK_INTERVAL - (now - sub.last_link_at)
                    text = texts.link_too_soon(max(1, int(wait.total_seconds() // 60) + 1))
                else:
                    await subscriptions.touch_link(conn, user.id, channel_key)
                    await outbox_store.enqueue_join_link(
                        conn, user.id, closed_chat_id=sub.closed_channel_id, title=sub.title,
                        hours=self.deps.runtime.config.subscriptions.invite_link_hours, language=texts.language,
                    )
                    text = texts.LINK_QUEUED
        self.deps.wake_outbox()
        await self._reply(update, text, reply_markup=markup)

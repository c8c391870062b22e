"""The operator's commands (``telepayd channels|orders|subscriptions|set-webhook``), each printing plain lines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg import AsyncConnection

from . import reconcile
from . import stars as stars_rules
from .config import Config
from .nowpayments import NowPaymentsClient
from .errors import TelepaydError
from . import texts
from .numbers import ascii_int
from .store import anomalies, channels, notifications, orders, payments, subscriptions
from .store import outbox as outbox_store
from .store import schema, sweeps
from .store import stars as stars_store
from .store.pool import UNAVAILABLE_ERRORS, connect

MAX_TIERS = 3
_PRICE = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")
# Telegram gives supergroups and channels ids of -100 followed by digits (-1001234567890).
_CHANNEL_ID = re.compile(r"-100[0-9]{1,12}")
# getMe for the deep links of 'channels add': PTB's own timeouts are 5 s; this bounds the whole call.
USERNAME_TIMEOUT_SECONDS = 10
# What the outbox worker knows how to deliver (telepayd/outbox.py, OutboxWorker._send).
OUTBOX_KINDS = ("message", "notification", "join_link", "channel_post", "remove_member", "edit")


class UsageError(TelepaydError):
    """A bad argument: the message is one line for the operator."""


def parse_tier(text: str) -> channels.TierSpec:
    """``PRICE:DAYS[:STARS]`` such as ``9.99:30`` or ``9.99:30:500`` (STARS: the price in Telegram Stars)."""
    price_text, colon, rest = text.partition(":")
    days_text, _, stars_text = rest.partition(":")
    try:
        # Decimal() reads any script's digits ("٩.٩٩"); a price is written with 0-9 only.
        price = Decimal(price_text) if _PRICE.fullmatch(price_text) else Decimal(-1)
    except InvalidOperation:
        price = Decimal(-1)
    if not colon or not price.is_finite() or price <= 0 or price > Decimal("99999.99") or price.as_tuple().exponent < -2:
        raise UsageError(f"--tier {text!r}: expected PRICE:DAYS[:STARS] with a price in USD above 0 and at most two decimals, like 9.99:30 or 9.99:30:500")
    days = ascii_int(days_text)
    if days is None or not 1 <= days <= 3650:
        raise UsageError(f"--tier {text!r}: DAYS must be a whole number from 1 to 3650")
    in_stars = None
    if ":" in rest:
        in_stars = ascii_int(stars_text)
        if in_stars is None or not 1 <= in_stars <= stars_rules.MAX_STARS:
            raise UsageError(f"--tier {text!r}: STARS must be a whole number of Telegram Stars from 1 to {stars_rules.MAX_STARS}")
    return channels.TierSpec(price, days, in_stars)


def parse_chat_id(text: str, option: str) -> int:
    value = ascii_int(text, signed=True)
    if value is None:
        raise UsageError(f"{option} {text!r}: expected a Telegram chat id, a whole number like -1001234567890")
    if value == 0 or abs(value) >= 10**15:
        raise UsageError(f"{option} {text!r}: not a Telegram chat id")
    return value


def parse_channel_id(text: str, option: str) -> int:
    """A channel or supergroup id: ``-100`` followed by digits."""
    if not _CHANNEL_ID.fullmatch(text):
        raise UsageError(f"{option} {text!r}: expected a channel id, -100 followed by digits like -1001234567890")
    return parse_chat_id(text, option)


def parse_user_id(text: str, option: str) -> int:
    """A user's chat id (their private chat with the bot): a positive number."""
    value = ascii_int(text)
    if value is None or value == 0 or value >= 10**15:
        raise UsageError(f"{option} {text!r}: expected a user's chat id, a positive number like 555000111")
    return value


def _tiers(values: list[str] | None) -> list[channels.TierSpec]:
    tiers = [parse_tier(t) for t in values or []]
    if len(tiers) > MAX_TIERS:
        raise UsageError(f"at most {MAX_TIERS} tiers per channel, got {len(tiers)}")
    return tiers


def _trial_days(value: int | None) -> int:
    if value is None:
        return 0
    if not 0 <= value <= MAX_TRIAL_DAYS:
        raise UsageError(f"--trial must be 0 (no trial) to {MAX_TRIAL_DAYS} days, not {value}")
    return value


def _tier_list(tiers: list[channels.TierSpec]) -> str:
    return "[" + ", ".join(f"{t.price}:{t.days}" + (f":{t.stars}" if t.stars else "") for t in tiers) + "]"


async def migrate_command(config: Config) -> list[str]:
    async with await connect(config.database) as conn:
        applied = await schema.migrate(conn)
    lines = [f"applied {m.version:04d}_{m.name}" for m in applied]
    return lines + [f"database schema at version {schema.latest_version()}" + ("" if applied else " (nothing to do)")]


async def _connect(config: Config) -> AsyncConnection:
    """A connection to a database whose schema is current (else a clear line, not a traceback)."""
    conn = await connect(config.database)
    version = await schema.check_version(conn)
    if version < schema.latest_version():
        await conn.close()
        raise UsageError(f"the database schema is at version {version}, this telepayd needs {schema.latest_version()}: run 'telepayd migrate' first")
    return conn


async def _resolve_channel(conn: AsyncConnection, text: str) -> channels.Channel:
    """A channel by key (the number in deep links, see 'channels list') or by open channel id."""
    number = parse_chat_id(text, "channel")
    found = await channels.get(conn, number) if number > 0 else await channels.find_by_open_id(conn, number)
    if found is None:
        raise UsageError(f"no channel {text}: see 'telepayd channels list'")
    return found


MAX_TRIAL_DAYS = 365


def _describe(channel: channels.Channel) -> str:
    tiers = ", ".join(f"{texts.money(t.price)}/{t.days}d" + (f" or {t.stars_price} stars" if t.stars_price else "")
                      for t in channel.tiers) or "no tiers"
    state = (f", {channel.trial_days}-day free trial" if channel.trial_days else "") + (" (removed)" if channel.removed else "")
    return (
        f"{channel.id}\topen {channel.open_channel_id}\tclosed {channel.closed_channel_id}\towner {channel.owner_chat_id}"
        f"\t{channel.title}\t{tiers}{state}"
    )


async def channels_command(config: Config, args: argparse.Namespace) -> list[str]:
    async with await _connect(config) as conn:
        if args.action == "list":
            found = await (channels.list_all(conn) if args.all else channels.list_active(conn))
            return [_describe(c) for c in found] or ["no channels: add one with 'telepayd channels add'"]
        if args.action == "add":
            open_id = parse_channel_id(args.open, "--open")
            closed_id = parse_channel_id(args.closed, "--closed")
            owner_id = parse_user_id(args.owner, "--owner")
            if open_id == closed_id:
                raise UsageError("--open and --closed must be different channels")
            tiers = _tiers(args.tier)
            if not tiers:
                raise UsageError("give 1 to 3 --tier PRICE:DAYS")
            if not args.title.strip() or len(args.title) > 128:
                raise UsageError("--title must be 1 to 128 characters")
            async with conn.transaction():
                try:
                    key = await channels.add(
                        conn, open_channel_id=open_id, closed_channel_id=closed_id,
                        owner_chat_id=owner_id, title=args.title.strip(),
                        description=(args.description or "").strip(), tiers=tiers, trial_days=_trial_days(args.trial),
                    )
                except channels.ChannelConflict as exc:
                    raise UsageError(str(exc)) from None
                await anomalies.record_operator_action(conn, "channel_add", f"{args.title} {_tier_list(tiers)}", channel_id=key)
            # On sale now (committed); the links need the bot's username, asked of Telegram.
            return await _deep_link_lines(config, key)
        channel = await _resolve_channel(conn, args.id)
        if args.action == "update":
            fields: dict[str, object] = {}
            if args.title is not None:
                fields["title"] = args.title.strip()
            if args.description is not None:
                fields["description"] = args.description.strip()
            if args.owner is not None:
                fields["owner_chat_id"] = parse_user_id(args.owner, "--owner")
            if args.trial is not None:
                fields["trial_days"] = _trial_days(args.trial)
            tiers = _tiers(args.tier)
            if not fields and not tiers:
                raise UsageError("nothing to update: give --title, --description, --owner, --trial or --tier")
            async with conn.transaction():
                await channels.update(conn, channel.id, fields)
                if tiers:
                    await channels.replace_tiers(conn, channel.id, tiers)
                await anomalies.record_operator_action(conn, "channel_update", f"{sorted(fields)} tiers={_tier_list(tiers)}", channel_id=channel.id)
            return [f"updated channel {channel.id}"]
        # remove
        active = await channels.active_subscribers(conn, channel.id)
        if active and not args.force:
            raise UsageError(f"channel {channel.id} has {active} active subscriber(s); add --force (their subscriptions run to their end)")
        async with conn.transaction():
            await channels.remove(conn, channel.id)
            renewals = await stars_store.renewing_in_channel(conn, channel.id)
            for user_id, _ in renewals:  # nothing renews a channel off sale: a later charge is refused
                await stars_store.end_renewal(conn, user_id=user_id, channel_id=channel.id)
            await anomalies.record_operator_action(conn, "channel_remove", f"active subscribers: {active}", channel_id=channel.id)
    lines = [f"removed channel {channel.id} from sale" + (f"; {active} subscription(s) run to their end" if active else "")]
    return lines + (await _cancel_star_renewals(config, renewals) if renewals else [])


async def bot_username(config: Config) -> tuple[str, str]:
    """The bot's username from one ``getMe`` (the CLI does not run the bot): ``(username, "")``, or
    ``("", why not)`` when Telegram cannot be reached or refuses the token."""
    from telegram.error import InvalidToken, TelegramError

    from .bot import build_application

    try:
        bot = build_application(config.telegram).bot
        async with asyncio.timeout(USERNAME_TIMEOUT_SECONDS):
            async with bot:  # initialize() is the getMe
                return bot.username, ""
    except InvalidToken:
        return "", "Telegram refused the bot token"
    except TimeoutError:
        return "", f"Telegram did not answer within {USERNAME_TIMEOUT_SECONDS} s"
    except TelegramError as exc:
        return "", f"Telegram could not be reached: {exc}"
    except Exception as exc:  # only the links depend on it: never fail the command or print a traceback
        return "", f"{exc.__class__.__name__}: {exc}"


async def _deep_link_lines(config: Config, key: int) -> list[str]:
    from telegram.helpers import create_deep_linked_url

    username, problem = await bot_username(config)
    if not username:
        return [
            f"added channel {key}: deep link payloads start=sub_{key} (subscribe) and start=don_{key} (donate)",
            f"the bot's username could not be fetched ({problem}): the links are "
            f"https://t.me/<bot username>?start=sub_{key} and ?start=don_{key}",
        ]
    return [
        f"added channel {key}: its deep links are",
        f"  subscribe: {create_deep_linked_url(username, f'sub_{key}')}",
        f"  donate:    {create_deep_linked_url(username, f'don_{key}')}",
    ]


async def orders_command(config: Config, args: argparse.Namespace) -> list[str]:
    if args.action == "reconcile":
        return await reconcile_command(config, args.order_id, args.payment_id)
    if args.action == "refund":
        return await refund_command(config, args.order_id)
    async with await _connect(config) as conn:
        if args.user is not None:
            found = await orders.for_user(conn, args.user)
            return [
                f"{o.order_id}\t{o.created_at:%Y-%m-%d %H:%M}\t{o.kind}\tchannel {o.channel_id}\t{texts.money(o.price, o.currency)}\t{o.status}"
                + (f"\trenews {o.renews_order_id}" if o.renews_order_id else "")
                for o in found
            ] or [f"no orders for user {args.user}"]
        order = await orders.get(conn, args.order_id)
        if order is None:
            raise UsageError(f"no order {args.order_id!r}")
        lines = [
            f"order {order.order_id}: {order.kind}, user {order.user_id}" + (f" (@{order.username})" if order.username else ""),
            f"  channel {order.channel_id}, {texts.money(order.price, order.currency)}"
            + (f" (code {order.code}: {texts.money(order.list_price, order.currency)} before the discount)"
               if order.code and order.list_price is not None else "")
            + (f", {order.days} days" if order.days else "") + f", status {order.status}, paid with {order.rail}"
            + (f", renews order {order.renews_order_id}" if order.renews_order_id else ""),
            f"  created {order.created_at:%Y-%m-%d %H:%M:%S %Z}, invoice {order.invoice_id or '-'} {order.invoice_url or ''}".rstrip(),
        ]
        for payment in await payments.for_order(conn, order.order_id):
            granted = f", granted {payment.granted_at:%Y-%m-%d %H:%M}" if payment.granted_at else ""
            lines.append(f"  payment {payment.payment_id}: {payment.status}{granted}")
        for event in await payments.events_for_order(conn, order.order_id):
            via = "IPN      " if event.source == "ipn" else "reconcile"
            lines.append(f"  {via} {event.received_at:%Y-%m-%d %H:%M:%S} payment {event.payment_id} {event.payment_status}: {event.outcome}")
        for charge in await stars_store.for_order(conn, order.order_id):
            granted = f", granted {charge.granted_at:%Y-%m-%d %H:%M}" if charge.granted_at else ""
            refunded = f", refunded {charge.refunded_at:%Y-%m-%d %H:%M}" if charge.refunded_at else ""
            via = "update" if charge.source == "update" else "sweep "
            renews = f" recurring (Telegram's next charge {charge.subscription_until:%Y-%m-%d %H:%M})" if charge.subscription_until else (
                " recurring" if charge.is_recurring else "")
            lines.append(f"  Stars {via} {charge.received_at:%Y-%m-%d %H:%M:%S} charge {charge.charge_id} {charge.amount} "
                         f"{charge.currency}{renews}: {charge.outcome}{granted}{refunded}")
        for renewal in await orders.renewals_of(conn, order.order_id):
            lines.append(f"  renewed by order {renewal.order_id} {renewal.created_at:%Y-%m-%d %H:%M:%S} "
                         f"({texts.money(renewal.price, renewal.currency)}, {renewal.status})")
        for link in await subscriptions.join_links_for_order(conn, order.order_id):
            approved = f", approved {link.approved_at:%Y-%m-%d %H:%M}" if link.approved_at else ""
            lines.append(f"  join link {link.invite_link} for user {link.user_id}, expires {link.expires_at:%Y-%m-%d %H:%M}{approved}")
        return lines


async def _order_state(conn: AsyncConnection, order_id: str) -> tuple[str, str, str]:
    """The order's status, its payments' statuses and the buyer's subscription end, to show what changed."""
    order = await orders.get(conn, order_id)
    assert order is not None
    paid = ", ".join(f"{p.payment_id} {p.status}" for p in await payments.for_order(conn, order_id)) or "none"
    ends_at = None
    if order.kind == "subscription":
        state = await subscriptions.get_state_for_update(conn, order.user_id, order.channel_id)
        ends_at = state[0] if state else None
    return order.status, paid, f"{ends_at:%Y-%m-%d %H:%M %Z}" if ends_at else "none"


async def reconcile_command(config: Config, order_id: str, payment_id: int) -> list[str]:
    """Fetch a payment from NowPayments and apply it to ``order_id`` by the money rules (``orders reconcile``)."""
    client = NowPaymentsClient(lambda: config.nowpayments)
    async with await _connect(config) as conn:
        if await orders.get(conn, order_id) is None:
            raise UsageError(f"no order {order_id!r}")
        before = await _order_state(conn, order_id)

        @contextlib.asynccontextmanager
        async def the_connection():
            yield conn

        await client.start()
        try:
            check = await reconcile.check_payment(the_connection, client, config, payment_id, order_id=order_id, attempts=3)
        finally:
            await client.close()
        if check.outcome == reconcile.NOT_FOUND:
            raise UsageError(f"NowPayments knows no payment {payment_id} (for this API key); nothing changed")
        if check.outcome == reconcile.OTHER_ORDER:
            raise UsageError(f"payment {payment_id} is not for order {order_id}: {check.detail}; nothing changed")
        if check.outcome in (reconcile.UNREACHABLE, reconcile.INVALID):
            raise UsageError(f"{check.detail}; nothing changed, try again later")
        after = await _order_state(conn, order_id)
    lines = [f"payment {payment_id} of order {order_id} is {check.status} at NowPayments",
             f"  applied by the money rules: {check.rules}"]
    for name, old, new in zip(("order", "payments", "subscription until"), before, after):
        lines.append(f"  {name}: {old}" + (f" -> {new}" if new != old else " (unchanged)"))
    if check.outcome == reconcile.GRANTED:
        lines.append("  the join link and the messages are queued: the running daemon sends them")
    if check.outcome == reconcile.REFUSED:
        raise UsageError("; ".join(lines) + " (refused: see 'telepayd orders show')")
    return lines


async def refund_command(config: Config, order_id: str) -> list[str]:
    """Refund a Stars order with Telegram (``refundStarPayment``), then apply the refund rule (``orders refund``)."""
    from telegram.error import BadRequest, TelegramError

    from .bot import build_application

    async with await _connect(config) as conn:
        order = await orders.get(conn, order_id)
        if order is None:
            raise UsageError(f"no order {order_id!r}")
        if order.rail != "stars":
            raise UsageError(f"order {order_id} was paid with crypto: refund it in NowPayments' dashboard; its refunded "
                             "IPN then takes back the access (nothing changed)")
        charges = [c for c in await stars_store.for_order(conn, order_id) if c.refunded_at is None]
        if not charges:
            raise UsageError(f"order {order_id} has no Stars charge left to refund (see 'telepayd orders show {order_id}')")
        charge = charges[-1]
        before = await _order_state(conn, order_id)
        await conn.commit()  # no lock held while Telegram answers
        try:
            async with asyncio.timeout(USERNAME_TIMEOUT_SECONDS):
                async with build_application(config.telegram).bot as bot:
                    await bot.refund_star_payment(charge.user_id, charge.charge_id)
        except BadRequest as exc:
            if "CHARGE_ALREADY_REFUNDED" not in str(exc).upper():
                raise UsageError(f"Telegram refused the refund of charge {charge.charge_id}: {exc} (nothing changed)") from None
        except (TelegramError, TimeoutError) as exc:
            raise UsageError(f"Telegram could not be reached to refund charge {charge.charge_id} ({exc or 'timeout'}); "
                             "nothing changed, try again") from None
        try:
            async with conn.transaction():
                outcome = await stars_rules.apply_refund(conn, charge.charge_id, source="operator",
                                                             default_language=config.bot.default_language)
                await anomalies.record_operator_action(conn, "stars_refund", f"order {order_id} charge {charge.charge_id}: {outcome}",
                                                       user_id=order.user_id, channel_id=order.channel_id)
            after = await _order_state(conn, order_id)
        except UNAVAILABLE_ERRORS as exc:
            raise UsageError(f"Telegram refunded charge {charge.charge_id}, but the database could not record it "
                             f"({exc.__class__.__name__}): run 'telepayd orders refund {order_id}' again to apply it") from None
    (status_before, _, end_before), (status_after, _, end_after) = before, after
    return [f"refunded {int(charge.amount)} Stars of order {order_id} to user {charge.user_id} (charge {charge.charge_id})",
            f"  applied by the money rules: {outcome}",
            f"  order: {status_before} -> {status_after}",
            f"  subscription until: {end_before}" + (f" -> {end_after}" if end_after != end_before else " (unchanged)"),
            "  the buyer and the owner are told by the running daemon"]


async def subscriptions_command(config: Config, args: argparse.Namespace) -> list[str]:
    async with await _connect(config) as conn:
        channel = await _resolve_channel(conn, args.channel)
        async with conn.transaction():
            if args.action == "grant":
                if not args.days or args.days < 1:
                    raise UsageError("grant needs --days N (1 or more)")
                ends_at = await subscriptions.extend(conn, user_id=args.user, channel_id=channel.id, days=args.days)
                await subscriptions.touch_link(conn, args.user, channel.id)
                await outbox_store.enqueue_join_link(
                    conn, args.user, closed_chat_id=channel.closed_channel_id, title=channel.title,
                    hours=config.subscriptions.invite_link_hours,
                )
                await anomalies.record_operator_action(conn, "subscription_grant", f"{args.days} days, now until {ends_at}", user_id=args.user, channel_id=channel.id)
                return [f"user {args.user} in channel {channel.id} until {ends_at:%Y-%m-%d %H:%M %Z}; a join link is queued"]
            if args.days is not None:
                raise UsageError("revoke ends the subscription now and takes no --days")
            ended = await subscriptions.shorten_to_now(conn, user_id=args.user, channel_id=channel.id)
            if not ended:
                raise UsageError(f"user {args.user} has no active subscription to channel {channel.id}")
            # Removed now rather than at the next sweep; the removal also revokes their open invite links.
            await outbox_store.enqueue_removal(conn, args.user, closed_chat_id=channel.closed_channel_id,
                                               title=channel.title, channel_key=channel.id)
            await sweeps.mark_removed(conn, args.user, channel.id)
            renewal = await stars_store.renewal_for(conn, args.user, channel.id)
            await stars_store.end_renewal(conn, user_id=args.user, channel_id=channel.id)  # a later charge is refused
            await anomalies.record_operator_action(conn, "subscription_revoke", "ended now", user_id=args.user, channel_id=channel.id)
    lines = [f"subscription of user {args.user} to channel {channel.id} ended now; removal from the channel is queued"]
    if renewal is not None and not renewal.canceled:
        lines += await _cancel_star_renewals(config, [(args.user, renewal.charge_id)])
    return lines


async def _cancel_star_renewals(config: Config, renewals: list[tuple[int, str]]) -> list[str]:
    """Cancel these Telegram Stars subscriptions (user, first charge) with Telegram, so nobody is charged for
    access that was taken away; one line for each that Telegram did not cancel (its next charge is then
    refused and recorded as an anomaly, to refund with 'telepayd orders refund')."""
    from telegram.error import TelegramError

    from .bot import build_application

    lines = []
    try:
        async with asyncio.timeout(USERNAME_TIMEOUT_SECONDS + len(renewals)):
            async with build_application(config.telegram).bot as bot:
                for user_id, charge_id in renewals:
                    try:
                        await bot.edit_user_star_subscription(user_id, charge_id, is_canceled=True)
                    except TelegramError as exc:
                        lines.append(f"  the Telegram Stars renewal of user {user_id} could not be cancelled ({exc}); "
                                     "its next charge will be refused: refund it with 'telepayd orders refund'")
    except (TelegramError, TimeoutError) as exc:
        return [f"  Telegram could not be reached to cancel {len(renewals)} Telegram Stars renewal(s) ({exc or 'timeout'}); "
                "their next charges will be refused: refund them with 'telepayd orders refund'"]
    cancelled = len(renewals) - len(lines)
    return ([f"  {cancelled} Telegram Stars renewal(s) cancelled with Telegram"] if cancelled else []) + lines


async def set_webhook_command(config: Config) -> list[str]:
    from .bot import ALLOWED_UPDATES, build_application, register_webhook

    if config.telegram.mode != "webhook":
        raise UsageError("[telegram] mode is \"polling\": there is no webhook to set")
    application = build_application(config.telegram)
    async with application:
        await register_webhook(application.bot, config.telegram)
    return [f"webhook set to {config.telegram.webhook_url} (allowed updates: {', '.join(ALLOWED_UPDATES)})"]


async def outbox_command(config: Config, args: argparse.Namespace) -> list[str]:
    async with await _connect(config) as conn:
        if args.action == "failed":
            found = await outbox_store.failed(conn)
            return [
                f"{m.id}\t{m.created_at:%Y-%m-%d %H:%M}\t{m.kind}\tchat {m.chat_id if m.chat_id is not None else '-'}"
                f"\t{m.attempts} attempt(s)\t{m.last_error}"
                for m in found
            ] or ["no failed messages"]
        if (args.id is None) == (not args.all):
            raise UsageError("give a message ID or --all")
        if args.all and args.force:
            raise UsageError("--force goes with one message ID: --all never queues messages that cannot succeed")
        if args.id is not None:
            message = await outbox_store.get_failed(conn, args.id)
            if message is None:
                raise UsageError(f"message {args.id} is not a failed message (see 'telepayd outbox failed')")
            reason = cannot_succeed(message, **await _retry_facts(conn, message))
            if reason and not args.force:
                raise UsageError(f"message {args.id} cannot succeed as it is ({reason}); add --force to queue it anyway")
            count = await outbox_store.requeue_ids(conn, [args.id])
            await anomalies.record_operator_action(
                conn, "outbox_retry", f"{count} message(s): {args.id}" + (f" (forced: {reason})" if reason else ""))
            return [f"{count} message(s) queued again"]
        lines, retry, skipped, after = [], [], 0, 0
        while page := await outbox_store.failed_after(conn, after):
            after = page[-1].id
            for message in page:
                reason = cannot_succeed(message, **await _retry_facts(conn, message))
                if reason:
                    skipped += 1
                    lines.append(f"skipped {message.id} ({message.kind}): {reason}")
                else:
                    retry.append(message.id)
        count = await outbox_store.requeue_ids(conn, retry) if retry else 0
        await anomalies.record_operator_action(conn, "outbox_retry", f"{count} message(s): all; {skipped} skipped")
        return lines + [f"{count} message(s) queued again" + (
            f"; {skipped} skipped: they cannot succeed as they are ('telepayd outbox retry ID --force' queues one anyway)"
            if skipped else "")]


def cannot_succeed(message: outbox_store.OutboxMessage, *, target_exists: bool = True, on_sale: bool = True) -> str:
    """Why a failed message cannot succeed if queued again as it is ("" when it may).

    The facts come from ``_retry_facts``: for a notification, whether it still exists and whether a channel
    on sale has its open channel id now; for a channel post, whether its channel exists and is on sale.
    A refusal by Telegram (403 blocked, 400 chat not found, a bad token) may succeed later: it is retried."""
    reason = message.last_error or ""
    if message.kind not in OUTBOX_KINDS:
        return f"unknown message kind {message.kind!r}"
    if reason.startswith("undeliverable:"):  # the worker could not read it (or failed on it): it would again
        return reason
    if message.kind == "notification":
        if not target_exists:
            return f"notification {message.payload.get('notification_id')} does not exist"
        if message.chat_id is None and not on_sale:  # its owner is found at delivery: there is none
            return "the notification names no channel on sale, so it has no owner to go to"
    if message.kind == "channel_post" and not (target_exists and on_sale):
        return f"channel {message.payload.get('channel_id')} is no longer on sale"
    return ""


def _payload_id(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    number = value if isinstance(value, int) and not isinstance(value, bool) else ascii_int(value)
    return number if number is not None and 0 < number < 2**63 else None


async def _retry_facts(conn: AsyncConnection, message: outbox_store.OutboxMessage) -> dict[str, bool]:
    """What ``cannot_succeed`` needs to know about the notification or channel a message refers to."""
    if message.kind == "notification":
        number = _payload_id(message.payload, "notification_id")
        found = await notifications.get(conn, number) if number is not None else None
        return {"target_exists": found is not None, "on_sale": found is not None and found.channel_id is not None}
    if message.kind == "channel_post":
        number = _payload_id(message.payload, "channel_key") or _payload_id(message.payload, "channel_id")  # earlier versions
        channel = await channels.get(conn, number) if number is not None else None
        return {"target_exists": channel is not None, "on_sale": channel is not None and not channel.removed}
    return {}


async def broadcast_command(config: Config, args: argparse.Namespace) -> list[str]:
    async with await _connect(config) as conn:
        wanted = None
        if args.channel:
            wanted = []
            for text in args.channel:
                number = parse_chat_id(text, "--channel")
                if await channels.find_by_open_id(conn, number) is None:
                    raise UsageError(f"--channel {text}: not the open channel id of a channel on sale (see 'telepayd channels list')")
                wanted.append(str(number))
        job = await sweeps.add_broadcast_job(conn, wanted)
    return [f"broadcast job {job} queued: the running daemon posts it within "
            f"{config.subscriptions.sweep_interval_seconds} s, within Telegram's limits"]

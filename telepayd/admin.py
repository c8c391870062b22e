"""The operator's commands (``telepayd channels|orders|subscriptions|set-webhook``), each printing plain lines."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation

from psycopg import AsyncConnection

from .config import Config
from .errors import TelepaydError
from .handlers import texts
from .numbers import ascii_int
from .store import anomalies, channels, orders, payments, subscriptions
from .store import outbox as outbox_store
from .store import schema, sweeps
from .store.pool import connect

MAX_TIERS = 3
_PRICE = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")


class UsageError(TelepaydError):
    """A bad argument: the message is one line for the operator."""


def parse_tier(text: str) -> tuple[Decimal, int]:
    """``PRICE:DAYS`` such as ``9.99:30``."""
    price_text, colon, days_text = text.partition(":")
    try:
        # Decimal() reads any script's digits ("٩.٩٩"); a price is written with 0-9 only.
        price = Decimal(price_text) if _PRICE.fullmatch(price_text) else Decimal(-1)
    except InvalidOperation:
        price = Decimal(-1)
    if not colon or not price.is_finite() or price <= 0 or price > Decimal("99999.99") or price.as_tuple().exponent < -2:
        raise UsageError(f"--tier {text!r}: expected PRICE:DAYS with a price in USD above 0 and at most two decimals, like 9.99:30")
    days = ascii_int(days_text)
    if days is None or not 1 <= days <= 3650:
        raise UsageError(f"--tier {text!r}: DAYS must be a whole number from 1 to 3650")
    return price, days


def parse_chat_id(text: str, option: str) -> int:
    value = ascii_int(text, signed=True)
    if value is None:
        raise UsageError(f"{option} {text!r}: expected a Telegram chat id, a whole number like -1001234567890")
    if value == 0 or abs(value) >= 10**15:
        raise UsageError(f"{option} {text!r}: not a Telegram chat id")
    return value


def _tiers(values: list[str] | None) -> list[tuple[Decimal, int]]:
    tiers = [parse_tier(t) for t in values or []]
    if len(tiers) > MAX_TIERS:
        raise UsageError(f"at most {MAX_TIERS} tiers per channel, got {len(tiers)}")
    return tiers


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


def _describe(channel: channels.Channel) -> str:
    tiers = ", ".join(f"{texts.money(t.price)}/{t.days}d" for t in channel.tiers) or "no tiers"
    state = " (removed)" if channel.removed else ""
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
            tiers = _tiers(args.tier)
            if not tiers:
                raise UsageError("give 1 to 3 --tier PRICE:DAYS")
            open_id = parse_chat_id(args.open, "--open")
            closed_id = parse_chat_id(args.closed, "--closed")
            if open_id == closed_id:
                raise UsageError("--open and --closed must be different channels")
            if not args.title.strip() or len(args.title) > 128:
                raise UsageError("--title must be 1 to 128 characters")
            async with conn.transaction():
                try:
                    key = await channels.add(
                        conn, open_channel_id=open_id, closed_channel_id=closed_id,
                        owner_chat_id=parse_chat_id(args.owner, "--owner"), title=args.title.strip(),
                        description=(args.description or "").strip(), tiers=tiers,
                    )
                except channels.ChannelConflict as exc:
                    raise UsageError(str(exc)) from None
                await anomalies.record_operator_action(conn, "channel_add", f"{args.title} {tiers}", channel_id=key)
            return [f"added channel {key}: deep link start=sub_{key}"]
        channel = await _resolve_channel(conn, args.id)
        if args.action == "update":
            fields: dict[str, object] = {}
            if args.title is not None:
                fields["title"] = args.title.strip()
            if args.description is not None:
                fields["description"] = args.description.strip()
            if args.owner is not None:
                fields["owner_chat_id"] = parse_chat_id(args.owner, "--owner")
            tiers = _tiers(args.tier)
            if not fields and not tiers:
                raise UsageError("nothing to update: give --title, --description, --owner or --tier")
            async with conn.transaction():
                await channels.update(conn, channel.id, fields)
                if tiers:
                    await channels.replace_tiers(conn, channel.id, tiers)
                await anomalies.record_operator_action(conn, "channel_update", f"{sorted(fields)} tiers={tiers}", channel_id=channel.id)
            return [f"updated channel {channel.id}"]
        # remove
        active = await channels.active_subscribers(conn, channel.id)
        if active and not args.force:
            raise UsageError(f"channel {channel.id} has {active} active subscriber(s); add --force (their subscriptions run to their end)")
        async with conn.transaction():
            await channels.remove(conn, channel.id)
            await anomalies.record_operator_action(conn, "channel_remove", f"active subscribers: {active}", channel_id=channel.id)
        return [f"removed channel {channel.id} from sale" + (f"; {active} subscription(s) run to their end" if active else "")]


async def orders_command(config: Config, args: argparse.Namespace) -> list[str]:
    async with await _connect(config) as conn:
        if args.user is not None:
            found = await orders.for_user(conn, args.user)
            return [
                f"{o.order_id}\t{o.created_at:%Y-%m-%d %H:%M}\t{o.kind}\tchannel {o.channel_id}\t{texts.money(o.price)}\t{o.status}"
                for o in found
            ] or [f"no orders for user {args.user}"]
        order = await orders.get(conn, args.order_id)
        if order is None:
            raise UsageError(f"no order {args.order_id!r}")
        lines = [
            f"order {order.order_id}: {order.kind}, user {order.user_id}" + (f" (@{order.username})" if order.username else ""),
            f"  channel {order.channel_id}, {texts.money(order.price)} {order.currency}"
            + (f", {order.days} days" if order.days else "") + f", status {order.status}",
            f"  created {order.created_at:%Y-%m-%d %H:%M:%S %Z}, invoice {order.invoice_id or '-'} {order.invoice_url or ''}".rstrip(),
        ]
        for payment in await payments.for_order(conn, order.order_id):
            granted = f", granted {payment.granted_at:%Y-%m-%d %H:%M}" if payment.granted_at else ""
            lines.append(f"  payment {payment.payment_id}: {payment.status}{granted}")
        for event in await payments.events_for_order(conn, order.order_id):
            lines.append(f"  IPN {event.received_at:%Y-%m-%d %H:%M:%S} payment {event.payment_id} {event.payment_status}: {event.outcome}")
        for link in await subscriptions.join_links_for_order(conn, order.order_id):
            approved = f", approved {link.approved_at:%Y-%m-%d %H:%M}" if link.approved_at else ""
            lines.append(f"  join link {link.invite_link} for user {link.user_id}, expires {link.expires_at:%Y-%m-%d %H:%M}{approved}")
        return lines


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
            await anomalies.record_operator_action(conn, "subscription_revoke", "ended now", user_id=args.user, channel_id=channel.id)
            return [f"subscription of user {args.user} to channel {channel.id} ended now; removal from the channel is queued"]


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
        count = await outbox_store.requeue(conn, None if args.all else args.id)
        if args.id is not None and not count:
            raise UsageError(f"message {args.id} is not a failed message (see 'telepayd outbox failed')")
        await anomalies.record_operator_action(conn, "outbox_retry", f"{count} message(s): {'all' if args.all else args.id}")
        return [f"{count} message(s) queued again"]


async def broadcast_command(config: Config, args: argparse.Namespace) -> list[str]:
    async with await _connect(config) as conn:
        wanted = [str(parse_chat_id(c, "--channel")) for c in args.channel] if args.channel else None
        job = await sweeps.add_broadcast_job(conn, wanted)
    return [f"broadcast job {job} queued: the running daemon posts it within "
            f"{config.subscriptions.sweep_interval_seconds} s, within Telegram's limits"]

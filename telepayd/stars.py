"""The money rules for Telegram Stars (currency XTR), beside NowPayments' (payments.py), on the same ledger.

A Stars order is created before its invoice, like a crypto one, and its payload is the order id. Telegram
asks before charging (pre-checkout: the order must be this user's, open, and the amount its price), then
reports the charge (``successful_payment``, or the transactions sweep when that update was lost). Each
charge is recorded once by ``telegram_payment_charge_id``, checked against the order (currency, amount,
user) and grants by the same rule as a finished crypto payment. A later charge of a Stars subscription
(``is_recurring`` and not the first) is a renewal: a new paid order linked to the first, 30 more days.
A refund takes back what is left of what that charge bought, once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from psycopg import AsyncConnection

from .config import Config
from . import payments
from .texts import Texts
from .store import channels, orders
from .store import stars as stars_store

logger = logging.getLogger(__name__)

CURRENCY = "XTR"
SUBSCRIPTION_DAYS = 30  # Telegram's one subscription period...
SUBSCRIPTION_PERIOD_SECONDS = 30 * 86400  # ...as createInvoiceLink's subscription_period
MAX_STARS = 10000  # Telegram's cap for one price
MAX_CHARGE_ID = 256
# Outcomes that refuse a charge (an anomaly is recorded): nothing was granted.
REFUSALS = frozenset({"unknown_order", "price_mismatch", "user_mismatch", "unknown_channel", "renewal_refused"})


@dataclass(frozen=True)
class StarsPayment:
    """A successful Stars payment as Telegram reports it (an update, or a transaction found by the sweep)."""

    charge_id: str
    payload: str
    user_id: int
    currency: str
    amount: int
    is_recurring: bool = False
    is_first_recurring: bool | None = None  # None: not told (a transaction found by the sweep)
    subscription_until: datetime | None = None
    username: str | None = None


def stars_for_usd(amount: Decimal, usd_per_star: Decimal) -> int | None:
    """The whole Stars a donation of ``amount`` USD costs (rounded up); None outside Telegram's 1-10000."""
    count = math.ceil(amount / usd_per_star)
    return count if 1 <= count <= MAX_STARS else None


def subscription_invoice(order: orders.Order) -> bool:
    """A 30-day plan is sold as a Telegram Stars subscription (it renews); anything else is one-off, and so
    is a 30-day plan an access code discounted (a discount is for one invoice: Telegram would renew at the
    discounted price every month)."""
    return order.kind == "subscription" and order.days == SUBSCRIPTION_DAYS and order.code is None


def precheckout_refusal(order: orders.Order | None, texts: Texts, *, user_id: int, currency: str, total_amount: int,
                        renews_already: bool = False) -> str | None:
    """Why Telegram must not charge this pre-checkout (a short text for the buyer, in ``texts``' language), or None to let it.
    ``renews_already``: the buyer's access to the order's channel is renewed by a Stars subscription already
    (a second one would charge them twice a month)."""
    if order is None or order.rail != "stars":
        return texts.PRECHECKOUT_UNKNOWN
    if order.user_id != user_id:
        return texts.PRECHECKOUT_NOT_YOURS
    if not order.is_open:
        return texts.PRECHECKOUT_CLOSED
    if currency != CURRENCY or Decimal(total_amount) != order.price:
        return texts.PRECHECKOUT_PRICE
    if renews_already and subscription_invoice(order):
        return texts.PRECHECKOUT_RENEWS_ALREADY
    return None


def storable(text: str, limit: int) -> str:
    """Telegram's text as PostgreSQL can keep it (no NUL), cut to ``limit`` characters."""
    return text[:limit].replace("\x00", "\ufffd")


async def apply_charge(conn: AsyncConnection, payment: StarsPayment, body: str, config: Config, *, source: str) -> str:
    """Apply one Stars charge inside the caller's transaction; return its outcome (``duplicate`` when this
    charge was recorded before, from the update or the sweep)."""
    recorded = await stars_store.record(
        conn, charge_id=payment.charge_id, payload=payment.payload, user_id=payment.user_id, currency=payment.currency,
        amount=payment.amount, is_recurring=payment.is_recurring, subscription_until=payment.subscription_until,
        source=source, body=body,
    )
    if not recorded:
        return "duplicate"
    outcome, order_id = await _apply(conn, payment, config)
    await stars_store.set_outcome(conn, payment.charge_id, outcome, order_id=order_id)
    return outcome


async def _apply(conn: AsyncConnection, p: StarsPayment, config: Config) -> tuple[str, str | None]:
    order = await orders.get(conn, p.payload, for_update=True) if orders.looks_like_order_id(p.payload) else None
    if order is None or order.rail != "stars":
        await payments.anomaly(conn, "unknown_order", f"Stars charge {p.charge_id} of user {p.user_id} names no Stars order "
                               f"({p.payload[:64]!r}, {p.amount} {p.currency})", order.order_id if order else None)
        return "unknown_order", None
    if p.currency != CURRENCY or Decimal(p.amount) != order.price:
        await payments.anomaly(conn, "price_mismatch", f"order {order.order_id}: Stars charge {p.charge_id} is {p.amount} "
                               f"{p.currency}, the order is {int(order.price)} {CURRENCY}", order.order_id)
        return "price_mismatch", order.order_id
    if p.user_id != order.user_id:
        await payments.anomaly(conn, "user_mismatch", f"order {order.order_id} of user {order.user_id} was paid in Stars by "
                               f"user {p.user_id} (charge {p.charge_id}); nothing granted, refund it with 'telepayd orders refund'",
                               order.order_id)
        return "user_mismatch", order.order_id
    channel = await channels.get(conn, order.channel_id)
    if channel is None:  # orders reference channels, which are only ever soft-removed: a damaged database
        await payments.anomaly(conn, "unknown_channel", f"order {order.order_id} names channel {order.channel_id}, which does not exist", order.order_id)
        return "unknown_channel", order.order_id

    first = order.renews_order_id or order.order_id
    renewal = False
    if order.status in ("paid", "refunded"):
        # The order was paid before: this charge is a renewal (a later charge of its Stars subscription), or
        # a second payment of the same invoice. Either way it pays a new order of the same plan, linked to the first.
        renewal = p.is_recurring and p.is_first_recurring is not True
        if renewal and await stars_store.renewal_for(conn, order.user_id, channel.id) is None:
            # Its renewal was ended here (a revoke, a refund, the channel taken off sale): not granted again.
            await payments.anomaly(conn, "stars_renewal_refused", f"Stars charge {p.charge_id} renews order {first} of user "
                                   f"{order.user_id}, whose renewal was ended (revoked, refunded or off sale): nothing granted; "
                                   "refund it with 'telepayd orders refund'", first)
            return "renewal_refused", order.order_id
        order = await orders.create(
            conn, order_id=orders.new_order_id(), kind=order.kind, user_id=order.user_id, username=p.username or order.username,
            channel_id=order.channel_id, tier_id=order.tier_id, days=order.days, price=order.price, rail="stars",
            renews_order_id=first, list_price=order.list_price, code=order.code,
        )
        if not renewal:  # pre-checkout refuses a paid order: a race of two devices, or an old link
            await payments.anomaly(conn, "stars_repeat_payment", f"order {first} was paid again in Stars (charge {p.charge_id}"
                                   f"{', a second subscription' if p.is_recurring else ''}); granted as order {order.order_id}", first)
    ends_at = await payments.grant(conn, order, channel, config, renewal=renewal)
    if ends_at is not None and order.days:
        await stars_store.set_granted(conn, p.charge_id, ends_at - timedelta(days=order.days), ends_at)
    else:
        await stars_store.set_granted(conn, p.charge_id, None, None)
    if p.is_recurring and order.kind == "subscription" and (renewal or order.renews_order_id is None):
        # editUserStarSubscription names a subscription by its first charge.
        chain = p.charge_id if not renewal else (await stars_store.first_charge(conn, first) or p.charge_id)
        await stars_store.set_renewal(conn, user_id=order.user_id, channel_id=channel.id, charge_id=chain,
                                      until=p.subscription_until)
    return ("renewed" if renewal else "granted"), order.order_id


async def apply_refund(conn: AsyncConnection, charge_id: str, *, source: str, default_language: str) -> str:
    """A Stars charge was refunded (by ``telepayd orders refund`` or a ``refunded_payment`` update): take back
    what is left of what it bought, once, and tell the buyer and the owner."""
    charge = await stars_store.get(conn, charge_id, for_update=True)
    if charge is None:
        await payments.anomaly(conn, "unknown_refund", f"a refund ({source}) of Stars charge {charge_id[:64]!r}, which was never recorded", None)
        return "unknown_charge"
    if not await stars_store.mark_refunded(conn, charge_id):
        return "duplicate"
    order = await orders.get(conn, charge.order_id, for_update=True) if charge.order_id and charge.granted_at else None
    channel = await channels.get(conn, order.channel_id) if order is not None else None
    if order is None or channel is None:  # refused (another user's, a wrong amount): its order is not touched
        logger.info("Stars charge %s refunded (%s); it had granted nothing", charge_id, source)
        return "refunded"
    await orders.set_status(conn, order.order_id, "refunded")
    if charge.is_recurring:  # Telegram ends a subscription whose charge is refunded
        await stars_store.end_renewal(conn, user_id=order.user_id, channel_id=channel.id)
    outcome = await payments.take_back(conn, order, channel, charge, default_language)
    logger.info("Stars charge %s of order %s refunded (%s): %s", charge_id, order.order_id, source, outcome)
    return outcome

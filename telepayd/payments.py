"""The money rules (docs/DESIGN.md): how an IPN changes an order, applied once, in one transaction with its effects.

Status order: waiting < confirming < confirmed < sending < partially_paid < finished; failed, expired and
refunded are final. Each (payment_id, status) is applied once; an older status after a newer one changes
nothing; each distinct finished payment_id grants once. The IPN's top-level price_amount and price_currency
must equal the order's, or nothing is granted and an anomaly is recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

from psycopg import AsyncConnection

from .config import Config
from .languages import texts_of
from .numbers import ascii_int
from .store import anomalies, channels, orders, payments, subscriptions
from .store import outbox as outbox_store

logger = logging.getLogger(__name__)

STATUS_RANK = {"waiting": 0, "confirming": 1, "confirmed": 2, "sending": 3, "partially_paid": 4, "finished": 5}
FINAL_STATUSES = frozenset({"failed", "expired", "refunded"})
KNOWN_STATUSES = frozenset(STATUS_RANK) | FINAL_STATUSES
# Outcomes that refuse a status (an anomaly is recorded): nothing of the payment changed.
REFUSALS = frozenset({"unknown_order", "price_mismatch", "payment_order_mismatch", "unknown_channel"})


# The smallest invoice a discount may leave: NowPayments refuses invoices below about a dollar (its minimum
# depends on the coin the buyer picks); Telegram's smallest price is one Star.
MIN_DISCOUNTED_USD = Decimal("1.00")
MIN_DISCOUNTED_STARS = 1


def discounted(price: Decimal, percent: int, rail: str) -> Decimal:
    """``price`` less ``percent``, rounded half up to cents (USD) or whole Stars, never below the provider's
    minimum nor above ``price``."""
    off = price * (100 - percent) / 100
    if rail == "stars":
        return min(price, max(Decimal(MIN_DISCOUNTED_STARS), off.quantize(Decimal(1), ROUND_HALF_UP)))
    return min(price, max(MIN_DISCOUNTED_USD, off.quantize(Decimal("0.01"), ROUND_HALF_UP)))


class InvalidIpn(ValueError):
    """The IPN is signed but not usable; the message names the field."""


@dataclass(frozen=True)
class Ipn:
    payment_id: int
    payment_status: str
    order_id: str
    price_amount: Decimal
    price_currency: str
    actually_paid: Decimal | None
    pay_currency: str


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def parse_ipn(document: dict[str, Any]) -> Ipn:
    """Read the top-level fields we act on (nested values are not covered by the signature: never used)."""
    payment_id = document.get("payment_id")
    if isinstance(payment_id, str):
        payment_id = ascii_int(payment_id)
    if isinstance(payment_id, bool) or not isinstance(payment_id, int) or not 0 < payment_id < 2**63:
        raise InvalidIpn("Field 'payment_id' must be a positive integer.")
    status = document.get("payment_status")
    if not isinstance(status, str) or status not in KNOWN_STATUSES:
        raise InvalidIpn(f"Field 'payment_status' must be one of {', '.join(sorted(KNOWN_STATUSES))}.")
    order_id = document.get("order_id")
    if not isinstance(order_id, str) or not 0 < len(order_id) <= 64 or "\x00" in order_id:
        raise InvalidIpn("Field 'order_id' must be a string of 1 to 64 characters (no NUL).")
    price = _decimal(document.get("price_amount"))
    if price is None:
        raise InvalidIpn("Field 'price_amount' must be a number.")
    currency = document.get("price_currency")
    if not isinstance(currency, str) or not 0 < len(currency) <= 16 or "\x00" in currency:
        raise InvalidIpn("Field 'price_currency' must be a currency code.")
    pay_currency = document.get("pay_currency")
    if isinstance(pay_currency, str) and (len(pay_currency) > 32 or "\x00" in pay_currency):
        raise InvalidIpn("Field 'pay_currency' must be a currency code.")
    return Ipn(
        payment_id=payment_id,
        payment_status=status,
        order_id=order_id,
        price_amount=price,
        price_currency=currency.lower(),
        actually_paid=_decimal(document.get("actually_paid")),
        pay_currency=pay_currency if isinstance(pay_currency, str) else "",
    )


def ignored_because(current: str | None, incoming: str) -> str | None:
    """Why an IPN saying ``incoming`` changes nothing for a payment whose status is ``current`` (None for a
    payment not seen before); None when it applies. Statuses only move forward, final ones never change,
    and after ``finished`` only ``refunded`` does anything."""
    if current is None:
        return None
    if current in FINAL_STATUSES:
        return f"ignored: {current} is final"
    if incoming not in FINAL_STATUSES and STATUS_RANK[incoming] <= STATUS_RANK[current]:
        return f"ignored: older than {current}"
    if current == "finished" and incoming != "refunded":
        return "ignored: finished can only be refunded"
    return None


async def apply_ipn(conn: AsyncConnection, ipn: Ipn, body: str, config: Config, *, source: str = "ipn") -> str:
    """Apply one verified payment status inside the caller's transaction; return the outcome recorded for it.
    ``source``: 'ipn' (a signed callback) or 'reconcile' (NowPayments' API answered it): the same rules."""
    event_id = await payments.record_event(
        conn, payment_id=ipn.payment_id, status=ipn.payment_status, order_id=ipn.order_id, body=body, source=source
    )
    if event_id is None:
        return "duplicate"
    outcome = await _apply(conn, ipn, config)
    if source != "ipn" and outcome in REFUSALS:
        # Our own lookup that the rules refused is not kept as the (payment, status) seen: the signed IPN
        # of that status, if it comes, is then judged on its own (the anomaly stays).
        await payments.forget_event(conn, event_id)
    else:
        await payments.set_event_outcome(conn, event_id, outcome)
    return outcome


async def anomaly(conn: AsyncConnection, kind: str, detail: str, order_id: str | None) -> None:
    """A decision off the happy path: a row in ``anomalies`` and a WARNING line."""
    logger.warning("anomaly %s: %s", kind, detail)
    await anomalies.record(conn, kind, detail, order_id=order_id)


async def _apply(conn: AsyncConnection, ipn: Ipn, config: Config) -> str:
    order = await orders.get(conn, ipn.order_id, for_update=True)  # serialises every IPN of one order
    if order is None:
        await anomaly(conn, "unknown_order", f"IPN for unknown order {ipn.order_id!r} (payment {ipn.payment_id})", ipn.order_id)
        return "unknown_order"
    if ipn.price_amount != order.price or ipn.price_currency != order.currency:
        await anomaly(
            conn, "price_mismatch",
            f"order {order.order_id}: IPN says {ipn.price_amount} {ipn.price_currency}, order is {order.price} {order.currency}"
            f" (payment {ipn.payment_id}, status {ipn.payment_status})",
            order.order_id,
        )
        return "price_mismatch"

    payment = await payments.get_for_update(conn, ipn.payment_id)
    if payment is not None and payment.order_id != order.order_id:
        await anomaly(conn, "payment_order_mismatch", f"payment {ipn.payment_id} moved from {payment.order_id} to {order.order_id}", order.order_id)
        return "payment_order_mismatch"
    ignored = ignored_because(payment.status if payment is not None else None, ipn.payment_status)
    if ignored:
        return ignored
    await payments.upsert(
        conn, payment_id=ipn.payment_id, order_id=order.order_id, status=ipn.payment_status,
        actually_paid=ipn.actually_paid, pay_currency=ipn.pay_currency,
    )
    channel = await channels.get(conn, order.channel_id)
    if channel is None:  # orders reference channels, which are only ever soft-removed: a damaged database
        await anomaly(conn, "unknown_channel", f"order {order.order_id} names channel {order.channel_id}, which does not exist", order.order_id)
        return "unknown_channel"
    status = ipn.payment_status
    if status == "finished":
        if not await payments.mark_granted(conn, ipn.payment_id):
            return "already granted"
        ends_at = await grant(conn, order, channel, config)
        if ends_at is not None and order.days:
            await payments.set_granted_window(conn, ipn.payment_id, ends_at - timedelta(days=order.days), ends_at)
        return "granted"
    default = config.bot.default_language
    if status == "partially_paid":
        buyer = await texts_of(conn, order.user_id, default)
        await outbox_store.enqueue_message(
            conn, order.user_id, buyer.partially_paid(channel.title, ipn.actually_paid, ipn.pay_currency, order.price))
    elif status in ("failed", "expired"):
        # One payment of the order ended unpaid. The order ends with it only when nothing else of it was
        # paid or is still under way (a buyer who switched coins pays with another payment).
        if order.status in ("paid", "refunded") or await payments.order_has_other_live_payment(conn, order.order_id, ipn.payment_id):
            return f"status {status}: another payment of the order is paid or under way"
        await orders.set_status(conn, order.order_id, status)
        buyer = await texts_of(conn, order.user_id, default)
        tell = buyer.payment_failed if status == "failed" else buyer.payment_expired
        await outbox_store.enqueue_message(conn, order.user_id, tell(channel.title))
    elif status == "refunded":
        await orders.set_status(conn, order.order_id, "refunded")
        if payment is not None and payment.granted_at is not None:
            return await take_back(conn, order, channel, payment, default)
        owner = await texts_of(conn, channel.owner_chat_id, default)
        await outbox_store.enqueue_message(conn, channel.owner_chat_id, owner.owner_refund(channel.title, order.price, order.user_id, currency=order.currency))
    return f"status {status}"


class Grant(Protocol):
    """What a payment granted (a NowPayments payment or a Stars charge)."""

    granted_at: datetime | None
    granted_from: datetime | None
    granted_until: datetime | None


async def take_back(conn: AsyncConnection, order: orders.Order, channel: channels.Channel, payment: Grant,
                    default_language: str) -> str:
    """A refund of a payment that granted: the subscription loses what is left of the access that payment
    bought — never what other payments bought, never time already used, nothing after a revoke (which spent
    every earlier grant) — and never ends before now (at now the sweeper removes the member as at
    expiry). The buyer and the owner are told."""
    left = timedelta(0)
    ends_at = None
    if order.kind == "subscription" and order.days:
        state = await subscriptions.get_state_for_update(conn, order.user_id, channel.id)
        revoked_at = state[1] if state else None
        granted_from = payment.granted_from or payment.granted_at  # rows granted before the window was kept
        granted_until = payment.granted_until or (payment.granted_at + timedelta(days=order.days))
        spent = revoked_at is not None and payment.granted_at is not None and revoked_at >= payment.granted_at
        if state is not None and not spent:
            left = max(timedelta(0), granted_until - max(datetime.now(timezone.utc), granted_from))
            left = min(left, timedelta(days=order.days))
        ends_at = await subscriptions.shorten(conn, user_id=order.user_id, channel_id=channel.id, by=left) if left else (state[0] if state else None)
    days_back = round(left.total_seconds() / 86400) if left else 0
    still_active = ends_at is not None and ends_at > datetime.now(timezone.utc)
    buyer = await texts_of(conn, order.user_id, default_language)
    owner = await texts_of(conn, channel.owner_chat_id, default_language)
    to_buyer = (buyer.refunded_buyer(channel.title, order.price, ends_at if still_active else None, taken_back=bool(left),
                                     currency=order.currency)
                if order.kind == "subscription" else buyer.refunded_donation(channel.title, order.price, order.currency))
    await outbox_store.enqueue_message(conn, order.user_id, to_buyer)
    await outbox_store.enqueue_message(conn, channel.owner_chat_id,
                                       owner.owner_refund(channel.title, order.price, order.user_id, days_back, currency=order.currency))
    logger.info("order %s refunded after it granted: %s taken back from user %s in channel %s, now until %s",
                order.order_id, left, order.user_id, channel.id, ends_at)
    return "refunded: access taken back" if left else "refunded"


async def grant(conn: AsyncConnection, order: orders.Order, channel: channels.Channel, config: Config, *,
                renewal: bool = False) -> datetime | None:
    """Mark the order paid and give what it bought; return the subscription's new end (None: a donation).

    The buyer gets a personal join link, except on a ``renewal`` (a Stars subscription charged again) while
    they are still a member: then a message saying until when it runs."""
    await orders.set_status(conn, order.order_id, "paid")
    ends_at = None
    if order.kind == "subscription" and order.days:
        buyer = await texts_of(conn, order.user_id, config.bot.default_language)  # a donor is sent nothing
        still_member = renewal and await subscriptions.is_member(conn, order.user_id, channel.id)
        ends_at = await subscriptions.extend(conn, user_id=order.user_id, channel_id=channel.id, days=order.days,
                                              tier_id=order.tier_id)
        if still_member:
            await outbox_store.enqueue_message(conn, order.user_id, buyer.stars_renewed(channel.title, int(order.price), ends_at))
        else:
            await subscriptions.touch_link(conn, order.user_id, channel.id)
            await outbox_store.enqueue_join_link(
                conn, order.user_id, closed_chat_id=channel.closed_channel_id, title=channel.title,
                hours=config.subscriptions.invite_link_hours, order_id=order.order_id, ends_at=ends_at,
                language=buyer.language,
            )
        logger.info("order %s paid (%s%s): user %s subscribed to channel %s until %s", order.order_id, order.rail,
                    ", a renewal" if renewal else "", order.user_id, channel.id, ends_at)
    else:
        logger.info("order %s paid (%s): donation of %s %s to channel %s", order.order_id, order.rail, order.price,
                    order.currency, channel.id)
    if config.nowpayments.notify_owner_on_ipn or order.rail != "nowpayments":
        owner = await texts_of(conn, channel.owner_chat_id, config.bot.default_language)
        await outbox_store.enqueue_message(conn, channel.owner_chat_id, owner.owner_payment(
            channel.title, order.kind, order.price, order.days, order.user_id, order.username, order.currency, renewal))
    return ends_at

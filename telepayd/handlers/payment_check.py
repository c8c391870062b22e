"""A buyer's "I paid, but have no access": the payment id they send is checked with NowPayments and applied
by the money rules (telepayd/reconcile.py), within a per-user and an overall limit (each check is a call to
NowPayments with our API key)."""

from __future__ import annotations

import logging
import time

from ..config import ReconcileConfig
from ..numbers import MAX_ID, ascii_int
from ..payments import FINAL_STATUSES
from ..reconcile import (
    APPLIED, GRANTED, INVALID, NOT_FOUND, OTHER_ORDER, REFUSED, UNCHANGED, UNREACHABLE, Check, check_payment,
)
from ..security.rate_limit import RateLimiter
from ..store import orders, payments
from .speaking import texts

logger = logging.getLogger(__name__)

# Checks by all buyers together, whatever the per-user limit: a crowd cannot make us hammer NowPayments.
ALL_BUYERS_PER_MINUTE = 60
ALL_BUYERS_BURST = 20
PER_USER_BURST = 5
# Statuses after which NowPayments has nothing new to say (a refund of a finished payment comes as an IPN).
SETTLED = FINAL_STATUSES | {"finished"}
# NowPayments' payment ids are long numbers (10 digits today); anything much shorter is not one.
MIN_DIGITS, MAX_DIGITS = 6, 19


def payment_id_in(text: str | None) -> int | None:
    """The payment id a buyer typed (ASCII digits only, spaces around allowed), else None."""
    text = (text or "").strip()
    if not MIN_DIGITS <= len(text) <= MAX_DIGITS:
        return None
    value = ascii_int(text)
    return value if value is not None and 0 < value <= MAX_ID else None


class PerHourLimit:
    """``per_hour`` checks per user with bursts of ``burst``: the GCRA limiter run on a clock whose minutes
    are hours (so its per-minute rate is a per-hour one), memory-bounded like every limiter."""

    def __init__(self, per_hour: int, burst: int, *, max_users: int = 100_000) -> None:
        self.per_hour = per_hour
        self._limiter = RateLimiter(per_hour, burst, max_clients=max_users, clock=lambda: time.monotonic() / 60)

    def acquire(self, user_id: int) -> float:
        """0.0 when allowed, else the seconds to wait."""
        return self._limiter.acquire(user_id) * 60


class PaymentChecks:
    def __init__(self, deps) -> None:
        self._deps = deps
        self._per_user: PerHourLimit | None = None
        self._all = RateLimiter(ALL_BUYERS_PER_MINUTE, ALL_BUYERS_BURST, max_clients=1)

    def _user_limit(self, settings: ReconcileConfig) -> PerHourLimit:
        if self._per_user is None or self._per_user.per_hour != settings.buyer_checks_per_hour:
            self._per_user = PerHourLimit(settings.buyer_checks_per_hour, min(PER_USER_BURST, settings.buyer_checks_per_hour))
        return self._per_user

    async def answer(self, user_id: int, payment_id: int) -> str:
        """Check ``payment_id`` for ``user_id`` and say what came of it, in a line or two for the buyer. What
        the database already settles (someone else's payment, one that reached its end) costs no lookup."""
        config = self._deps.runtime.config
        # The per-user limit first, for every answer: the database's answers too would tell a stranger
        # which payment ids exist.
        wait = self._user_limit(config.reconcile).acquire(user_id)
        if wait:
            logger.info("payment check by user %s refused: per-user limit (%d an hour)", user_id, config.reconcile.buyer_checks_per_hour)
            return texts.check_too_often(minutes=int(wait // 60) + 1)
        async with self._deps.database.bot_pool.connection() as conn:
            known = await payments.get(conn, payment_id)
            order = await orders.get(conn, known.order_id) if known is not None else None
        if known is not None and order is not None:
            if order.user_id != user_id:
                return texts.check_other_order(payment_id)
            if known.status in SETTLED:
                return describe(Check(UNCHANGED, payment_id, order.order_id, known.status, kind=order.kind))
        if self._all.acquire("all"):
            logger.warning("payment check by user %s refused: %d checks a minute by all buyers reached", user_id, ALL_BUYERS_PER_MINUTE)
            return texts.CHECK_BUSY
        check = await check_payment(self._deps.database.bot_pool.connection, self._deps.nowpayments, config,
                                    payment_id, user_id=user_id)
        logger.info("payment check by user %s: payment %s (order %s): %s%s", user_id, payment_id, check.order_id,
                    check.outcome, f" ({check.rules or check.detail})" if check.rules or check.detail else "")
        self._deps.runtime.metrics.instruments.count_reconciled(check.outcome)
        if check.outcome in (GRANTED, APPLIED):
            self._deps.wake_outbox()
        return describe(check)


def describe(check: Check) -> str:
    """What a buyer is told: precise, short, and nothing about other people's orders."""
    payment = check.payment_id
    if check.outcome == NOT_FOUND:
        return texts.check_not_found(payment)
    if check.outcome == OTHER_ORDER:
        return texts.check_other_order(payment)
    if check.outcome in (UNREACHABLE, INVALID):
        return texts.CHECK_UNREACHABLE
    if check.outcome == REFUSED:
        return texts.check_refused(payment)
    donation = check.kind == "donation"
    if check.outcome == GRANTED:
        return texts.check_donation_received(payment) if donation else texts.check_granted(payment)
    status = check.status or ""
    if status == "finished":  # UNCHANGED: it granted before (an IPN, or an earlier check)
        return texts.check_donation_received(payment) if donation else texts.check_already_granted(payment)
    if status == "waiting":
        return texts.check_waiting(payment)
    if status in ("confirming", "confirmed", "sending"):
        return texts.check_confirming(payment, status)
    if status == "partially_paid":
        return texts.check_partially_paid(payment)
    if status in ("failed", "expired"):
        return texts.check_failed(payment, status)
    if status == "refunded":
        return texts.check_refunded(payment)
    assert check.outcome in (APPLIED, UNCHANGED)
    return texts.check_confirming(payment, status)

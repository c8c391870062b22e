"""Reconciliation: ask NowPayments about a payment (``GET /v1/payment/{id}``, the API key only) and apply its
answer through the money rules, exactly as if it had come as an IPN (``source = 'reconcile'``).

Three callers: the sweep (payments no IPN moved for ``[reconcile] stale_after_minutes``, one daemon at a
time), the operator (``telepayd orders reconcile``) and a buyer (``/status``, the "I paid" button). A
payment and a late IPN racing each other are serialised by the order's row lock and recorded once per
(payment, status), so a finished payment grants once whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .backoff import Backoff
from .config import Config
from .nowpayments import NowPaymentsClient, PaymentNotFound, PaymentProviderError
from .payments import REFUSALS, InvalidIpn, apply_ipn, parse_ipn
from .store import anomalies, locks, orders, payments
from .store.pool import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

# What a check came to (the metric's label values; a fixed set).
GRANTED = "granted"          # a finished payment granted now
APPLIED = "applied"          # a new status recorded (confirming, failed, refunded, ...), nothing granted
UNCHANGED = "unchanged"      # nothing new: the status was already recorded, or is older than ours
NOT_FOUND = "not_found"      # NowPayments knows no such payment
OTHER_ORDER = "other_order"  # the payment belongs to another order (or, for a buyer, to someone else)
REFUSED = "refused"          # the money rules refused it (price or currency differs; an anomaly is recorded)
INVALID = "invalid"          # NowPayments answered something we cannot use
UNREACHABLE = "unreachable"  # NowPayments down, slow, 429 or 5xx: try again later
OUTCOMES = (GRANTED, APPLIED, UNCHANGED, NOT_FOUND, OTHER_ORDER, REFUSED, INVALID, UNREACHABLE)

MAX_ANSWER_CHARS = 65536
# NowPayments' invoices can be paid for 7 days; an order still unpaid after that is marked expired.
INVOICE_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class Check:
    outcome: str                # one of OUTCOMES
    payment_id: int
    order_id: str | None = None  # the order the payment belongs to, per NowPayments
    status: str | None = None    # NowPayments' payment_status
    rules: str | None = None     # what the money rules recorded ("granted", "status confirming", "duplicate", ...)
    detail: str = ""             # why, for logs and the operator (never shown to a buyer)
    kind: str = "subscription"   # the order's kind (a donation grants no access)


def _classify(rules: str) -> str:
    if rules == "granted":
        return GRANTED
    if rules == "duplicate" or rules == "already granted" or rules.startswith("ignored"):
        return UNCHANGED
    if rules in REFUSALS:
        return REFUSED
    return APPLIED


Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]  # a pool's .connection, or the CLI's one


async def check_payment(
    connect: Connect, client: NowPaymentsClient, config: Config, payment_id: int, *,
    order_id: str | None = None, user_id: int | None = None, attempts: int = 1,
) -> Check:
    """Fetch ``payment_id`` and apply it, when it belongs to ``order_id`` (the operator, the sweep) or to
    an order of ``user_id`` (a buyer); else say why not. Never raises for NowPayments' sake; database
    errors propagate."""
    try:
        document = await client.get_payment(payment_id, attempts=attempts)
    except PaymentNotFound:
        return Check(NOT_FOUND, payment_id, detail="NowPayments knows no payment with this id")
    except PaymentProviderError as exc:
        # Down, slow, 429, 5xx, or our key refused (401): nothing is known, ask again later. Any other
        # refusal, or an answer we cannot read, concerns this payment only.
        outage = exc.transient or exc.status == 401
        return Check(UNREACHABLE if outage else INVALID, payment_id, detail=str(exc))
    try:
        report = parse_ipn(document)
    except InvalidIpn as exc:
        order = document.get("order_id")
        if order is None or order == "":  # a payment made outside our invoices
            return Check(OTHER_ORDER, payment_id, detail="the payment names no order")
        return Check(INVALID, payment_id, detail=f"NowPayments' answer: {exc}")
    if report.payment_id != payment_id:
        return Check(INVALID, payment_id, detail=f"NowPayments answered about payment {report.payment_id}")
    body = json.dumps(document, separators=(",", ":"))  # ASCII: a lone surrogate in any field stores too
    if len(body) > MAX_ANSWER_CHARS:
        return Check(INVALID, payment_id, detail=f"NowPayments' answer is {len(body)} characters long")
    async with connect() as conn:
        async with conn.transaction():
            order = await orders.get(conn, report.order_id)
            mine = order is not None and (order_id is None or order.order_id == order_id) and (
                user_id is None or order.user_id == user_id)
            if not mine:
                return Check(OTHER_ORDER, payment_id, report.order_id, report.payment_status,
                             detail=f"the payment is for order {report.order_id!r}"
                             + ("" if order is not None else ", which is not one of ours"))
            rules = await apply_ipn(conn, report, body, config, source="reconcile")
            await payments.mark_checked(conn, payment_id)
    return Check(_classify(rules), payment_id, report.order_id, report.payment_status, rules, kind=order.kind)


class ReconcileSweep:
    """Re-checks, one daemon at a time, the payments no IPN has moved for ``[reconcile] stale_after_minutes``.
    NowPayments down or refusing (429, 5xx) ends the round and doubles the wait before the next (up to an
    hour); the sweep never fails for its sake."""

    MOST_BACKOFF_SECONDS = 3600.0

    def __init__(self, pool: AsyncConnectionPool, client: NowPaymentsClient, config: Callable[[], Config], *,
                 ready: Callable[[], bool], wake_outbox: Callable[[], None],
                 on_outcome: Callable[[str], None] = lambda outcome: None,
                 on_error: Callable[[str, BaseException], None] = lambda where, exc: None) -> None:
        self._pool = pool
        self._on_error = on_error
        self._client = client
        self._config = config
        self._ready = ready
        self._wake_outbox = wake_outbox
        self._on_outcome = on_outcome
        self._backoff: Backoff | None = None
        self.last_problem = ""  # NowPayments' last failure, while the sweep backs off ("" when fine)

    async def run(self) -> None:
        while True:
            settings = self._config().reconcile
            wait = float(settings.interval_seconds)
            if settings.enabled and self._ready():
                try:
                    if await self.sweep_once() is False:
                        wait = self._next_backoff(settings.interval_seconds)
                    else:
                        self._backoff = None
                except (PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
                    logger.warning("reconcile: database unavailable (%s)", exc)
            await asyncio.sleep(wait)

    def _next_backoff(self, interval: int) -> float:
        if self._backoff is None:
            self._backoff = Backoff(first=float(interval), most=max(float(interval), self.MOST_BACKOFF_SECONDS))
            self._backoff.next()  # the first wait is the interval itself; back off from the second on
        delay = self._backoff.next()
        logger.warning("reconcile: NowPayments unavailable (%s); next round in %.0f s", self.last_problem, delay)
        return delay

    async def sweep_once(self) -> bool | None:
        """One round, if this daemon holds the lock: None when another daemon does, False when NowPayments
        could not be reached (the round stopped there), True otherwise."""
        settings = self._config().reconcile
        async with self._pool.connection() as lock_conn:
            if not await locks.try_lock(lock_conn, locks.RECONCILE_LOCK):
                return None
            try:
                async with self._pool.connection() as conn:
                    due = await payments.due_for_check(
                        conn, stale_after=timedelta(minutes=settings.stale_after_minutes), limit=settings.batch_size)
                granted = 0
                for payment in due:
                    try:
                        check = await check_payment(self._pool.connection, self._client, self._config(),
                                                    payment.payment_id, order_id=payment.order_id)
                    except (PoolTimeout, *UNAVAILABLE_ERRORS):
                        raise
                    except Exception as exc:  # a bug or a row it cannot handle: the others still get checked
                        # A fixed place name (it is a metric label): the payment id goes in the log line only.
                        logger.warning("reconcile: payment %s of order %s failed unexpectedly", payment.payment_id, payment.order_id)
                        self._on_error("reconcile of a payment", exc)
                        check = Check(INVALID, payment.payment_id, payment.order_id, detail="unexpected error (logged)")
                    self._on_outcome(check.outcome)
                    if check.outcome == UNREACHABLE:
                        # Counted as a check, so that a failure of this payment alone cannot keep it first
                        # in line for ever; the round stops (NowPayments is probably down for all).
                        await self._mark_checked(payment.payment_id)
                        self.last_problem = check.detail
                        return False
                    await self._after(check, payment)
                    granted += check.outcome == GRANTED
                self.last_problem = ""
                if due:
                    logger.info("reconcile: %d stale payment(s) checked, %d granted", len(due), granted)
                return True
            finally:
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await locks.unlock(lock_conn, locks.RECONCILE_LOCK)

    async def _mark_checked(self, payment_id: int) -> None:
        async with self._pool.connection() as conn:
            await payments.mark_checked(conn, payment_id)

    async def _after(self, check: Check, payment: payments.MovingPayment) -> None:
        if check.outcome in (GRANTED, APPLIED):
            logger.info("reconcile: payment %s of order %s is %s at NowPayments: %s",
                        check.payment_id, payment.order_id, check.status, check.rules)
            self._wake_outbox()
            return
        if check.outcome in (UNCHANGED, REFUSED):
            return  # check_payment counted the check
        # Not applied: still counted, so the next check of it waits longer.
        async with self._pool.connection() as conn:
            async with conn.transaction():
                await payments.mark_checked(conn, payment.payment_id)
                if check.outcome == OTHER_ORDER:
                    detail = f"payment {payment.payment_id} of order {payment.order_id}: NowPayments says {check.detail}"
                    logger.warning("anomaly reconcile_order_mismatch: %s", detail)
                    await anomalies.record(conn, "reconcile_order_mismatch", detail, order_id=payment.order_id)
                else:
                    logger.warning("reconcile: payment %s of order %s: %s (%s)",
                                   payment.payment_id, payment.order_id, check.outcome, check.detail)

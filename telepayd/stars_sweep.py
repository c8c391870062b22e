"""The Stars transactions sweep: ``getStarTransactions`` read on one daemon at a time, and every successful
payment of a known order whose update was lost applied through the same money rules (telepayd/stars.py).

Telegram documents the transactions as "in chronological order" and pages them by offset. The sweep keeps
how far it has read (oldest first) and goes on from there, a page behind to see what came in since; it also
reads the first page each round, so the newest are seen whichever way Telegram orders them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool, PoolTimeout
from telegram import Bot, TransactionPartnerUser
from telegram.constants import TransactionPartnerUser as PartnerTypes
from telegram.error import TelegramError

from .backoff import Backoff
from .config import Config
from . import stars
from .store import locks, orders
from .store import stars as stars_store
from .store.pool import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

PAGE = 100  # getStarTransactions' largest page
MAX_PAGES_PER_ROUND = 20  # a long history is read over several rounds
MAX_BACKOFF_SECONDS = 3600.0


class StarsSweep:
    def __init__(self, pool: AsyncConnectionPool, bot: Callable[[], Bot | None], config: Callable[[], Config], *,
                 ready: Callable[[], bool], wake_outbox: Callable[[], None],
                 on_outcome: Callable[[str], None] = lambda outcome: None,
                 on_error: Callable[[str, BaseException], None] = lambda where, exc: None) -> None:
        self._pool = pool
        self._bot = bot
        self._config = config
        self._ready = ready
        self._wake_outbox = wake_outbox
        self._on_outcome = on_outcome
        self._on_error = on_error
        self._backoff = Backoff(first=60.0, most=MAX_BACKOFF_SECONDS)

    async def run(self) -> None:
        while True:
            wait = float(self._config().stars.sweep_interval_seconds)
            try:
                bot = self._bot()
                # Also with [stars] enabled = false: Stars already sold may still have a payment or refund to apply.
                if self._ready() and bot is not None:
                    await self.sweep_once(bot)
                    self._backoff.reset()
            except (PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
                logger.warning("Stars sweep: database unavailable (%s)", exc)
            except TelegramError as exc:
                wait = max(wait, self._backoff.next())
                logger.warning("Stars sweep: Telegram did not answer getStarTransactions (%s); next try in %.0f s", exc, wait)
            await asyncio.sleep(wait)

    async def sweep_once(self, bot: Bot) -> int:
        """One round, if this daemon holds the lock and any Stars order exists; return how many lost payments
        it applied. One connection throughout (the lock's session), so the sweep never holds two."""
        async with self._pool.connection() as conn:
            # Autocommit: the lock is the session's, reads hold no transaction across Telegram's answers, and
            # each payment applied is a transaction of its own.
            await conn.set_autocommit(True)
            try:
                if not await orders.any_stars_order(conn) or not await locks.try_lock(conn, locks.STARS_LOCK):
                    return 0
                try:
                    return await self._round(conn, bot)
                finally:
                    with contextlib.suppress(Exception):
                        await locks.unlock(conn, locks.STARS_LOCK)
            finally:
                with contextlib.suppress(Exception):
                    await conn.set_autocommit(False)

    async def _round(self, conn, bot: Bot) -> int:
        position = await stars_store.sweep_position(conn)
        start = max(0, position - PAGE)
        # A refund has the id of the charge it refunds: keyed by (id, incoming or not).
        seen: dict[tuple[str, bool], object] = {}
        if start > 0:  # the newest, should Telegram list them first
            for transaction in (await bot.get_star_transactions(offset=0, limit=PAGE)).transactions:
                seen[(transaction.id, transaction.source is not None)] = transaction
        offset = start
        for _ in range(MAX_PAGES_PER_ROUND):
            page = (await bot.get_star_transactions(offset=offset, limit=PAGE)).transactions
            for transaction in page:
                seen.setdefault((transaction.id, transaction.source is not None), transaction)
            offset += len(page)
            if len(page) < PAGE:
                break
        found = [p for p in map(_payment, seen.values()) if p is not None]
        refunds = [stars.storable(t.id, stars.MAX_CHARGE_ID) for t in seen.values() if _is_refund(t)]
        applied = 0
        if found:
            known = await stars_store.known(conn, [payment.charge_id for payment, _ in found])
            # Payments of other payloads (history from before telepayd, other bots' shapes) are not ours to judge.
            ours = await orders.stars_orders_among(conn, list({p.payload for p, _ in found if orders.looks_like_order_id(p.payload)}))
            for payment, body in found:
                if payment.charge_id not in known and payment.payload in ours:
                    applied += await self._one(
                        conn, lambda: stars.apply_charge(conn, payment, body, self._config(), source="sweep"),
                        f"charge {payment.charge_id} of order {payment.payload} (user {payment.user_id}, {payment.amount} XTR)")
        if refunds:
            for charge_id in await stars_store.refundable(conn, refunds):
                applied += await self._one(conn, lambda: stars.apply_refund(
                    conn, charge_id, source="sweep", default_language=self._config().bot.default_language),
                                           f"the refund of charge {charge_id}")
        await stars_store.set_sweep_position(conn, max(offset, position))
        if applied:
            self._wake_outbox()
        return applied

    async def _one(self, conn, apply: Callable[[], Awaitable[str]], what: str) -> int:
        """One lost payment or refund (``apply``), in its own transaction: one that fails is logged and the
        round goes on. Returns 1 when it changed something."""
        try:
            async with conn.transaction():
                outcome = await apply()
        except (PoolTimeout, *UNAVAILABLE_ERRORS):
            raise
        except Exception as exc:
            self._on_error("stars sweep", exc)
            return 0
        self._on_outcome(outcome)
        logger.warning("Stars sweep: %s had not been recorded (its update was lost): %s", what, outcome)
        return 0 if outcome == "duplicate" else 1


def _payment(transaction) -> tuple[stars.StarsPayment, str] | None:
    """A user's invoice payment among the bot's transactions (not refunds, gifts, withdrawals...)."""
    source = transaction.source
    if not isinstance(source, TransactionPartnerUser) or source.transaction_type != PartnerTypes.INVOICE_PAYMENT:
        return None
    if not source.invoice_payload or not transaction.id or transaction.amount <= 0:
        return None
    payment = stars.StarsPayment(
        charge_id=stars.storable(transaction.id, stars.MAX_CHARGE_ID), payload=stars.storable(source.invoice_payload, 128),
        user_id=source.user.id,
        currency=stars.CURRENCY, amount=transaction.amount, is_recurring=source.subscription_period is not None,
        subscription_until=(transaction.date + source.subscription_period) if source.subscription_period else None,
        username=source.user.username,
    )
    return payment, stars.storable(json.dumps(transaction.to_dict(), sort_keys=True, default=str), 10_000)


def _is_refund(transaction) -> bool:
    """An invoice payment given back to its user (its id is the charge's)."""
    receiver = transaction.receiver
    return (transaction.source is None and isinstance(receiver, TransactionPartnerUser)
            and receiver.transaction_type == PartnerTypes.INVOICE_PAYMENT and bool(transaction.id))

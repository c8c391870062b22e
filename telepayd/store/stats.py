"""Figures read from the database for ``GET /metrics``: small grouped queries on partial or time indexes,
the same from every daemon on the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from psycopg import AsyncConnection

from .payments import MOVING_STATUSES


@dataclass
class Snapshot:
    outbox_pending: dict[str, int] = field(default_factory=dict)      # by kind (due now or waiting to retry)
    outbox_oldest_due_seconds: float = 0.0                             # the oldest waiting message, since queued
    # The oldest payment in each status not yet finished or final, since that status came (abandoned
    # checkouts sit in waiting; money on its way sits in confirming, confirmed, sending).
    oldest_moving_payment_seconds: dict[str, float] = field(default_factory=dict)
    active_subscriptions: dict[tuple[int, int], int] = field(default_factory=dict)  # (channel key, tier number)
    anomalies: dict[str, int] = field(default_factory=dict)            # by kind, since the database began
    invoices_last_day: int = 0                                         # orders given an invoice in 24 h
    last_ipn_at: datetime | None = None                                # the last IPN received (any daemon)


async def snapshot(conn: AsyncConnection) -> Snapshot:
    """Every database figure, in the caller's transaction (one consistent view)."""
    found = Snapshot()
    # The plans' costs pass PostgreSQL's JIT threshold on a large table, and compiling them takes longer
    # (~250 ms) than running them: off for this transaction.
    await conn.execute("SET LOCAL jit = off")
    # Every pending message is due from the moment it is queued; a retry only defers it (Telegram down, a
    # 429), so its wait counts from the queueing: counted from the retry, a message Telegram refuses every
    # 30 s would never look old.
    cursor = await conn.execute(
        "SELECT kind, count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
        " FROM outbox WHERE status = 'pending' GROUP BY kind")
    for kind, count, oldest in await cursor.fetchall():
        found.outbox_pending[kind] = int(count)
        found.outbox_oldest_due_seconds = max(found.outbox_oldest_due_seconds, float(oldest))
    cursor = await conn.execute(
        "SELECT status, extract(epoch FROM now() - min(updated_at)) FROM payments WHERE status = ANY(%s) GROUP BY status",
        [list(MOVING_STATUSES)])
    found.oldest_moving_payment_seconds = {status: float(age) for status, age in await cursor.fetchall()}
    # The tier number (1, 2, 3 in the channel's list) of the last plan paid for behind each running
    # subscription (kept on the subscription; a refund does not change it); 0 for one an operator granted
    # and nobody paid for (and, during a rolling upgrade to schema 8, one an older daemon extended).
    cursor = await conn.execute(
        "SELECT r.channel_id, coalesce(t.position, 0), sum(r.n) FROM ("
        " SELECT channel_id, tier_id, count(*) AS n FROM subscriptions WHERE ends_at > now() AND removed_at IS NULL GROUP BY 1, 2) r"
        " LEFT JOIN tiers t ON t.id = r.tier_id GROUP BY 1, 2")
    found.active_subscriptions = {(int(c), int(t)): int(n) for c, t, n in await cursor.fetchall()}
    cursor = await conn.execute("SELECT kind, count(*) FROM anomalies GROUP BY kind")
    found.anomalies = {kind: int(n) for kind, n in await cursor.fetchall()}
    cursor = await conn.execute(
        "SELECT count(*) FROM orders WHERE created_at > now() - interval '24 hours' AND invoice_id IS NOT NULL")
    found.invoices_last_day = int((await cursor.fetchone())[0])
    cursor = await conn.execute("SELECT max(received_at) FROM ipn_events WHERE source = 'ipn'")
    found.last_ipn_at = (await cursor.fetchone())[0]
    return found

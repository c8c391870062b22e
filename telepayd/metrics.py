"""``GET /metrics``: Prometheus' text format through ``prometheus_client``, one registry per daemon.

Two kinds of figures. What this daemon saw (requests, rejections, IPNs, ingest batches, deliveries, Telegram
errors, checks with NowPayments, reloads) is counted as it happens, each observation a dictionary update or
a histogram bucket. What the database holds (the outbox queue, the oldest moving payment, running
subscriptions, anomalies, invoices of the last day, the last IPN) is read at scrape time, at most once per
``SNAPSHOT_SECONDS`` whoever scrapes, within ``SNAPSHOT_TIMEOUT_SECONDS``: those are the same from every
daemon on one database (dashboards take ``max``). No label ever holds a user, order or chat id.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import PoolTimeout

from . import __version__, reconcile, stars
from .store import stats
from .store.payments import MOVING_STATUSES
from .store.pool import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from aiohttp import web

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SNAPSHOT_SECONDS = 5.0
SNAPSHOT_TIMEOUT_SECONDS = 2.0
# /ready's database check: a pooled connection within 2 s, else one of its own (a busy pool is up).
DATABASE_CHECK_SECONDS = 3.0
# Label values that come from outside (an IPN's outcome text) are mapped onto these.
IPN_OUTCOMES = ("granted", "duplicate", "ignored", "applied", "refunded", "already_granted", "price_mismatch",
                "payment_order_mismatch", "unknown_order", "unknown_channel")

# What a check with NowPayments came to (telepayd/reconcile.py's OUTCOMES, and price_mismatch); anything else
# counts as "other", so a caller passing free text cannot grow the label set.
RECONCILE_OUTCOMES = frozenset({*reconcile.OUTCOMES, "price_mismatch"})


# What a Telegram Stars charge or refund came to (telepayd/stars.py).
STARS_OUTCOMES = frozenset({"granted", "renewed", "duplicate", "refunded", "unknown_charge", *stars.REFUSALS})


def ipn_outcome(rules: str) -> str:
    """The money rules' outcome text as a label of a fixed set."""
    if rules.startswith("ignored"):
        return "ignored"
    if rules.startswith("refunded"):
        return "refunded"
    if rules.startswith("status"):
        return "applied"
    if rules == "already granted":
        return "already_granted"
    return rules if rules in IPN_OUTCOMES else "other"


class Instruments:
    """What the daemon's code observes. With metrics off (``[server] metrics = false``) every method
    returns at once: the benchmark compares the two."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=False)
        self.ipns: Counter[tuple[str, str]] = Counter()  # (status, outcome)
        self.webhook_messages: Counter[tuple[str, str]] = Counter()  # (route, accepted|duplicate)
        self.outbox_sent: Counter[str] = Counter()  # by kind
        self.outbox_failed: Counter[str] = Counter()  # by kind, failed for good
        self.outbox_pauses = 0  # 429 retry_after from Telegram
        self.telegram_errors: Counter[tuple[str, str]] = Counter()  # (method, code)
        self.reconciled: Counter[str] = Counter()  # by outcome
        self.stars_payments: Counter[str] = Counter()  # by outcome
        self.last_ipn_at = 0.0  # this daemon's last IPN (Unix time)
        # Whether the last Bot API call failed for everyone's sake (the network, 5xx, the token refused):
        # Telegram lost after start, which the bot's own ready flag (set once, at getMe) does not see.
        self.telegram_failing = False
        self.ipn_seconds = Histogram("telepayd_ipn_handling_seconds", "Time to verify, store and apply one IPN.",
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=self.registry)
        self.ingest_batch = Histogram("telepayd_ingest_batch_size", "Webhook messages stored per group commit.",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=self.registry)
        self.ingest_commit = Histogram("telepayd_ingest_commit_seconds", "Time of one group commit.",
                                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1), registry=self.registry)

    def ipn(self, status: str, rules: str, seconds: float) -> None:
        if self.enabled:
            self.ipns[(status, ipn_outcome(rules))] += 1
            self.ipn_seconds.observe(seconds)
            self.last_ipn_at = time.time()

    def webhook_message(self, route: str, fresh: bool) -> None:
        if self.enabled:
            self.webhook_messages[(route, "accepted" if fresh else "duplicate")] += 1

    def ingest(self, size: int, seconds: float) -> None:
        if self.enabled:
            self.ingest_batch.observe(size)
            self.ingest_commit.observe(seconds)

    def delivered(self, kind: str, sent: bool) -> None:
        if self.enabled:
            (self.outbox_sent if sent else self.outbox_failed)[kind] += 1

    def paused(self) -> None:
        if self.enabled:
            self.outbox_pauses += 1

    def telegram_answer(self, method: str, code: str | None) -> None:
        """One Bot API call: ``code`` None for a success, else the HTTP code of a failure or 'network'."""
        if code is None:
            self.telegram_failing = False
            return
        self.telegram_failing = code in ("network", "401", "404") or code.startswith("5")
        if self.enabled:
            self.telegram_errors[(method[:40], code)] += 1

    def stars_payment(self, outcome: str) -> None:
        """A Stars charge applied (the update or the transactions sweep) or refunded."""
        if self.enabled:
            outcome = "refunded" if outcome.startswith("refunded") else outcome
            self.stars_payments[outcome if outcome in STARS_OUTCOMES else "other"] += 1

    def count_reconciled(self, outcome: str) -> None:
        if self.enabled:
            self.reconciled[outcome if outcome in RECONCILE_OUTCOMES else "other"] += 1


def _counter(name: str, text: str, labels: list[str], counts: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=labels)
    for key, value in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _gauge(name: str, text: str, value: float | None = None, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value, labels=labels)


class DaemonCollector(Collector):
    """Reads the live state of the app at each scrape (the in-memory counters and the last snapshot)."""

    def __init__(self, app: web.Application, snapshot: Callable[[], stats.Snapshot | None]) -> None:
        self._app = app
        self._snapshot = snapshot

    def collect(self) -> Iterator:
        from .app_keys import bot_key, committer_key, database_key, outbox_key, runtime_key, supervisor_key

        app = self._app
        runtime = app[runtime_key]
        counts, seen = runtime.metrics, runtime.metrics.instruments
        info = InfoMetricFamily("telepayd_build", "The running telepayd.")
        info.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield info
        yield _gauge("telepayd_uptime_seconds", "Seconds since this daemon started.", counts.uptime_seconds())
        yield _counter("telepayd_http_requests", "Answered HTTP requests by route and status.", ["route", "status"],
                       {(route, str(code)): n for (route, code), n in counts.requests.items()})
        yield _counter("telepayd_http_rejections", "Requests refused by the security chain or the connection guard, by reason.",
                       ["reason"], dict(counts.rejections))
        yield _counter("telepayd_errors", "Unexpected errors, by where they happened.", ["where"],
                       {where[:60]: n for where, n in counts.errors.items()})
        yield _counter("telepayd_ipns", "IPNs applied, by payment status and outcome.", ["status", "outcome"], dict(seen.ipns))
        yield _gauge("telepayd_last_ipn_received_timestamp_seconds", "When this daemon last received an IPN (0: never since start).",
                     seen.last_ipn_at)
        yield _counter("telepayd_webhook_messages", "Signed webhook messages stored (accepted) or acknowledged again (duplicate).",
                       ["route", "result"], dict(seen.webhook_messages))
        yield _counter("telepayd_outbox_sent", "Messages Telegram accepted, by kind.", ["kind"], dict(seen.outbox_sent))
        yield _counter("telepayd_outbox_failed", "Messages failed for good, by kind.", ["kind"], dict(seen.outbox_failed))
        pauses = CounterMetricFamily("telepayd_outbox_rate_limit_pauses", "Times Telegram answered 429 and delivery paused.")
        pauses.add_metric([], seen.outbox_pauses)
        yield pauses
        yield _counter("telepayd_telegram_errors", "Telegram Bot API calls that failed, by method and HTTP code (or 'network').",
                       ["method", "code"], dict(seen.telegram_errors))
        yield _counter("telepayd_payments_reconciled", "Payments checked with NowPayments' API, by outcome.", ["outcome"],
                       dict(seen.reconciled))
        yield _counter("telepayd_stars_payments", "Telegram Stars charges and refunds applied, by outcome.", ["outcome"],
                       dict(seen.stars_payments))
        reloads = CounterMetricFamily("telepayd_reloads", "Configuration reloads (SIGHUP), by result.", labels=["result"])
        reloads.add_metric(["ok"], counts.reloads)
        reloads.add_metric(["failed"], counts.failed_reloads)
        yield reloads
        yield _gauge("telepayd_reload_failed", "1 while the last reload failed and the previous configuration is kept.",
                     1.0 if runtime.last_reload_error else 0.0)

        database, bot = app[database_key], app[bot_key]
        up = _gauge("telepayd_up", "1 when a dependency is usable, 0 when this daemon runs degraded without it.",
                    labels=["dependency"])
        up.add_metric(["database"], 1.0 if database.schema_ready and not database.problem else 0.0)
        up.add_metric(["telegram"], 1.0 if bot.ready and not seen.telegram_failing else 0.0)
        yield up
        tasks = _gauge("telepayd_task_down", "1 while a background task is down and being restarted.", labels=["task"])
        for name in sorted({"outbox", "sweeper", "reconcile", "stars", *app[supervisor_key].down}):  # each task once
            tasks.add_metric([name], 1.0 if name in app[supervisor_key].down else 0.0)
        yield tasks
        pool_size = _gauge("telepayd_db_pool_connections", "Connections open in a pool.", labels=["pool"])
        pool_used = _gauge("telepayd_db_pool_in_use", "Connections of a pool lent out now.", labels=["pool"])
        pool_waiting = _gauge("telepayd_db_pool_waiting", "Requests waiting for a connection of a pool.", labels=["pool"])
        for name, pool in (("main", database.pool), ("bot", database.bot_pool)):
            numbers = pool.get_stats()
            size = numbers.get("pool_size", 0)
            pool_size.add_metric([name], size)
            pool_used.add_metric([name], size - numbers.get("pool_available", 0))
            pool_waiting.add_metric([name], numbers.get("requests_waiting", 0))
        yield from (pool_size, pool_used, pool_waiting)
        yield _gauge("telepayd_ingest_queued", "Webhook messages waiting for the next group commit.", app[committer_key].depth)
        yield _gauge("telepayd_outbox_leader", "1 on the daemon that delivers the outbox.", 1.0 if app[outbox_key].leader else 0.0)

        found = self._snapshot()
        yield _gauge("telepayd_database_figures_ok", "1 when the database figures below are fresh; 0 when they could not be read.",
                     1.0 if found is not None else 0.0)
        if found is None:
            return
        pending = _gauge("telepayd_outbox_pending", "Messages waiting in the outbox, by kind (database).", labels=["kind"])
        for kind, n in sorted(found.outbox_pending.items()):
            pending.add_metric([kind], n)
        yield pending
        yield _gauge("telepayd_outbox_oldest_due_seconds", "How long the oldest undelivered outbox message has waited since it was queued; retries do not reset it (database).",
                     found.outbox_oldest_due_seconds)
        moving = _gauge("telepayd_payment_oldest_moving_seconds",
                        "Age of the oldest payment in each status not yet finished or final, since that status came (database).",
                        labels=["status"])
        for status in MOVING_STATUSES:  # each status always present (0: none), so a rule sees it appear
            moving.add_metric([status], found.oldest_moving_payment_seconds.get(status, 0.0))
        yield moving
        active = _gauge("telepayd_subscriptions_active", "Running subscriptions by channel key and tier number (0: granted) (database).",
                        labels=["channel", "tier"])
        for (channel, tier), n in sorted(found.active_subscriptions.items()):
            active.add_metric([str(channel), str(tier)], n)
        yield active
        yield _counter("telepayd_anomalies", "Anomalies recorded, by kind (database).", ["kind"], found.anomalies)
        yield _gauge("telepayd_invoices_created_last_day", "Orders given a NowPayments invoice in the last 24 hours (database).",
                     found.invoices_last_day)
        yield _gauge("telepayd_last_ipn_timestamp_seconds", "When the last IPN was received by any daemon (database; 0: never).",
                     found.last_ipn_at.timestamp() if found.last_ipn_at else 0.0)


class Exporter:
    """The ``/metrics`` answer: refresh the database figures when they are older than ``SNAPSHOT_SECONDS``
    (one refresh at a time, bounded), then render the registry."""

    def __init__(self, app: web.Application) -> None:
        from .app_keys import database_key, runtime_key

        self._app = app
        self._database = lambda: app[database_key]
        self._instruments = app[runtime_key].metrics.instruments
        self._log_error = lambda where, exc: app[runtime_key].metrics.log_error(logger, where, exc)
        self._snapshot: stats.Snapshot | None = None
        self._taken = 0.0
        self._refreshing = asyncio.Lock()
        self._background: asyncio.Future[stats.Snapshot | None] | None = None
        self._instruments.registry.register(DaemonCollector(app, lambda: self._snapshot))

    async def figures(self) -> stats.Snapshot | None:
        """The database figures (None while the database is down), read at most once per
        ``SNAPSHOT_SECONDS`` whoever asks: ``/metrics`` and ``/status`` alike."""
        if await self._database_answers():
            await self._refresh()
        else:  # down: its figures are left out, and read afresh by the first caller that finds it back
            self._snapshot, self._taken = None, 0.0
        return self._snapshot

    async def latest_figures(self) -> stats.Snapshot | None:
        """The figures read last, at once (``/status``: polling it must not wait for a read of big tables);
        when they are older than ``SNAPSHOT_SECONDS`` a read starts in the background. Waits only while
        there are none."""
        reading = self._background is not None and not self._background.done()
        if self._snapshot is None and not reading:
            return await self.figures()
        if time.monotonic() - self._taken >= SNAPSHOT_SECONDS and not reading:
            self._background = asyncio.ensure_future(self.figures())
            self._background.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._snapshot

    async def render(self) -> bytes:
        await self.figures()
        return generate_latest(self._instruments.registry)

    async def _database_answers(self) -> bool:
        """``/ready``'s database check (shared by every caller, at most one a second), so that
        ``telepayd_up{dependency="database"}`` follows the database whether or not anyone probes ``/ready``
        (nothing else notices a database lost after start)."""
        try:
            async with asyncio.timeout(DATABASE_CHECK_SECONDS):
                return await self._database().ping()
        except TimeoutError:  # no answer in time: the figures are not read; up says what the last check found
            return False

    async def _refresh(self) -> None:
        if time.monotonic() - self._taken < SNAPSHOT_SECONDS:
            return
        async with self._refreshing:
            if time.monotonic() - self._taken < SNAPSHOT_SECONDS:
                return  # another scrape refreshed it while this one waited
            database = self._database()
            try:
                if not database.schema_ready:
                    raise LookupError("schema not ready")
                async with asyncio.timeout(SNAPSHOT_TIMEOUT_SECONDS):
                    async with database.pool.connection(timeout=SNAPSHOT_TIMEOUT_SECONDS) as conn:
                        async with conn.transaction():
                            self._snapshot = await stats.snapshot(conn)
            except (TimeoutError, PoolTimeout, LookupError, *UNAVAILABLE_ERRORS) as exc:
                logger.info("metrics: database figures not read (%s)", exc.__class__.__name__)
                self._snapshot = None
            except Exception as exc:  # a bug in a query must not make the scrape a 500: the figures go
                self._log_error("metrics database figures", exc)
                self._snapshot = None
            self._taken = time.monotonic()

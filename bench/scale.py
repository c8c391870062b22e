"""Scale: what telepayd's work costs on a database with years of history, beside the same work on an empty one.

One throwaway PostgreSQL, two databases at schema 7 (before issue 14's migrations). Both get the *workload*
(what the figures act on: 10,000 subscriptions due a reminder or a removal, a day of rows past retention, due
outbox messages, orders waiting for their IPN, members with join links, twenty channels); the second is
first seeded with history (``BENCH_SCALE`` = 1: 2,000 channels, a million subscriptions, 3 million orders and
payments, 10 million IPN events, 5 million sent outbox messages, 2 million webhook-ids, 50,000 anomalies).
Then each is migrated (timed), and every figure is taken on both. Printed: both, their ratio, and ``MISSED``
beside a per-request figure more than 1.5x its empty one.

The bot's answers, a join request, an IPN and ``/status`` go through a running daemon on each database (real
HTTP, the emulators), one request at a time, the two databases' samples in turn (a drift of the shared
machine weighs on both alike); the sweep, the outbox's claim, ``orders show --user``, the retention purge and
the metrics' database figures run telepayd's own code in this process (no HTTP path leads to them alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import AsyncConnectionPool

from bench.targets import verdict
from telepayd import admin
from telepayd.config import load as load_config
from telepayd.store import outbox as outbox_store
from telepayd.store import schema, stats, webhook_messages
from telepayd.sweeper import Sweeper
from tests.emulators.nowpayments_api import ipn_body, sign_ipn
from tests.harness import Daemon, TelegramUser, http_post
from tools.local_config import ConfigFiles
from tools.local_stack import local_stack

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
SAMPLES = int(os.environ.get("BENCH_SCALE_SAMPLES", "100"))  # per per-request figure
WARMUP = 3  # requests of each kind first, not counted (the daemon's first answers pay for imports and caches)


def _scaled(n: int, least: int) -> int:
    return max(least, int(n * SCALE))


@dataclass(frozen=True)
class History:
    channels: int = _scaled(2_000, 20)
    subscriptions: int = _scaled(1_000_000, 1_000)
    orders: int = _scaled(3_000_000, 3_000)         # and as many payments
    ipn_events: int = _scaled(10_000_000, 10_000)
    sent_outbox: int = _scaled(5_000_000, 5_000)    # within the 30 days kept
    webhook_ids: int = _scaled(2_000_000, 2_000)    # within the 7 days kept
    anomalies: int = _scaled(50_000, 50)


@dataclass(frozen=True)
class Workload:
    reminders: int = _scaled(5_000, 500)     # subscriptions ending within a day, not reminded yet
    removals: int = _scaled(5_000, 500)      # ended, not removed yet
    due_outbox_seeded: int = _scaled(100_000, 1_000)
    due_outbox_empty: int = 1_000
    purge_outbox: int = _scaled(5_000_000 // 30, 200)   # a day of sent messages past the 30 days kept
    purge_ids: int = _scaled(2_000_000 // 7, 200)       # a day of webhook-ids past the 7 days kept
    channels: int = 20                                # what an "empty" database sells: two pages of /start
    samples: int = SAMPLES + WARMUP


FIRST_CHANNEL_OPEN = -1001000000000
BENCH_USER = 8_000_000_000          # users of the per-request figures (ids above the history's)
JOIN_USER = 8_100_000_000
IPN_USER = 8_200_000_000
DUE_USER = 8_300_000_000
HISTORY_USER = 6_000_000_000
HISTORY_USERS = 600_000


def _history_sql(h: History) -> list[tuple[str, str]]:
    users = min(HISTORY_USERS, h.subscriptions)
    return [
        ("channels and plans", f"""
            INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title)
            SELECT {FIRST_CHANNEL_OPEN} - n, -1002000000000 - n, 555000000 + n, 'Channel ' || n
            FROM generate_series(1, {h.channels}) n;
            INSERT INTO tiers (channel_id, position, price, days, stars_price)
            SELECT c.id, p, 4.99 * p + 5, 30 * p, CASE WHEN c.id % 4 = 0 THEN 250 * p END
            FROM channels c CROSS JOIN LATERAL generate_series(1, 1 + (c.id % 3)::int) p"""),
        # Subscription i: user i mod 600,000 in a channel of their own choosing (each pair once). 70% ended
        # and removed over the last three years; 30% running, ending over the next 90 days (those within the
        # reminder window already reminded, as a sweep a minute would have done).
        ("subscriptions", f"""
            INSERT INTO subscriptions (user_id, channel_id, ends_at, removed_at, reminded_days, last_link_at)
            SELECT {HISTORY_USER} + i % {users}, (SELECT min(id) FROM channels) + ((i % {users}) * 31 + i / {users}) % {h.channels},
                   e.ends_at, CASE WHEN i % 10 < 7 THEN e.ends_at END,
                   CASE WHEN e.ends_at < now() + interval '1 day' THEN '{{3,1}}'::int[]
                        WHEN e.ends_at < now() + interval '3 days' THEN '{{3}}'::int[] ELSE '{{}}' END,
                   e.ends_at - interval '30 days'
            FROM generate_series(0, {h.subscriptions} - 1) i
            CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 < 7 THEN now() - make_interval(days => 1 + i % 1095)
                                            ELSE now() + make_interval(mins => 60 + (i * 7) % (90 * 1440)) END AS ends_at) e"""),
        # Three orders a subscription, each with its payment (dates spread over three years).
        ("orders", _orders_sql(h)),
        ("payments", """
            INSERT INTO payments (payment_id, order_id, status, actually_paid, pay_currency, granted_at, updated_at,
                                  granted_from, granted_until)
            SELECT 5000000000 + (invoice_id::bigint - 4300000000), order_id, 'finished', price, 'usdttrc20',
                   created_at, created_at, created_at, created_at + make_interval(days => days)
            FROM orders WHERE order_id LIKE 'tp\\_0%'"""),
        # waiting, confirming, finished for each payment, confirmed for some: 10 million in all at scale 1.
        ("IPN events", f"""
            INSERT INTO ipn_events (payment_id, payment_status, order_id, body, outcome, received_at)
            SELECT p.payment_id, st.status, p.order_id,
                   '{{"payment_id":' || p.payment_id || ',"payment_status":"' || st.status || '","order_id":"'
                   || p.order_id || '","price_amount":9.99,"price_currency":"usd","pay_currency":"usdttrc20"}}',
                   CASE st.status WHEN 'finished' THEN 'granted' ELSE 'applied' END,
                   p.updated_at - make_interval(mins => 10 * (4 - st.n))
            FROM payments p
            CROSS JOIN LATERAL (VALUES (1, 'waiting'), (2, 'confirming'), (3, 'confirmed'), (4, 'finished')) st(n, status)
            WHERE st.n <> 3 OR p.payment_id % 3 = 0
            LIMIT {h.ipn_events}"""),
        ("join links", f"""
            INSERT INTO join_links (invite_link, order_id, user_id, chat_id, expires_at, created_at, approved_at, revoked_at)
            SELECT 'https://t.me/+h' || md5(o.order_id), o.order_id, o.user_id, c.closed_channel_id,
                   o.created_at + interval '24 hours', o.created_at, o.created_at + interval '5 minutes',
                   CASE WHEN o.created_at < now() - interval '30 days' THEN o.created_at + interval '30 days' END
            FROM orders o JOIN channels c ON c.id = o.channel_id WHERE o.order_id LIKE 'tp\\_0%'
              AND o.invoice_id::bigint - 4300000000 < {h.subscriptions}"""),
        ("sent outbox", f"""
            INSERT INTO outbox (kind, chat_id, payload, status, attempts, next_attempt_at, created_at, sent_at, priority)
            SELECT 'message', {HISTORY_USER} + n % {users}, '{{"text": "Your subscription to Channel ends in 3 days."}}',
                   'sent', 1, t.at, t.at, t.at + interval '1 second', 1
            FROM generate_series(1, {h.sent_outbox}) n
            CROSS JOIN LATERAL (SELECT now() - make_interval(secs => (n::float8 / {h.sent_outbox}) * 29.5 * 86400) AS at) t"""),
        ("webhook-ids", f"""
            INSERT INTO webhook_messages (webhook_id, route, received_at)
            SELECT 'msg_' || md5(n::text), 'notification', now() - make_interval(secs => (n::float8 / {h.webhook_ids}) * 6.5 * 86400)
            FROM generate_series(1, {h.webhook_ids}) n"""),
        ("anomalies", f"""
            INSERT INTO anomalies (kind, order_id, detail, created_at)
            SELECT (ARRAY['price_mismatch', 'unknown_order', 'intruder_join_request', 'late_payment'])[1 + n % 4],
                   'tp_' || lpad(to_hex(n), 20, '0'), 'seeded', now() - make_interval(hours => n % 26000)
            FROM generate_series(1, {h.anomalies}) n"""),
    ]


def _orders_sql(h: History) -> str:
    # Three orders a subscription (rounds k = 0, 1, 2).
    return f"""
        WITH subs AS (
            SELECT row_number() OVER (ORDER BY user_id, channel_id) - 1 AS i, user_id, channel_id, ends_at FROM subscriptions
        )
        INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status, invoice_id,
                            invoice_url, created_at, updated_at)
        SELECT 'tp_' || lpad(to_hex(s.i + k * {h.subscriptions}), 20, '0'), 'subscription', s.user_id, s.channel_id, t.id,
               t.days, t.price, 'paid', (4300000000 + s.i + k * {h.subscriptions})::text,
               'https://nowpayments.io/payment/?iid=' || (4300000000 + s.i + k * {h.subscriptions}),
               o.at, o.at
        FROM subs s
        CROSS JOIN generate_series(0, {max(0, h.orders // h.subscriptions - 1)}) k
        -- Spread evenly over three years by number (about 2,700 a day at scale 1), none in the future.
        CROSS JOIN LATERAL (SELECT now() - make_interval(secs => ((s.i * 3 + k) * 7919 % {h.orders})::float8
                                                         / {h.orders} * 3 * 365 * 86400) AS at) o
        JOIN tiers t ON t.channel_id = s.channel_id AND t.position = 1"""


def _workload_sql(w: Workload, due_outbox: int) -> list[tuple[str, str]]:
    return [
        # The channels the figures use: the first 20 of the history's (or 20 of their own when empty).
        ("workload channels", f"""
            INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title)
            SELECT {FIRST_CHANNEL_OPEN} - n, -1002000000000 - n, 555000000 + n, 'Channel ' || n
            FROM generate_series(1, {w.channels}) n
            WHERE NOT EXISTS (SELECT 1 FROM channels);
            INSERT INTO tiers (channel_id, position, price, days)
            SELECT c.id, p, 4.99 * p + 5, 30 * p FROM channels c CROSS JOIN generate_series(1, 2) p
            WHERE NOT EXISTS (SELECT 1 FROM tiers)"""),
        ("workload: reminders and removals due", f"""
            INSERT INTO subscriptions (user_id, channel_id, ends_at)
            SELECT {DUE_USER} + n, (SELECT min(id) FROM channels) + n % {w.channels},
                   CASE WHEN n < {w.reminders} THEN now() + make_interval(mins => 60 + n % 1200)
                        ELSE now() - make_interval(mins => 1 + n % 50) END
            FROM generate_series(0, {w.reminders + w.removals} - 1) n"""),
        ("workload: due outbox messages", f"""
            INSERT INTO outbox (kind, chat_id, payload, created_at, next_attempt_at)
            SELECT 'message', {DUE_USER} + n, '{{"text": "hello"}}', now() - interval '1 minute', now() - interval '1 minute'
            FROM generate_series(1, {due_outbox}) n"""),
        ("workload: a day past retention", f"""
            INSERT INTO outbox (kind, chat_id, payload, status, created_at, sent_at, next_attempt_at)
            SELECT 'message', {DUE_USER} + n, '{{"text": "old"}}', 'sent', t.at, t.at, t.at
            FROM generate_series(1, {w.purge_outbox}) n
            CROSS JOIN LATERAL (SELECT now() - interval '31 days' + make_interval(secs => n::float8 / {w.purge_outbox} * 86000) AS at) t;
            INSERT INTO webhook_messages (webhook_id, route, received_at)
            SELECT 'old_' || n, 'notification', now() - interval '8 days' + make_interval(secs => n::float8 / {w.purge_ids} * 86000)
            FROM generate_series(1, {w.purge_ids}) n"""),
        # Members with a running subscription and an unused join link (one join request each); orders waiting
        # for their IPN; a user with three orders for `orders show --user`.
        ("workload: members, invoices", f"""
            INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status, invoice_id, invoice_url)
            SELECT 'tp_b' || lpad(n::text, 19, '0'), 'subscription', {IPN_USER} + n, c.id, t.id, t.days, t.price, 'invoiced',
                   (4200000000 + n)::text, 'https://nowpayments.io/payment/?iid=' || (4200000000 + n)
            FROM generate_series(1, {w.samples}) n
            JOIN channels c ON c.id = (SELECT min(id) FROM channels) + n % {w.channels}
            JOIN tiers t ON t.channel_id = c.id AND t.position = 1;
            INSERT INTO subscriptions (user_id, channel_id, ends_at)
            SELECT {JOIN_USER} + n, (SELECT min(id) FROM channels) + n % {w.channels}, now() + interval '20 days'
            FROM generate_series(1, {w.samples}) n;
            INSERT INTO join_links (invite_link, user_id, chat_id, expires_at)
            SELECT 'https://t.me/+bench' || n, {JOIN_USER} + n, c.closed_channel_id, now() + interval '1 day'
            FROM generate_series(1, {w.samples}) n JOIN channels c ON c.id = (SELECT min(id) FROM channels) + n % {w.channels};
            INSERT INTO orders (order_id, kind, user_id, channel_id, price, status, created_at)
            SELECT 'tp_u' || lpad(n::text, 19, '0'), 'donation', {HISTORY_USER}, (SELECT min(id) FROM channels), 9.99,
                   'paid', now() - make_interval(days => n)
            FROM generate_series(1, 3) n"""),
    ]


@dataclass
class Figures:
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    migrations: dict[str, float] = field(default_factory=dict)  # seconds each


def _execute(dsn: str, steps: list[tuple[str, str]], log: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Fewer checkpoints while millions of rows are written (a server given this much data would have it).
        conn.execute("ALTER SYSTEM SET max_wal_size = '20GB'")
        conn.execute("ALTER SYSTEM SET checkpoint_timeout = '30min'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '256MB'")
        for name, sql in steps:
            started = time.monotonic()
            conn.execute(sql)
            if log:
                print(f"  seeded {name:<40} {time.monotonic() - started:6.1f} s", flush=True)
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        if log:
            print(f"  VACUUM ANALYZE {'':<33} {time.monotonic() - started:6.1f} s", flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _in_process(files: ConfigFiles, w: Workload, figures: Figures) -> None:
    """The sweep, the outbox's claim, `orders show --user`, the retention purge: telepayd's code, here."""
    config = load_config(files.path)
    dsn = files.dsn
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        # First, as the sweep purges too.
        started = time.perf_counter()
        sent = await outbox_store.purge_sent(conn, config.retention.sent_outbox_days)
        ids = await webhook_messages.purge_ids(conn, config.retention.webhook_ids_days)
        figures.values["purge_s"] = time.perf_counter() - started
        figures.notes["purge"] = f"{sent} messages and {ids} webhook-ids"
        before = await _table_reads(conn, "subscriptions")
    pool = AsyncConnectionPool(dsn, min_size=2, max_size=4, open=False)
    await pool.open()
    try:
        sweeper = Sweeper(pool, lambda: config, ready=lambda: True, wake_outbox=lambda: None)
        started = time.perf_counter()
        await sweeper.sweep_once()
        figures.values["sweep_s"] = time.perf_counter() - started
    finally:
        await pool.close()  # its sessions end: their table statistics are flushed
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await asyncio.sleep(0.5)
        read = await _table_reads(conn, "subscriptions") - before
        left = await (await conn.execute(
            "SELECT count(*) FROM subscriptions WHERE user_id >= %s AND user_id < %s AND removed_at IS NULL"
            " AND (ends_at <= now() OR reminded_days = '{}')", [DUE_USER, DUE_USER + 10**8])).fetchone()
        figures.values["sweep_rows_read"] = read
        figures.notes["sweep"] = f"{w.reminders + w.removals} due, {left[0]} left after one sweep"

        claims = []
        for _ in range(w.samples):
            started = time.perf_counter()
            async with conn.transaction():
                due = await outbox_store.due(conn, 50)
            claims.append(time.perf_counter() - started)
        assert len(due) == 50, len(due)
        figures.values["claim_ms"] = statistics.median(claims) * 1000

        args = argparse.Namespace(action="show", user=HISTORY_USER, order_id=None)
        shows = []
        for _ in range(max(5, w.samples // 4)):
            started = time.perf_counter()
            lines = await admin.orders_command(config, args)
            shows.append(time.perf_counter() - started)
        assert lines and not lines[0].startswith("no orders"), lines
        figures.values["orders_show_ms"] = statistics.median(shows) * 1000

        refreshes = []
        for _ in range(5):
            started = time.perf_counter()
            async with conn.transaction():
                await stats.snapshot(conn)
            refreshes.append(time.perf_counter() - started)
        figures.values["snapshot_ms"] = statistics.median(refreshes) * 1000
        # The daemon must not deliver the due messages while the per-request figures are taken.
        await conn.execute("UPDATE outbox SET next_attempt_at = now() + interval '1 day' WHERE status = 'pending'")
        await conn.execute("VACUUM ANALYZE outbox")
        size, paid = await (await conn.execute(
            "SELECT pg_database_size(current_database()), (SELECT count(*) FROM orders WHERE status = 'paid')")).fetchone()
        figures.values["db_bytes"] = float(size)
        figures.values["paid_orders"] = float(paid)


async def _table_reads(conn: psycopg.AsyncConnection, table: str) -> float:
    row = await (await conn.execute(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = %s",
        [table])).fetchone()
    return float(row[0])


def _reply_seconds(stack, user: TelegramUser, method: str, act) -> float:
    """Seconds from the update's POST to the daemon's call of ``method`` for this user (the emulator's clock)."""
    started = time.time()
    status = act()
    assert status == 200, status
    uid = user.user_id
    calls = stack.emulator.wait_calls(method, where=lambda p: int(p.get("chat_id", p.get("user_id", 0))) == uid
                                      or int(p.get("user_id", 0)) == uid)
    assert calls, f"no {method} for user {uid}"
    return calls[0]["at"] - started


def _through_daemons(stack, phases: list[tuple[ConfigFiles, Figures]], w: Workload) -> None:
    """The per-request figures of both databases, each through its own running daemon, sample by sample in
    turn (empty, seeded, empty, ...): a drift of the shared machine weighs on both alike."""
    daemons = [Daemon(files) for files, _ in phases]
    try:
        kinds = {}
        for daemon, (files, _) in zip(daemons, phases):
            daemon.wait_ready(60)
            kinds[daemon] = _request_kinds(stack, daemon, files, w)
        for name in ("start", "deep_link", "join", "ipn", "status"):
            samples: list[list[float]] = [[] for _ in phases]
            for n in range(1, w.samples + 1):
                for index, daemon in enumerate(daemons):
                    stack.emulator.reset()
                    samples[index].append(kinds[daemon][name](n))
            time.sleep(1)  # what the last ones queued (join links, owners' messages) is delivered meanwhile
            for (_, figures), values in zip(phases, samples):
                values = values[WARMUP:]
                figures.values[f"{name}_p50_ms"] = _percentile(values, 0.5) * 1000
                figures.values[f"{name}_p99_ms"] = _percentile(values, 0.99) * 1000
    finally:
        for daemon in daemons:
            daemon.stop()


def _request_kinds(stack, daemon: Daemon, files: ConfigFiles, w: Workload) -> dict[str, Callable[[int], float]]:
    """One request of each kind (sample ``n``), returning its seconds."""
    with psycopg.connect(files.dsn) as conn:
        first_key, closed = conn.execute(
            "SELECT min(id), (SELECT closed_channel_id FROM channels ORDER BY id LIMIT 1) FROM channels").fetchone()
        pending = conn.execute("SELECT order_id, invoice_id, price FROM orders WHERE order_id LIKE 'tp_b%' ORDER BY 1").fetchall()

    def start(n: int) -> float:
        user = TelegramUser(daemon, BENCH_USER + n)
        return _reply_seconds(stack, user, "sendMessage", lambda: user.send("/start"))

    def deep_link(n: int) -> float:
        user = TelegramUser(daemon, BENCH_USER + 10_000 + n)
        return _reply_seconds(stack, user, "sendMessage", lambda: user.send(f"/start sub_{first_key + n % w.channels}"))

    def join(n: int) -> float:
        member = TelegramUser(daemon, JOIN_USER + n)
        chat = closed - (n % w.channels)  # the closed channel ids go down as keys go up
        return _reply_seconds(stack, member, "approveChatJoinRequest",
                              lambda: member.ask_to_join(chat, f"https://t.me/+bench{n}"))

    def ipn(n: int) -> float:
        order_id, invoice_id, price = pending[n - 1]
        raw = ipn_body({"id": invoice_id, "_price_number": float(price), "price_currency": "usd", "order_id": order_id,
                        "order_description": "bench"}, "finished", 5_900_000_000 + n)
        started = time.perf_counter()
        status, answer = http_post(daemon.base_url + "/webhooks/nowpayments", raw,
                                   {"Content-Type": "application/json", "x-nowpayments-sig": sign_ipn(raw)})
        took = time.perf_counter() - started
        assert status == 200 and json.loads(answer)["outcome"] == "granted", (status, answer)
        return took

    def status(n: int) -> float:
        started = time.perf_counter()
        with urllib.request.urlopen(daemon.base_url + "/status", timeout=10) as response:
            response.read()
        return time.perf_counter() - started

    return {"start": start, "deep_link": deep_link, "join": join, "ipn": ipn, "status": status}


ROWS = [
    # name, label, unit, per-request (target 1.5x)
    ("start_p50_ms", "/start to the channel list, p50", "ms", True),
    ("start_p99_ms", "/start to the channel list, p99", "ms", True),
    ("deep_link_p50_ms", "deep link to a channel's plans, p50", "ms", True),
    ("deep_link_p99_ms", "deep link to a channel's plans, p99", "ms", True),
    ("join_p50_ms", "a join request decided, p50", "ms", True),
    ("join_p99_ms", "a join request decided, p99", "ms", True),
    ("ipn_p50_ms", "a finished IPN applied, p50", "ms", True),
    ("ipn_p99_ms", "a finished IPN applied, p99", "ms", True),
    ("status_p50_ms", "GET /status, p50", "ms", True),
    ("status_p99_ms", "GET /status, p99", "ms", True),
    ("claim_ms", "the outbox's claim of 50 due, p50", "ms", True),
    ("orders_show_ms", "orders show --user, p50", "ms", True),
    ("snapshot_ms", "GET /metrics' database figures, one read", "ms", False),
    ("sweep_s", "a full sweep (reminders and removals)", "s", False),
    ("sweep_rows_read", "  subscriptions rows read by it", "rows", False),
    ("purge_s", "retention purge of a day's worth", "s", False),
]


# The schema this benchmark seeds, before the migrations issue 14 added: those are then applied to the
# seeded database and timed (a migration must be safe on a big table).
SEEDED_SCHEMA = 7


def _new_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


async def _migrate(dsn: str, up_to: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await schema.migrate(conn, up_to=up_to)


async def _timed_migrations(dsn: str) -> dict[str, float]:
    """Each migration after ``SEEDED_SCHEMA``, applied by telepayd's own ``schema.migrate``, with its wall time."""
    took = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for migration in schema.migrations():
            if migration.version > SEEDED_SCHEMA:
                started = time.perf_counter()
                await schema.migrate(conn, up_to=migration.version)
                took[f"{migration.version:04d}_{migration.name}"] = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")  # what autovacuum does after them, done before the figures
        await conn.execute("CHECKPOINT")
    return took


def _prepare(stack, name: str, steps: list[tuple[str, str]], w: Workload, *, log: bool) -> tuple[ConfigFiles, Figures]:
    """A database of its own at schema 7, seeded with ``steps``, migrated (timed), and the figures taken
    in this process; the per-request figures come later, from a daemon on it."""
    dsn = _new_database(stack.cluster.dsn(), f"scale_{name}")
    directory = stack.workdir / name
    directory.mkdir()
    files = ConfigFiles(directory, dsn, api_base=stack.emulator.base_url, settings={
        "webhooks.rate_limit": {"per_minute": 1_000_000, "burst": 1_000_000, "max_clients": 1000},
        "subscriptions": {"sweep_interval_seconds": 3600},
        "logging": {"level": "warning"},
    })
    files.write()
    asyncio.run(_migrate(dsn, SEEDED_SCHEMA))
    started = time.monotonic()
    _execute(dsn, steps, log=log)
    if log:
        print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)
    figures = Figures(migrations=asyncio.run(_timed_migrations(dsn)))
    asyncio.run(_in_process(files, w, figures))
    return files, figures


def main() -> None:
    h, w = History(), Workload()
    print(f"scale (BENCH_SCALE={SCALE:g}): {h.subscriptions:,} subscriptions, {h.orders:,} orders, {h.ipn_events:,} IPN events, "
          f"{h.sent_outbox:,} sent messages, {h.webhook_ids:,} webhook-ids, {h.channels:,} channels, {h.anomalies:,} anomalies",
          flush=True)
    with local_stack("telepayd-scale-") as stack:
        empty = _prepare(stack, "empty", _workload_sql(w, w.due_outbox_empty), w, log=False)
        seeded = _prepare(stack, "seeded", _history_sql(h) + _workload_sql(w, w.due_outbox_seeded), w, log=True)
        _through_daemons(stack, [empty, seeded], w)
    _report(h, w, empty[1], seeded[1])


def _report(h: History, w: Workload, empty: Figures, seeded: Figures) -> None:
    print(f"\n{'figure':<42}{'empty':>11}{'seeded':>11}{'ratio':>8}")
    for name, label, unit, per_request in ROWS:
        a, b = empty.values[name], seeded.values[name]
        ratio = b / a if a else float("inf")
        mark = ""
        if per_request:
            mark = "  target <= 1.5x: " + verdict(ratio <= 1.5, f"scale: {label} within 1.5x")
        fmt = "{:>11.0f}" if unit == "rows" else "{:>11.3f}" if unit == "s" else "{:>11.1f}"
        print(f"{label + ' (' + unit + ')':<42}" + fmt.format(a) + fmt.format(b) + f"{ratio:>8.2f}{mark}")
    print(f"  sweep: empty {empty.notes['sweep']}; seeded {seeded.notes['sweep']}")
    print(f"  purge: empty {empty.notes['purge']}; seeded {seeded.notes['purge']}")
    for name, seconds in seeded.migrations.items():
        print(f"  migration {name}: {empty.migrations[name]:.3f} s on the empty database, {seconds:.3f} s on the seeded one")
    per_thousand = seeded.values["db_bytes"] / (seeded.values["paid_orders"] / 1000)
    print(f"database: {seeded.values['db_bytes'] / 2**30:.2f} GiB for {seeded.values['paid_orders']:,.0f} paid orders with "
          f"their history: {per_thousand / 2**20:.2f} MiB per 1,000 paid orders")


if __name__ == "__main__":
    main()

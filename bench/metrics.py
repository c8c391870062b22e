"""What ``GET /metrics`` costs: the database figures on a seeded database (10,000 subscriptions, 100,000
outbox rows), a scrape through the daemon, and the signed ingest with metrics on against metrics off
(interleaved runs, one machine, one run: ratios, not absolute times)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg

from bench.http import SECONDS, bench_config, run_wrk, running_daemon, write_wrk_script
from bench.targets import verdict
from telepayd.store import stats
from tools.local_config import ConfigFiles
from tools.local_stack import local_stack

SUBSCRIPTIONS = 10_000
OUTBOX_ROWS = 100_000
SCRAPES = 200
# Ingest runs, metrics on (True) and off: on, off, off, on, so that a drift of the shared machine, or the place
# of a run in the sequence, weighs on both alike (with on always first, on/off read 0.90-0.92 where
# on, off, off, on... read 1.00 on the same machine).
ORDER = (True, False, False, True)
SCRAPE_EVERY_SECONDS = 1.0  # while metrics are on, /metrics is scraped (Prometheus' default is every 15 s)


def seed(dsn: str) -> None:
    """Channels with tiers, a paid order behind each running subscription, and an outbox mostly sent."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title)
            SELECT -1001000000000 - n, -1002000000000 - n, 555000000 + n, 'Channel ' || n FROM generate_series(1, 50) n;
            INSERT INTO tiers (channel_id, position, price, days)
            SELECT c.id, p, 9.99 * p, 30 * p FROM channels c, generate_series(1, 3) p;
            INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status, invoice_id, created_at)
            SELECT 'tp_bench' || n, 'subscription', 7000000000 + n, c.id, t.id, t.days, t.price, 'paid', 'inv' || n,
                   now() - make_interval(days => n % 60)
            FROM generate_series(1, %(subs)s) n
            JOIN channels c ON c.id = (SELECT min(id) FROM channels) + n % 50
            JOIN tiers t ON t.channel_id = c.id AND t.position = 1 + n % 3;
            INSERT INTO subscriptions (user_id, channel_id, ends_at)
            SELECT user_id, channel_id, now() + make_interval(days => 1 + (user_id % 80)::int) FROM orders;
            INSERT INTO outbox (kind, chat_id, payload, status, sent_at, next_attempt_at)
            SELECT 'message', 7000000000 + n, '{"text": "hello"}'::jsonb,
                   CASE WHEN n % 100 = 0 THEN 'pending' ELSE 'sent' END, now(), now() + interval '1 hour'
            FROM generate_series(1, %(outbox)s) n;
            ANALYZE;
        """.replace("%(subs)s", str(SUBSCRIPTIONS)).replace("%(outbox)s", str(OUTBOX_ROWS)))


async def snapshot_ms(dsn: str, runs: int = 20) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            async with conn.transaction():
                found = await stats.snapshot(conn)
            times.append(time.perf_counter() - started)
        assert sum(found.active_subscriptions.values()) == SUBSCRIPTIONS, found.active_subscriptions
    return statistics.median(times) * 1000


def per_request_ms(url: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read()
    return (time.perf_counter() - started) / count * 1000


def scrape_costs(files: ConfigFiles) -> None:
    with running_daemon(files, settle=1) as base:
        per_request_ms(base + "/metrics", 5)
        health = per_request_ms(base + "/health", SCRAPES)
        scrape = per_request_ms(base + "/metrics", SCRAPES)
    refresh = asyncio.run(snapshot_ms(files.dsn))
    print(f"GET /metrics with {SUBSCRIPTIONS:,} subscriptions and {OUTBOX_ROWS:,} outbox rows:")
    print(f"  database figures  {refresh:8.2f} ms a refresh (median of 20; at most one every 5 s, whoever scrapes)")
    print(f"  a scrape          {scrape:8.2f} ms, {scrape / health:.1f}x a GET /health ({health:.2f} ms), {SCRAPES} in a row")


def scrape_while(url: str, running: threading.Event) -> None:
    """GET ``url`` every ``SCRAPE_EVERY_SECONDS`` until ``running`` is cleared."""
    while running.is_set():
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read()
        time.sleep(SCRAPE_EVERY_SECONDS)


def ingest_on_off(files: ConfigFiles, workdir) -> None:
    """Signed ingest, metrics on (counted as it happens, and scraped every second) against off."""
    runs: list[tuple[bool, float]] = []
    for enabled in ORDER:
        files.settings["server"] = {"metrics": enabled}
        files.write()
        with psycopg.connect(files.dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE webhook_messages, notifications")
        script = write_wrk_script(workdir, "/webhooks/notification", files.webhook_secrets[0], SECONDS * 12000)
        running = threading.Event()
        with running_daemon(files) as base:
            scraper = threading.Thread(target=scrape_while, args=(base + "/metrics", running))
            try:
                if enabled:
                    running.set()
                    scraper.start()
                runs.append((enabled, run_wrk(base, script)["rps"]))
            finally:
                running.clear()
                if scraper.is_alive():
                    scraper.join(15)
    on = statistics.mean(rps for enabled, rps in runs if enabled)
    off = statistics.mean(rps for enabled, rps in runs if not enabled)
    ratio = on / off
    order = ", ".join(f"{'on' if enabled else 'off'} {rps:.0f}" for enabled, rps in runs)
    print(f"signed ingest, metrics on (scraped every {SCRAPE_EVERY_SECONDS:g} s) vs off; runs in order: {order} req/s")
    print(f"  {on:.0f} vs {off:.0f} req/s, ratio {ratio:.3f} (target >= 0.95: "
          f"{verdict(ratio >= 0.95, 'ingest with metrics within 5% of without')})")


def main() -> None:
    with local_stack("telepayd-bench-metrics-") as stack:
        files = bench_config(stack)
        assert subprocess.run([sys.executable, "-m", "telepayd", "migrate", "-c", str(files.path)],
                              capture_output=True).returncode == 0
        seed(files.dsn)
        scrape_costs(files)
        print()
        ingest_on_off(files, stack.workdir)


if __name__ == "__main__":
    main()

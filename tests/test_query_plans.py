"""Every hot query has an index to use: the money path, the outbox, the sweeps and the bot's lookups run
through the real store functions against small tables with sequential scans disabled, and each statement
they send is EXPLAINed first. A "Seq Scan" of a big table in a plan then means no index fits the query:
on a database with millions of rows it would read them all (docs/DESIGN.md, "The house")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest

from telepayd import payments, stars
from telepayd.config import load
from telepayd.store import channels, orders, outbox, reports, schema, stats, subscriptions, sweeps, trials, users
from telepayd.store import codes as codes_store
from telepayd.store import payments as payments_store
from telepayd.store import stars as stars_store
from telepayd.store import webhook_messages

# The tables that grow without bound (a busy operator keeps years of them).
BIG_TABLES = frozenset({"orders", "payments", "ipn_events", "outbox", "subscriptions", "webhook_messages", "stars_charges",
                        "join_links", "users", "trials", "access_codes", "code_redemptions"})
SKIPPED = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SELECT PG_", "EXPLAIN")


class ExplainingCursor(psycopg.AsyncCursor):
    """Runs ``EXPLAIN (FORMAT JSON)`` of each statement, with its parameters, before the statement itself."""

    plans: list[tuple[str, dict]] = []

    async def execute(self, query, params=None, **kwargs):
        text = query if isinstance(query, str) else bytes(query).decode()
        if not text.lstrip().upper().startswith(SKIPPED):
            plain = psycopg.AsyncCursor(self.connection)
            await plain.execute("EXPLAIN (FORMAT JSON) " + text, params)
            (plan,) = await plain.fetchone()
            ExplainingCursor.plans.append((text, (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]))
        return await super().execute(query, params, **kwargs)


def sequential_scans(plan: dict) -> list[str]:
    """The big tables a plan reads from start to end."""
    found = [plan["Relation Name"]] if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in BIG_TABLES else []
    for child in plan.get("Plans", []):
        found += sequential_scans(child)
    return found


@pytest.fixture
async def conn(database_dsn, tmp_path):
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as connection:
        await schema.migrate(connection)
        # A few rows in every big table, so the planner has something to plan against.
        await connection.execute(
            "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title) VALUES (-1001, -1002, 5, 'T')")
        await channels.replace_tiers(connection, 1, [channels.TierSpec(Decimal("9.99"), 30, 500)])
        for n in range(20):
            await connection.execute(
                "INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status, rail, currency)"
                " VALUES (%s, 'subscription', %s, 1, 1, 30, %s, %s, %s, %s)",
                [f"tp_{n:020d}", 100 + n % 5, 500 if n % 2 else Decimal("9.99"), ["invoiced", "paid"][n % 2],
                 "stars" if n % 2 else "nowpayments", "xtr" if n % 2 else "usd"])
            await connection.execute("INSERT INTO payments (payment_id, order_id, status) VALUES (%s, %s, 'waiting')",
                                     [5000 + n, f"tp_{n:020d}"])
            await connection.execute("INSERT INTO outbox (kind, chat_id, payload, status) VALUES ('message', %s, '{}', %s)",
                                     [100 + n, ["pending", "sent"][n % 2]])
        await connection.execute("ANALYZE")
        connection.cursor_factory = ExplainingCursor
        await connection.execute("SET enable_seqscan = off")
        ExplainingCursor.plans = []
        yield connection


def config(tmp_path):
    from tests.harness import ConfigFiles

    files = ConfigFiles(tmp_path, "postgresql://telepay@localhost/telepay")
    files.write()
    return load(files.path)


async def hot_paths(conn, tmp_path) -> None:
    """What runs per request or per sweep: a buyer, an IPN, a Stars charge, the outbox, the sweeps."""
    cfg = config(tmp_path)
    steps: list[Callable[[], Awaitable[object]]] = [
        # The bot: the channels on sale, a buyer's orders, invoices, status, access.
        lambda: channels.on_sale_page(conn, 0, 10),
        lambda: orders.find_reusable(conn, user_id=101, tier_id=1, rail="stars"),
        lambda: orders.find_reusable_donation(conn, user_id=101, channel_id=1, price=Decimal("5")),
        lambda: orders.created_last_hour(conn, 101),
        lambda: orders.open_for_user(conn, 101, within=timedelta(days=7)),
        lambda: orders.for_user(conn, 101),
        lambda: subscriptions.for_user(conn, 101),
        lambda: subscriptions.has_access(conn, 101, -1002),
        lambda: subscriptions.is_member(conn, 101, 1),
        lambda: subscriptions.get_join_link(conn, "https://t.me/+x"),
        lambda: subscriptions.usable_join_links(conn, 101, -1002),
        lambda: stars_store.renewal_for(conn, 101, 1),
        # The money path: an IPN and a Stars charge, each with all its effects; a refund.
        lambda: payments.apply_ipn(conn, payments.parse_ipn({
            "payment_id": 5000, "payment_status": "finished", "order_id": f"tp_{0:020d}", "price_amount": "9.99",
            "price_currency": "usd"}), "{}", cfg),
        lambda: stars.apply_charge(conn, stars.StarsPayment("stx1", f"tp_{1:020d}", 101, "XTR", 500, True), "{}", cfg,
                                   source="update"),
        lambda: stars.apply_charge(conn, stars.StarsPayment("stx2", f"tp_{1:020d}", 101, "XTR", 500, True), "{}", cfg,
                                   source="sweep"),
        lambda: stars.apply_refund(conn, "stx1", source="update", default_language="en"),
        lambda: stars.apply_charge(conn, stars.StarsPayment("stx3", f"tp_{1:020d}", 101, "XTR", 500, True), "{}", cfg,
                                   source="sweep"),  # a renewal after the refund ended it: refused
        lambda: stars_store.known(conn, ["stx1", "stx9"]),
        lambda: stars_store.refundable(conn, ["stx1", "stx2"]),
        lambda: orders.stars_orders_among(conn, [f"tp_{1:020d}"]),
        lambda: orders.any_stars_order(conn),
        lambda: payments_store.order_has_other_live_payment(conn, f"tp_{0:020d}", 5000),
        # The outbox and the sweeps.
        lambda: outbox.due(conn, 50, skip_chats=[101]),
        lambda: outbox.failed(conn),
        lambda: sweeps.to_remind(conn, [3, 1], datetime.now(timezone.utc)),
        lambda: sweeps.ended(conn),
        lambda: orders.expire_unpaid(conn, older_than=timedelta(days=7)),
        lambda: payments_store.due_for_check(conn, stale_after=timedelta(minutes=30), limit=50),
        lambda: stats.snapshot(conn),  # what /metrics and /status read (every 5 s at most)
        lambda: outbox.purge_sent(conn, 30),
        lambda: webhook_messages.purge_ids(conn, 7),
        # Growth: a user's language, a trial, an access code, the owner's numbers.
        lambda: users.seen(conn, 101, "ru"),
        lambda: users.seen(conn, 101, None),
        lambda: users.language_of(conn, 101),
        lambda: trials.offered(conn, 101, 1),
        lambda: trials.take(conn, 102, 1, 7),
        lambda: codes_store.redeem(conn, "NOSUCHCODE", 101),
        lambda: codes_store.pending_discount(conn, user_id=101, channel_id=1, tier_position=1),
        lambda: reports.owned_channels(conn, 555),
        lambda: reports.channel_figures(conn, 1, datetime(2026, 11, 1, tzinfo=timezone.utc),
                                        datetime(2026, 12, 1, tzinfo=timezone.utc)),
        lambda: reports.paid_orders(conn, channel_id=1, start=datetime(2026, 11, 1, tzinfo=timezone.utc),
                                    end=datetime(2026, 12, 1, tzinfo=timezone.utc)),
    ]
    for step in steps:
        await step()


async def test_every_hot_query_has_an_index_to_use(conn, tmp_path):
    await hot_paths(conn, tmp_path)
    plans = ExplainingCursor.plans
    assert len(plans) > 50, f"only {len(plans)} statements were seen: the cursor factory is not in use"
    scans = [(text, sequential_scans(plan)) for text, plan in plans if sequential_scans(plan)]
    assert not scans, "sequential scans of big tables:\n" + "\n".join(f"{tables}: {text}" for text, tables in scans)


async def test_the_check_sees_a_query_without_an_index(conn):
    await conn.execute("SELECT order_id FROM orders WHERE username = %s", ["alice"])
    await conn.execute("SELECT payment_id FROM payments WHERE actually_paid > %s", [1])
    assert [sequential_scans(plan) for _, plan in ExplainingCursor.plans] == [["orders"], ["payments"]]


def rows_removed(plan: dict) -> int:
    """Rows an executed plan read and threw away (filters, rechecks), all nodes together."""
    removed = sum(int(plan.get(key, 0)) for key in ("Rows Removed by Filter", "Rows Removed by Index Recheck"))
    return removed + sum(rows_removed(child) for child in plan.get("Plans", []))


async def test_the_outbox_claim_does_not_walk_sent_messages(conn):
    """An index that fits is not enough: the claim once walked the primary key through every sent message
    (no sequential scan in its plan, ~1M rows removed by filter). Executed here, the rows it throws away
    must not grow with the sent ones."""
    conn.cursor_factory = psycopg.AsyncCursor
    await conn.execute(
        "INSERT INTO outbox (kind, chat_id, payload, status, sent_at) SELECT 'message', n, '{}', 'sent', now()"
        " FROM generate_series(1, 5000) n")
    await conn.execute(
        "INSERT INTO outbox (kind, chat_id, payload, next_attempt_at) SELECT 'message', n, '{}', now() + interval '1 hour'"
        " FROM generate_series(1, 20) n")  # waiting for a retry (these it does read: see docs/DESIGN.md)
    await conn.execute("INSERT INTO outbox (kind, chat_id, payload, priority) VALUES ('join_link', 7, '{}', 0)")
    await conn.execute("ANALYZE outbox")
    await conn.execute("RESET enable_seqscan")
    claimed = await outbox.due(conn, 50, skip_chats=[101])
    assert [m.kind for m in claimed][:1] == ["join_link"] and len(claimed) == 11  # the 10 pending of the fixture
    cursor = await conn.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= now()"
        " AND (chat_id IS NULL OR NOT chat_id = ANY(%s)) ORDER BY priority, id LIMIT 50", [[101]])
    (plan,) = await cursor.fetchone()
    removed = rows_removed(plan[0]["Plan"])
    assert removed < 100, f"the claim read and threw away {removed} rows:\n{json.dumps(plan, indent=1)[:3000]}"


async def test_the_first_page_of_channels_reads_that_page_not_a_count_of_all(conn):
    """/start showed its first ten channels after counting every channel on sale (2.6 ms with 2,000 of
    them, the /start p50 of bench/scale.py 1.35x the empty database's). Now a page is read with one channel
    more, which says whether a Next button is due; only a page past the end counts, to find the last one."""
    await conn.execute(
        "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title)"
        " SELECT -1001000000000 - n, -1002000000000 - n, 5, 'C' || n FROM generate_series(1, 19) n")  # 20 with the fixture's
    await conn.execute("INSERT INTO tiers (channel_id, position, price, days) SELECT id, 1, 4.99, 30 FROM channels WHERE id > 1")
    ExplainingCursor.plans = []
    shown, page, more = await channels.on_sale_page(conn, 0, 10)
    assert (len(shown), page, more) == (10, 0, True) and [c.id for c in shown] == list(range(1, 11))
    assert not [text for text, _ in ExplainingCursor.plans if "count(" in text], ExplainingCursor.plans
    shown, page, more = await channels.on_sale_page(conn, 1, 10)
    assert (len(shown), page, more) == (10, 1, False) and shown[-1].id == 20  # exactly two pages: no Next on the last
    shown, page, more = await channels.on_sale_page(conn, 7, 10)  # an old button, past the end
    assert (len(shown), page, more) == (10, 1, False)
    for forged in (10**17, 999_999_999_999_999_999):  # a callback's 18 digits: OFFSET would overflow a bigint
        shown, page, more = await channels.on_sale_page(conn, forged, 10)
        assert (len(shown), page, more) == (10, 1, False)
    await conn.execute("UPDATE tiers SET retired_at = now() WHERE channel_id > 1")
    shown, page, more = await channels.on_sale_page(conn, 3, 10)
    assert ([c.id for c in shown], page, more) == ([1], 0, False)


async def test_channels_taken_off_sale_after_the_count_give_the_first_page(conn, monkeypatch):
    """A page past the end counts, then reads the last page: channels taken off sale in between (each
    statement sees its own snapshot) leave that page empty, which must not read as "no channels"."""
    await conn.execute(
        "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title)"
        " SELECT -1001000000000 - n, -1002000000000 - n, 5, 'C' || n FROM generate_series(1, 24) n")
    await conn.execute("INSERT INTO tiers (channel_id, position, price, days) SELECT id, 1, 4.99, 30 FROM channels WHERE id > 1")
    execute = conn.execute

    async def remove_after_the_count(query, *args, **kwargs):
        result = await execute(query, *args, **kwargs)
        if "count(*)" in query:
            await execute("UPDATE channels SET removed_at = now() WHERE id > 5")
        return result

    monkeypatch.setattr(conn, "execute", remove_after_the_count)
    shown, page, more = await channels.on_sale_page(conn, 5, 10)
    assert ([c.id for c in shown], page, more) == ([1, 2, 3, 4, 5], 0, False)

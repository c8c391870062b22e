"""The owner's numbers (issue 13): channel_figures against figures computed here from the rows themselves, and
``telepayd report`` (text, --csv, bad input) on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest

from telepayd import report
from telepayd.store import reports
from telepayd.store.reports import ChannelFigures
from tests.test_buying_e2e import OWNER, add_channel, db, telepayd

UTC = timezone.utc
THIS, LAST = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)   # the month asked for, the one before
AFTER = datetime(2026, 7, 1, tzinfo=UTC)
OTHER_OWNER = 555000222


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def seed(config_files) -> dict[str, int]:
    """Three channels (A and B on sale, C taken off sale), orders, subscriptions, trials and codes in April to
    July 2026 ("now" is later: every month here is over)."""
    a = add_channel(config_files, "9.99:30:500", "24.99:90", title="Premium <Signals>")
    b = add_channel(config_files, "5:30", open_id=-1003333333333, closed_id=-1004444444444, title="Bee")
    c = add_channel(config_files, "7:30", open_id=-1005555555555, closed_id=-1006666666666, title="Gone")
    with psycopg.connect(config_files.dsn, autocommit=True) as conn:
        conn.execute("UPDATE channels SET owner_chat_id = %s WHERE id = %s", [OTHER_OWNER, b])
        tier = {(ch, pos): tid for tid, ch, pos in conn.execute("SELECT id, channel_id, position FROM tiers").fetchall()}
        a1, a2, b1, c1 = tier[(a, 1)], tier[(a, 2)], tier[(b, 1)], tier[(c, 1)]
        count = iter(range(1, 1000))

        def order(user, channel, when, *, tier_id=None, price="9.99", rail="nowpayments", status="paid",
                  kind="subscription", code=None, list_price=None, renews=None) -> str:
            order_id = f"tp_{next(count):020d}"
            conn.execute(
                "INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, currency, status, rail,"
                " created_at, updated_at, code, list_price, renews_order_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [order_id, kind, user, channel, tier_id, 30 if kind == "subscription" else None, Decimal(price),
                 "xtr" if rail == "stars" else "usd", status, rail, when - timedelta(minutes=5), when, code, list_price, renews])
            return order_id

        def sub(user, channel, ends_at, *, tier_id=None, removed=False):
            conn.execute("INSERT INTO subscriptions (user_id, channel_id, ends_at, tier_id, removed_at) VALUES (%s, %s, %s, %s, %s)",
                         [user, channel, ends_at, tier_id, ends_at if removed else None])

        running = datetime.now(UTC) + timedelta(days=20)
        # U1: paid A in April, again in June (renewed), and B in June (new there: a channel of its own).
        order(1, a, at(4, 10), tier_id=a1)
        order(1, a, at(6, 5), tier_id=a1)
        sub(1, a, running, tier_id=a1)
        order(1, b, at(6, 11), tier_id=b1, price="5")
        sub(1, b, running, tier_id=b1)
        # U2: in Stars in June (new), its renewal in July (not in June).
        first = order(2, a, at(6, 3), tier_id=a1, price="500", rail="stars")
        order(2, a, at(7, 3), tier_id=a1, price="500", rail="stars", renews=first)
        sub(2, a, running, tier_id=a1)
        # U3: paid A in May (new in May); the subscription ended in June and was removed (churned in June).
        order(3, a, at(5, 15), tier_id=a2, price="24.99")
        sub(3, a, at(6, 14), tier_id=a2, removed=True)
        # U4: a Stars order refunded in June (not revenue, not new); the refund ended the access that day.
        order(4, a, at(6, 10), tier_id=a1, price="500", rail="stars", status="refunded")
        sub(4, a, at(6, 10), tier_id=a1, removed=True)
        # U5: a donation in June (revenue, not new); an order never paid; one expired.
        order(5, a, at(6, 6), kind="donation", price="20")
        order(5, a, at(6, 7), tier_id=a1, status="invoiced")
        order(5, a, at(6, 8), tier_id=a2, price="24.99", status="expired")
        # U6: an operator's grant, running, nothing paid.
        sub(6, a, running)
        # U7: a trial in June, converted by a payment a week later (new).
        conn.execute("INSERT INTO trials (user_id, channel_id, days, taken_at, ends_at) VALUES (7, %s, 3, %s, %s)",
                     [a, at(6, 2), at(6, 5)])
        order(7, a, at(6, 9), tier_id=a1)
        sub(7, a, running, tier_id=a1)
        # U8: a trial in June, not converted; its access ended in June, not removed yet (churned all the same).
        conn.execute("INSERT INTO trials (user_id, channel_id, days, taken_at, ends_at) VALUES (8, %s, 3, %s, %s)",
                     [a, at(6, 12), at(6, 15)])
        sub(8, a, at(6, 15))
        # U9: paid in May (new), then a trial in May: a payment before the trial is no conversion; ended in May.
        order(9, a, at(5, 1), tier_id=a1)
        conn.execute("INSERT INTO trials (user_id, channel_id, days, taken_at, ends_at) VALUES (9, %s, 3, %s, %s)",
                     [a, at(5, 20), at(5, 23)])
        sub(9, a, at(5, 31), tier_id=a1, removed=True)
        # Codes: A's SPRING (percent) lowered U10's June order; A's GIFT (days) redeemed by U11 in May; B's BCODE
        # by U12 in June.
        conn.execute("INSERT INTO access_codes (code, channel_id, percent, uses) VALUES ('SPRING', %s, 50, 10)", [a])
        conn.execute("INSERT INTO access_codes (code, channel_id, days, uses) VALUES ('GIFT', %s, 7, 10)", [a])
        conn.execute("INSERT INTO access_codes (code, channel_id, days, uses) VALUES ('BCODE', %s, 7, 10)", [b])
        spring = order(10, a, at(6, 4), tier_id=a1, price="4.99", code="SPRING", list_price=Decimal("9.99"))
        conn.execute("INSERT INTO code_redemptions (code, user_id, redeemed_at, order_id) VALUES ('SPRING', 10, %s, %s)",
                     [at(6, 4, 11), spring])
        sub(10, a, running, tier_id=a1)
        conn.execute("INSERT INTO code_redemptions (code, user_id, redeemed_at) VALUES ('GIFT', 11, %s)", [at(5, 25)])
        sub(11, a, running)
        conn.execute("INSERT INTO code_redemptions (code, user_id, redeemed_at) VALUES ('BCODE', 12, %s)", [at(6, 6)])
        # U12 on B: May (new), June (renewed).
        order(12, b, at(5, 10), tier_id=b1, price="5")
        order(12, b, at(6, 9), tier_id=b1, price="5")
        sub(12, b, running, tier_id=b1)
        # U13: two payments in June: the first is new, the second renewed.
        order(13, a, at(6, 1, 0), tier_id=a1)
        order(13, a, at(6, 25), tier_id=a1)
        sub(13, a, running, tier_id=a1)
        # U14: Stars in May (new), then crypto on plan 2 in June (renewed): running on plan 2, rail crypto.
        order(14, a, at(5, 5), tier_id=a1, price="500", rail="stars")
        order(14, a, at(6, 30, 23), tier_id=a2, price="24.99")
        sub(14, a, running, tier_id=a2)
        # U15: revoked: its end is ahead but it was removed (not running, not churned: its end has not come).
        order(15, a, at(4, 2), tier_id=a1)
        sub(15, a, running, tier_id=a1, removed=True)
        # U16: ended on the first instant of July (not June's churn), and on the last of May (May's).
        sub(16, a, AFTER, tier_id=a1, removed=True)
        sub(17, a, THIS - timedelta(microseconds=1), tier_id=a1, removed=True)
        # This month: U19's end is ahead (running, not churned yet), U20's is behind (churned this month).
        now = datetime.now(UTC)
        month_start, month_end = report.month_bounds(None, now)
        order(19, a, at(4, 3), tier_id=a1)
        sub(19, a, now + (month_end - now) / 2, tier_id=a1)
        sub(20, a, month_start + (now - month_start) / 2, tier_id=a1, removed=True)
        # C, taken off sale, was paid in June (in the CSV of every channel, not in the text).
        order(18, c, at(6, 20), tier_id=c1, price="7")
        conn.execute("UPDATE channels SET removed_at = now() WHERE id = %s", [c])
    return {"a": a, "b": b, "c": c}


def expected_figures(config_files, channel_id: int, start: datetime, end: datetime) -> ChannelFigures:
    """The figures computed here, in Python, from every row of the tables (no SQL beyond reading them)."""
    (now,), = db(config_files, "SELECT now()")
    (title,), = db(config_files, "SELECT title FROM channels WHERE id = %s", channel_id)
    position = dict(db(config_files, "SELECT id, position FROM tiers"))
    orders = [dict(zip(("order_id", "kind", "user", "channel", "tier_id", "price", "currency", "status", "rail", "paid_at"), row))
              for row in db(config_files, "SELECT order_id, kind, user_id, channel_id, tier_id, price, currency, status, rail,"
                            " updated_at FROM orders")]
    subs = db(config_files, "SELECT user_id, channel_id, ends_at, removed_at, tier_id FROM subscriptions")
    trials = db(config_files, "SELECT user_id, channel_id, taken_at FROM trials")
    code_channel = dict(db(config_files, "SELECT code, channel_id FROM access_codes"))
    redemptions = db(config_files, "SELECT code, redeemed_at FROM code_redemptions")

    def in_month(moment: datetime) -> bool:
        return start <= moment < end

    paid_subs = sorted((o for o in orders if o["status"] == "paid" and o["kind"] == "subscription" and o["channel"] == channel_id),
                       key=lambda o: (o["paid_at"], o["order_id"]))
    running = [s for s in subs if s[1] == channel_id and s[2] > now and s[3] is None]
    by_tier = Counter("none" if s[4] is None else str(position[s[4]]) for s in running)
    by_rail: Counter[str] = Counter()
    for user, *_ in running:
        theirs = [o for o in paid_subs if o["user"] == user]
        by_rail[theirs[-1]["rail"] if theirs else "none"] += 1
    new = renewed = 0
    seen: set[int] = set()
    for o in paid_subs:
        if in_month(o["paid_at"]):
            if o["user"] in seen:
                renewed += 1
            else:
                new += 1
        seen.add(o["user"])
    revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for o in orders:
        if o["channel"] == channel_id and o["status"] == "paid" and in_month(o["paid_at"]):
            revenue[(o["rail"], o["currency"])] += o["price"]
    taken = [(user, taken_at) for user, ch, taken_at in trials if ch == channel_id and in_month(taken_at)]
    return ChannelFigures(
        channel_id=channel_id, title=title, month_start=start,
        active_by_tier=dict(by_tier), active_by_rail=dict(by_rail),
        new=new, renewed=renewed,
        churned=len([s for s in subs if s[1] == channel_id and in_month(s[2]) and s[2] <= now
                     and not (s[2] > now and s[3] is None)]),
        revenue=dict(revenue),
        trials_taken=len(taken),
        trials_converted=len([u for u, t in taken if any(o["user"] == u and o["paid_at"] > t for o in paid_subs)]),
        codes_redeemed=len([c for c, when in redemptions if code_channel[c] == channel_id and in_month(when)]),
    )


async def _figures(config_files, channel_id: int, start: datetime, end: datetime) -> ChannelFigures:
    async with await psycopg.AsyncConnection.connect(config_files.dsn, autocommit=True) as conn:
        return await reports.channel_figures(conn, channel_id, start, end)


def test_channel_figures_match_the_rows(config_files):
    keys = seed(config_files)
    a, b = keys["a"], keys["b"]
    june = {a: expected_figures(config_files, a, THIS, AFTER), b: expected_figures(config_files, b, THIS, AFTER)}
    may = {a: expected_figures(config_files, a, LAST, THIS), b: expected_figures(config_files, b, LAST, THIS)}
    # The seed is what it says (so that the comparisons below compare something).
    assert june[a].active_by_tier == {"1": 6, "2": 1, "none": 2}
    assert june[a].active_by_rail == {"nowpayments": 6, "stars": 1, "none": 2}
    assert (june[a].new, june[a].renewed, june[a].churned) == (4, 3, 3)           # U2 U7 U10 U13 / U1 U13 U14 / U3 U4 U8
    assert june[a].revenue == {("nowpayments", "usd"): Decimal("89.94"), ("stars", "xtr"): Decimal("500")}
    assert (june[a].trials_taken, june[a].trials_converted, june[a].codes_redeemed) == (2, 1, 1)
    assert (may[a].new, may[a].renewed, may[a].churned, may[a].trials_taken, may[a].trials_converted, may[a].codes_redeemed) \
        == (3, 0, 2, 1, 0, 1)
    assert may[a].revenue == {("nowpayments", "usd"): Decimal("34.98"), ("stars", "xtr"): Decimal("500")}
    assert (june[b].new, june[b].renewed, june[b].codes_redeemed, june[b].active_by_tier) == (1, 1, 1, {"1": 2})
    assert june[b].revenue == {("nowpayments", "usd"): Decimal("10")}

    for key in (a, b):
        assert asyncio.run(_figures(config_files, key, THIS, AFTER)) == june[key]
        assert asyncio.run(_figures(config_files, key, LAST, THIS)) == may[key]
    current = report.month_bounds(None, datetime.now(UTC))
    now_figures = expected_figures(config_files, a, *current)
    assert (now_figures.churned, now_figures.new, now_figures.revenue) == (1, 0, {})   # U20, not U19
    assert asyncio.run(_figures(config_files, a, *current)) == now_figures
    with pytest.raises(LookupError):
        asyncio.run(_figures(config_files, 999, THIS, AFTER))


def test_paid_orders_and_owned_channels(config_files):
    keys = seed(config_files)

    async def read():
        async with await psycopg.AsyncConnection.connect(config_files.dsn, autocommit=True) as conn:
            return (await reports.paid_orders(conn, channel_id=None, start=THIS, end=AFTER),
                    await reports.paid_orders(conn, channel_id=keys["b"], start=THIS, end=AFTER),
                    await reports.owned_channels(conn, OWNER), await reports.owned_channels(conn, OTHER_OWNER),
                    await reports.owned_channels(conn, 42))

    every, of_b, owner, other, nobody = asyncio.run(read())
    expected = db(config_files, "SELECT o.updated_at, o.channel_id, t.position, o.rail, o.currency, o.price, o.user_id, o.code"
                  " FROM orders o LEFT JOIN tiers t ON t.id = o.tier_id WHERE o.status = 'paid'"
                  " AND o.updated_at >= %s AND o.updated_at < %s ORDER BY o.updated_at, o.order_id", THIS, AFTER)
    assert [tuple(row) for row in every] == expected and len(every) == 11
    assert [tuple(row) for row in of_b] == [row for row in expected if row[1] == keys["b"]] and len(of_b) == 2
    assert [(o.user_id, o.tier, o.code) for o in every if o.code] == [(10, 1, "SPRING")]
    assert [o.tier for o in every if o.user_id == 5] == [None]   # the donation
    assert owner == [(keys["a"], "Premium <Signals>")]            # C is off sale
    assert other == [(keys["b"], "Bee")] and nobody == []


def test_report_text_shows_the_figures(config_files):
    keys = seed(config_files)
    a, b = keys["a"], keys["b"]
    result = telepayd(config_files, "report", "--month", "2026-06")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    figures = {key: (expected_figures(config_files, key, THIS, AFTER), expected_figures(config_files, key, LAST, THIS))
               for key in (a, b)}
    assert lines == report.format_text([figures[a][0], figures[b][0]], [figures[a][1], figures[b][1]])
    assert lines[:4] == [
        f"channel {a}: Premium <Signals>",
        "  running now: 9 (by plan: plan 1: 6, plan 2: 1, no plan: 2; by rail: crypto: 6, Stars: 1, no paid order: 2)",
        "  June 2026: 4 new, 3 renewed, 3 churned; revenue $89.94 in crypto, 500 stars;"
        " trials: 2 taken, 1 converted; codes redeemed: 1",
        "  May 2026: 3 new, 0 renewed, 2 churned; revenue $34.98 in crypto, 500 stars;"
        " trials: 1 taken, 0 converted; codes redeemed: 1",
    ]
    assert lines[4] == "" and lines[5] == f"channel {b}: Bee" and "June 2026: 1 new, 1 renewed" in lines[7]
    assert "Gone" not in result.stdout and len(lines) == 9

    one = telepayd(config_files, "report", "--channel", str(keys["c"]), "--month", "2026-06")   # off sale, asked by key
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[0] == f"channel {keys['c']}: Gone" and "June 2026: 1 new, 0 renewed" in one.stdout
    by_open_id = telepayd(config_files, "report", "--channel", "-1003333333333", "--month", "2026-06")
    assert by_open_id.returncode == 0 and by_open_id.stdout.splitlines()[0] == f"channel {b}: Bee"
    now = datetime.now(UTC)
    current = telepayd(config_files, "report")   # this month and the one before, UTC
    assert current.returncode == 0, current.stderr
    month_lines = [line.split(":")[0].strip() for line in current.stdout.splitlines() if line.startswith("  ") and "new," in line]
    assert month_lines[:2] == [report.month_name(report.month_bounds(None, now)[0]),
                               report.month_name(report.previous_month(report.month_bounds(None, now)[0])[0])]


def test_report_csv_is_the_paid_orders(config_files):
    keys = seed(config_files)
    result = telepayd(config_files, "report", "--month", "2026-06", "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["date", "channel", "tier", "rail", "currency", "amount", "user_id", "code"]
    paid = db(config_files, "SELECT channel_id, currency, price, user_id FROM orders WHERE status = 'paid'"
              " AND updated_at >= %s AND updated_at < %s", THIS, AFTER)
    assert len(rows) - 1 == len(paid) == 11
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _date, _channel, _tier, _rail, currency, amount, _user, _code in rows[1:]:
        totals[currency] += Decimal(amount)
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for _channel, currency, price, _user in paid:
        expected[currency] += price
    assert totals == expected == {"usd": Decimal("106.94"), "xtr": Decimal("500")}
    assert sorted(int(r[6]) for r in rows[1:]) == sorted(p[3] for p in paid)
    assert ["2026-06-04T12:00:00Z", str(keys["a"]), "1", "nowpayments", "usd", "4.99", "10", "SPRING"] in rows
    assert ["2026-06-03T12:00:00Z", str(keys["a"]), "1", "stars", "xtr", "500", "2", ""] in rows
    assert ["2026-06-06T12:00:00Z", str(keys["a"]), "", "nowpayments", "usd", "20.00", "5", ""] in rows   # the donation
    assert str(keys["c"]) in {r[1] for r in rows[1:]}   # every channel, on sale or not

    only_b = telepayd(config_files, "report", "--month", "2026-06", "--csv", "--channel", str(keys["b"]))
    assert only_b.returncode == 0, only_b.stderr
    b_rows = list(csv.reader(only_b.stdout.splitlines()))[1:]
    assert sorted((int(r[6]), Decimal(r[5])) for r in b_rows) == sorted(
        (p[3], p[2]) for p in paid if p[0] == keys["b"]) and len(b_rows) == 2
    empty = telepayd(config_files, "report", "--month", "2025-01", "--csv")
    assert empty.returncode == 0 and empty.stdout.splitlines() == ["date,channel,tier,rail,currency,amount,user_id,code"]


def test_bad_input_is_one_clear_line(config_files):
    add_channel(config_files, "9.99:30")
    cases = {
        ("--month", "2026-13"): "telepayd report: --month '2026-13': the month must be 01 to 12, like 2026-03",
        ("--month", "2026-00"): "telepayd report: --month '2026-00': the month must be 01 to 12, like 2026-03",
        ("--month", "1999-12"): "telepayd report: --month '1999-12': the year must be 2000 to 2999, like 2026-03",
        ("--month", "abc"): "telepayd report: --month 'abc': expected a month as YYYY-MM, like 2026-03",
        ("--month", "2026-3"): "telepayd report: --month '2026-3': expected a month as YYYY-MM, like 2026-03",
        ("--month", "٢٠٢٦-٠٣"): "expected a month as YYYY-MM",
        ("--channel", "999"): "telepayd report: no channel 999: see 'telepayd channels list'",
        ("--channel", "abc"): "telepayd report: channel 'abc': expected a Telegram chat id",
        ("--channel", "999", "--csv"): "telepayd report: no channel 999",
    }
    for args, expected in cases.items():
        result = telepayd(config_files, "report", *args)
        assert result.returncode == 1, (args, result.stdout)
        assert expected in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stdout == ""


def test_months():
    now = datetime(2026, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))   # April 1st in UTC
    assert report.month_bounds(None, now) == (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    assert report.month_bounds("2026-12", now) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert report.previous_month(datetime(2026, 1, 1, tzinfo=UTC)) == (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert report.previous_month(datetime(2026, 3, 1, tzinfo=UTC)) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    for bad in ("2026-00", "2026-13", "1999-12", "3000-01", "26-03", "2026-03-01", " 2026-03", "2026/03", ""):
        with pytest.raises(ValueError):
            report.month_bounds(bad, now)
    assert report.amount_text(Decimal("1234.5"), "usd") == "$1,234.50" and report.amount_text(Decimal("1500"), "xtr") == "1,500 stars"

"""``telepayd report``, the pure part: which month, and the figures as lines for the operator (English) or as
CSV. The figures themselves are read by telepayd/store/reports.py."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal

from .store.reports import NONE, ChannelFigures, PaidOrder
from .texts import money

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
FIRST_YEAR, LAST_YEAR = 2000, 2999
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
CSV_HEADER = ("date", "channel", "tier", "rail", "currency", "amount", "user_id", "code")
RAIL_NAMES = {"nowpayments": "crypto", "stars": "Stars", NONE: "no paid order"}


def month_bounds(text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``[first instant, first instant of the next month)`` in UTC of the month ``YYYY-MM``, or of the month
    ``now`` is in (UTC) when ``text`` is None. A ValueError's message says what is expected."""
    if text is None:
        if now.tzinfo is None:
            raise ValueError("now must carry its time zone")
        now = now.astimezone(timezone.utc)
        year, month = now.year, now.month
    else:
        found = _MONTH.fullmatch(text)
        if found is None:
            raise ValueError("expected a month as YYYY-MM, like 2026-03")
        year, month = int(found[1]), int(found[2])
        if not 1 <= month <= 12:
            raise ValueError("the month must be 01 to 12, like 2026-03")
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise ValueError(f"the year must be {FIRST_YEAR} to {LAST_YEAR}, like 2026-03")
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    return start, _next_month(start)


def previous_month(start: datetime) -> tuple[datetime, datetime]:
    """The month before the one starting at ``start`` (a first instant of a month, UTC)."""
    year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
    return datetime(year, month, 1, tzinfo=timezone.utc), start


def _next_month(start: datetime) -> datetime:
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    return datetime(year, month, 1, tzinfo=timezone.utc)


def month_name(start: datetime) -> str:
    """``March 2026`` (English whatever the locale)."""
    return f"{MONTH_NAMES[start.month - 1]} {start.year}"


def amount_text(amount: Decimal, currency: str) -> str:
    """``$1,234.50`` for USD, ``1,500 stars`` for Telegram Stars, else ``12.00 EUR``."""
    if currency.lower() == "usd":
        return money(amount)
    if currency.lower() == "xtr":
        return f"{int(amount):,} stars"
    return f"{amount:,.2f} {currency.upper()}"


def _revenue_text(revenue: dict[tuple[str, str], Decimal]) -> str:
    """``$49.95 in crypto, 1,500 stars`` (subscriptions and donations)."""
    parts = []
    for (rail, currency), total in sorted(revenue.items()):
        if (rail, currency.lower()) == ("stars", "xtr"):
            parts.append(amount_text(total, currency))
        else:
            parts.append(f"{amount_text(total, currency)} in {RAIL_NAMES.get(rail, rail)}")
    return ", ".join(parts) or "none"


def _count_text(counts: dict[str, int], names: dict[str, str]) -> str:
    order = sorted(counts, key=lambda key: (key == NONE, key))  # "none" last
    return ", ".join(f"{names.get(key, key)}: {counts[key]}" for key in order) or "none"


def _month_line(figures: ChannelFigures) -> str:
    trials = f"trials: {figures.trials_taken} taken, {figures.trials_converted} converted"
    return (f"  {month_name(figures.month_start)}: {figures.new} new, {figures.renewed} renewed, {figures.churned} churned;"
            f" revenue {_revenue_text(figures.revenue)}; {trials}; codes redeemed: {figures.codes_redeemed}")


def format_text(figures_this: Sequence[ChannelFigures], figures_last: Sequence[ChannelFigures]) -> list[str]:
    """Lines for the operator, per channel: its running subscriptions now (by plan, by rail), then the figures
    of this month and of the month before (``figures_last``, matched by channel). Channels are separated by an
    empty line."""
    last = {f.channel_id: f for f in figures_last}
    lines: list[str] = []
    for figures in figures_this:
        if lines:
            lines.append("")
        tiers = {key: (f"plan {key}" if key != NONE else "no plan") for key in figures.active_by_tier}
        lines.append(f"channel {figures.channel_id}: {figures.title}")
        lines.append(f"  running now: {figures.active} (by plan: {_count_text(figures.active_by_tier, tiers)};"
                     f" by rail: {_count_text(figures.active_by_rail, RAIL_NAMES)})")
        lines.append(_month_line(figures))
        if figures.channel_id in last:
            lines.append(_month_line(last[figures.channel_id]))
    return lines


def _csv_line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def csv_rows(orders: Iterable[PaidOrder]) -> list[str]:
    """A header, then one CSV line per paid order: ``date`` (when it was paid, UTC, ISO 8601), ``channel`` (the
    channel key), ``tier`` (the plan's position 1-3, empty for a donation), ``rail``, ``currency``, ``amount``
    (USD with two decimals, Stars whole), ``user_id``, ``code`` (the access code that lowered its price, else
    empty)."""
    lines = [_csv_line(CSV_HEADER)]
    for order in orders:
        amount = f"{int(order.amount)}" if order.currency.lower() == "xtr" else f"{order.amount:.2f}"
        lines.append(_csv_line((
            order.paid_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), order.channel_id,
            "" if order.tier is None else order.tier, order.rail, order.currency, amount, order.user_id, order.code or "",
        )))
    return lines

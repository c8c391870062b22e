"""``telepayd report [--channel ID] [--month YYYY-MM] [--csv]``: the owner's numbers for the operator."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from . import admin, report
from .config import Config
from .store import channels, reports


async def report_command(config: Config, args: argparse.Namespace) -> list[str]:
    """Text: for each channel on sale (or the one of ``--channel``, on sale or not), its running subscriptions
    and the figures of the month (default: this one, UTC) and of the month before. ``--csv``: a header and one
    row per order paid in the month, of every channel or of the one."""
    try:
        start, end = report.month_bounds(args.month, datetime.now(timezone.utc))
    except ValueError as exc:
        raise admin.UsageError(f"--month {args.month!r}: {exc}") from None
    async with await admin._connect(config) as conn:
        chosen = await admin._resolve_channel(conn, args.channel) if args.channel is not None else None
        if args.csv:
            found = await reports.paid_orders(conn, channel_id=chosen.id if chosen else None, start=start, end=end)
            return report.csv_rows(found)
        keys = [chosen.id] if chosen else [c.id for c in await channels.list_active(conn)]
        if not keys:
            return ["no channels on sale: add one with 'telepayd channels add'"]
        last_start, last_end = report.previous_month(start)
        this_month = [await reports.channel_figures(conn, key, start, end) for key in keys]
        month_before = [await reports.channel_figures(conn, key, last_start, last_end) for key in keys]
    return report.format_text(this_month, month_before)

"""The operator's ``telepayd codes`` command: create, list, show and disable access codes, each printing plain lines.

A code gives days of access to a channel (``--days``) or a percentage off the user's next invoice there
(``--percent``); users redeem it with /redeem CODE or its deep link ``https://t.me/<bot>?start=code_<CODE>``.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, time, timedelta

from psycopg import AsyncConnection

from . import codes as codes_rules
from .admin import UsageError, _connect, _resolve_channel, bot_username
from .config import Config
from .numbers import ascii_int
from .store import anomalies, channels, orders
from .store import codes as codes_store

MAX_COUNT = 1000
MAX_USES = 1_000_000
MAX_DAYS = 3650
# 100% would make a free invoice: below the payment providers' minimum (and a free plan is a --days code).
MAX_PERCENT = 99
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _whole(text: str | None, option: str, low: int, high: int, what: str) -> int | None:
    if text is None:
        return None
    value = ascii_int(text)
    if value is None or not low <= value <= high:
        raise UsageError(f"{option} {text!r}: {what}")
    return value


def parse_expires(text: str, now: datetime) -> datetime:
    """``YYYY-MM-DD`` (valid to the end of that day, UTC) or an ISO datetime (UTC when it has no offset),
    in the future."""
    problem = (f"--expires {text!r}: expected a date YYYY-MM-DD (the code works to the end of that day, UTC) "
               "or an ISO datetime like 2027-03-31T18:00+02:00")
    if not text.isascii():
        raise UsageError(problem)
    try:
        if _DATE.fullmatch(text):
            moment = datetime.combine(date.fromisoformat(text) + timedelta(days=1), time(), UTC)
        elif "T" not in text and " " not in text:  # 20990101, 2099-W01: a date not written YYYY-MM-DD
            raise ValueError(text)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise UsageError(problem) from None
    if moment.year > 9998:
        raise UsageError(f"--expires {text!r}: give a date before 9999, or no --expires for a code that never expires")
    if moment <= now:
        raise UsageError(f"--expires {text!r}: that is not in the future (now {_when(now)})")
    return moment


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _what(code: codes_store.AccessCode) -> str:
    return _gives(code.days, code.percent, code.tier_position)


def _gives(days: int | None, percent: int | None, tier: int | None) -> str:
    """``30 days`` or ``20% off plan 2``: what a code gives."""
    if days is not None:
        return _days(days)
    return f"{percent}% off" + (f" plan {tier}" if tier else "")


def _days(days: int) -> str:
    return f"{days} day" + ("" if days == 1 else "s")


def _expiry(code: codes_store.AccessCode) -> str:
    if code.expires_at is None:
        return "no expiry"
    moment = code.expires_at.astimezone(UTC)
    if moment.time() == time():  # --expires YYYY-MM-DD: as the operator wrote it
        return f"until the end of {moment.date() - timedelta(days=1)} UTC"
    return f"until {_when(moment)}"


def _line(code: codes_store.AccessCode, now: datetime) -> str:
    return (f"{code.code}\tchannel {code.channel_id}\t{_what(code)}\t{code.used}/{code.uses} used\t{_expiry(code)}"
            f"\t{code.state(now)}")


def _code_argument(text: str) -> str:
    key = codes_rules.normalize(text)
    if key is None:
        raise UsageError(f"{text!r} is not a code: codes are 1 to 40 letters A-Z and digits 0-9")
    return key


async def codes_command(config: Config, args: argparse.Namespace) -> list[str]:
    now = datetime.now(UTC)
    if args.action == "create":
        return await _create(config, args, now)
    async with await _connect(config) as conn:
        if args.action == "list":
            channel_id = (await _resolve_channel(conn, args.channel)).id if args.channel is not None else None
            found = await codes_store.list_codes(conn, channel_id, limit=MAX_COUNT)
            if not found:
                return ["no codes" + (f" for channel {channel_id}" if channel_id is not None else "")
                        + ": create some with 'telepayd codes create'"]
            lines = [_line(c, now) for c in found]
            if len(found) == MAX_COUNT:
                lines.append(f"(the newest {MAX_COUNT} codes only)")
            return lines
        key = _code_argument(args.code)
        code = await codes_store.get(conn, key)
        if code is None:
            raise UsageError(f"no code {key}: see 'telepayd codes list'")
        if args.action == "show":
            return await _show(conn, code, now)
        # disable
        if code.disabled_at is not None:
            return [f"code {key} was disabled already, at {_when(code.disabled_at)}"]
        async with conn.transaction():
            await codes_store.disable(conn, key)
            await anomalies.record_operator_action(conn, "code_disable", f"{key}: {_what(code)}, {code.used}/{code.uses} used",
                                                   channel_id=code.channel_id)
    return [f"code {key} disabled: it can no longer be redeemed"
            + ("; redemptions not yet on an invoice give no discount any more" if code.percent is not None else "")]


async def _show(conn: AsyncConnection, code: codes_store.AccessCode, now: datetime) -> list[str]:
    channel = await channels.get(conn, code.channel_id)
    if code.days is not None:
        gives = f"{_days(code.days)} of access"
    else:
        gives = f"{code.percent}% off the next invoice"
        if code.tier_position is not None:
            tier = next((t for t in channel.tiers if t.position == code.tier_position), None) if channel else None
            gives += f", plan {code.tier_position} only" + (f" ({_plan(tier)})" if tier else "")
    state = code.state(now)
    lines = [
        f"code {code.code}",
        f"  channel {code.channel_id}" + (f": {channel.title}" + (" (removed)" if channel.removed else "") if channel else ""),
        f"  gives {gives}",
        f"  used {code.used} of {code.uses}",
        f"  {'valid ' + _expiry(code) if code.expires_at else 'no expiry'}",
        f"  created {_when(code.created_at)}",
        f"  state {state}" + (f" since {_when(code.disabled_at)}" if code.disabled_at else ""),
    ]
    found = await codes_store.redemptions(conn, code.code)
    lines.append(f"  redemptions: {len(found) or 'none'}")
    for r in found:
        if r.order_id is None:
            order = "no order" if code.days is not None else "no order yet"
        else:
            placed = await orders.get(conn, r.order_id)
            order = f"order {r.order_id}" + (f" ({placed.status})" if placed else "")
        lines.append(f"  user {r.user_id}\t{_when(r.redeemed_at)}\t{order}")
    return lines


def _plan(tier: channels.Tier) -> str:
    from . import texts

    return f"{texts.money(tier.price)}/{tier.days}d"


async def _create(config: Config, args: argparse.Namespace, now: datetime) -> list[str]:
    # Every argument is checked before anything is written.
    if args.channel is None:
        raise UsageError("create needs --channel ID: the channel's key or its open channel id (see 'telepayd channels list')")
    if (args.days is None) == (args.percent is None):
        raise UsageError("give --days N (days of access) or --percent P (off the next invoice), one of the two")
    days = _whole(args.days, "--days", 1, MAX_DAYS, f"a whole number of days from 1 to {MAX_DAYS}")
    percent = _whole(args.percent, "--percent", 1, MAX_PERCENT,
                     f"a whole percentage from 1 to {MAX_PERCENT} (100% would make a free invoice, below the payment "
                     "providers' minimum: give --days for free access)")
    if args.tier is not None and percent is None:
        raise UsageError("--tier goes with --percent only: a --days code gives access, whatever the plan")
    tier = _whole(args.tier, "--tier", 1, 3, "a plan's position, 1 to 3 (see 'telepayd channels list')")
    uses = _whole(args.uses, "--uses", 1, MAX_USES, f"a whole number of uses from 1 to {MAX_USES}") or 1
    count = _whole(args.count, "--count", 1, MAX_COUNT, f"a whole number of codes from 1 to {MAX_COUNT}") or 1
    expires_at = parse_expires(args.expires, now) if args.expires is not None else None
    try:
        prefix = codes_rules.parse_prefix(args.prefix or "")
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    async with await _connect(config) as conn:
        channel = await _resolve_channel(conn, args.channel)
        if channel.removed:
            raise UsageError(f"channel {channel.id} is off sale: its codes could not be used")
        if tier is not None and tier > len(channel.tiers):
            raise UsageError(f"--tier {tier}: channel {channel.id} has {len(channel.tiers)} plan(s), "
                             f"{_plan_positions(channel)}")
        what = _gives(days, percent, tier)
        for attempt in range(3):  # a clash of random codes is all but impossible; try fresh ones anyway
            made: set[str] = set()
            while len(made) < count:
                made.add(codes_rules.generate(prefix))
            created = sorted(made)
            try:
                async with conn.transaction():
                    await codes_store.create(conn, channel_id=channel.id, codes=created, days=days, percent=percent,
                                             tier_position=tier, uses=uses, expires_at=expires_at)
                    await anomalies.record_operator_action(
                        conn, "codes_create", f"{count} code(s): {what}, {uses} use(s) each, "
                        + (f"until {_when(expires_at)}" if expires_at else "no expiry"), channel_id=channel.id)
                break
            except codes_store.CodeConflict:
                if attempt == 2:
                    raise UsageError("the codes generated clash with existing ones; nothing was created, try again") from None
    # Created (committed); the links need the bot's username, asked of Telegram.
    return await _code_link_lines(config, created)


def _plan_positions(channel: channels.Channel) -> str:
    return ", ".join(f"{t.position}: {_plan(t)}" for t in channel.tiers)


async def _code_link_lines(config: Config, created: list[str]) -> list[str]:
    from telegram.helpers import create_deep_linked_url

    username, problem = await bot_username(config)
    if not username:
        return created + [f"the bot's username could not be fetched ({problem}): each code's link is "
                          "https://t.me/<bot username>?start=code_<CODE>"]
    return [f"{code}\t{create_deep_linked_url(username, f'code_{code}')}" for code in created]

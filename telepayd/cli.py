"""The ``telepayd`` command line (also ``python -m telepayd`` and ``python3 telepayd.pyz``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from . import __version__
from .config import Config, config_path, load
from .numbers import argument as whole_number
from .errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ConfigError, SchemaTooNew


CONFIG_HELP = "the config file (default: $TELEPAYD_CONFIG, else /etc/telepayd/telepayd.toml)"


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE",
        help=CONFIG_HELP + "; wins over a -c given before the command",
    )


def _add_user(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--user", type=whole_number(), metavar="ID", help=text + ", e.g. 6271402111")


CHANNEL_REF = "the channel: its key (the number in its deep links, see 'channels list') or its open channel id"
OWNER_HELP = "the owner's Telegram user id, a positive number like 555000111: payment messages go there"
TIER_HELP = ("a plan: price in USD and days, like 9.99:30 (at most two decimals), optionally its price in Telegram "
             "Stars, like 9.99:30:500 (1-10000; a plan without one is not sold in Stars); repeat for up to 3 plans")


TRIAL_HELP = ("a free trial of DAYS days (1-365; 0: none), offered once per user to those who never had a trial or "
              "a subscription in the channel")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telepayd", description="Sell access to private Telegram channels.",
        epilog="-c FILE may come before the command (telepayd -c FILE channels list) or after it; "
        "given in both places, the one after the command wins.",
    )
    parser.add_argument("--version", action="version", version=f"telepayd {__version__}")
    # Before the command; the command's own -c (dest "config") wins when both are given.
    parser.add_argument("-c", "--config", dest="config_before", metavar="FILE",
                        help=CONFIG_HELP + "; for every command that reads it")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon", description="Run the daemon in the foreground "
                              "(systemd: Type=notify). Exit 78: invalid configuration; 76: database schema newer than this telepayd.")
    _add_config_option(run)
    check = commands.add_parser("check-config", help="validate the config and every secret file it names",
                                description="Validate the config and every secret file it names: exit 0, or 1 with one line per problem.")
    _add_config_option(check)
    migrate = commands.add_parser("migrate", help="apply pending database migrations",
                                  description="Apply pending database migrations (forward only).")
    _add_config_option(migrate)

    webhook = commands.add_parser("set-webhook", help="register the Telegram webhook with the first secret token",
                                  description="Register [telegram] webhook_url with Telegram, with the first line of "
                                  "webhook_secret_file as the secret token and the update types the bot handles.")
    _add_config_option(webhook)

    channels = commands.add_parser("channels", help="the channels for sale", description="The channels for sale.")
    channel_actions = channels.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = channel_actions.add_parser(
        "add", help="put a channel on sale with 1-3 plans",
        description="Put a channel on sale with 1-3 plans; prints its key and its deep links "
        "(https://t.me/<bot>?start=sub_<key> and start=don_<key>, the bot's username asked of Telegram).",
        epilog="example: telepayd channels add --open -1001111111111 --closed -1002222222222 --owner 555000111 "
        "--title 'Premium Signals' --tier 9.99:30 --tier 24.99:90",
    )
    add.add_argument("--open", required=True, metavar="ID",
                     help="the public channel where the Subscribe/Donate post lives: its id, -100 then digits, "
                     "like -1001111111111")
    add.add_argument("--closed", required=True, metavar="ID",
                     help="the private channel that is sold, like -1002222222222; the bot must be an admin there "
                     "allowed to invite users")
    add.add_argument("--owner", required=True, metavar="CHAT_ID", help=OWNER_HELP)
    add.add_argument("--title", required=True, metavar="T", help="the name buyers see, 1-128 characters")
    add.add_argument("--description", default="", metavar="D", help="a line shown under the title (optional)")
    add.add_argument("--tier", action="append", metavar="PRICE:DAYS[:STARS]", help=TIER_HELP)
    add.add_argument("--trial", type=whole_number(), metavar="DAYS", help=TRIAL_HELP + " (default: 0)")
    listing = channel_actions.add_parser("list", help="list channels (key, ids, title, plans)",
                                         description="List the channels on sale: key, open, closed and owner ids, title, plans.")
    listing.add_argument("--all", action="store_true", help="include channels taken off sale")
    update = channel_actions.add_parser("update", help="change a channel (new plans replace the old ones)",
                                        description="Change a channel; what is not given stays. New plans replace "
                                        "all the old ones; orders keep the price they were made at.")
    update.add_argument("id", metavar="ID", help=CHANNEL_REF)
    update.add_argument("--title", metavar="T", help="a new name, 1-128 characters")
    update.add_argument("--description", metavar="D", help="a new description ('' for none)")
    update.add_argument("--owner", metavar="CHAT_ID", help=OWNER_HELP)
    update.add_argument("--tier", action="append", metavar="PRICE:DAYS[:STARS]", help=TIER_HELP + "; replaces every plan")
    update.add_argument("--trial", type=whole_number(), metavar="DAYS", help=TRIAL_HELP + "; 0 stops offering it "
                        "(trials running go to their end); left out, it stays as it is")
    remove = channel_actions.add_parser("remove", help="take a channel off sale",
                                        description="Take a channel off sale (its subscriptions run to their end).")
    remove.add_argument("id", metavar="ID", help=CHANNEL_REF)
    remove.add_argument("--force", action="store_true", help="even with active subscribers (they run to their end)")
    for sub in (add, listing, update, remove):
        _add_config_option(sub)

    orders = commands.add_parser("orders", help="look up orders; apply a payment whose IPN was lost; refund Stars",
                                 description="Look up orders; apply a payment whose IPN was lost; refund a Stars order.")
    order_actions = orders.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = order_actions.add_parser("show", help="an order with its IPN history and grant, or a user's orders",
                                    description="An order with its payments, IPN history and join links; "
                                    "or, with --user, a user's orders. Give one of the two.")
    show.add_argument("order_id", nargs="?", metavar="ORDER_ID", help="an order id, like tp_4f0c2a9e1b7d3c5a8e6f")
    _add_user(show, "a Telegram user id: list that user's orders")
    _add_config_option(show)
    reconcile = order_actions.add_parser(
        "reconcile", help="ask NowPayments about a payment of an order and apply it (a lost IPN)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fetch payment N from NowPayments (GET /v1/payment/N, with the API key) and, when it belongs\n"
        "to ORDER_ID, apply it by the same money rules as an IPN; print what changed.\n"
        "A payment of another order, one NowPayments does not know, or NowPayments unreachable:\n"
        "exit 1 and nothing changed. A payment the money rules refuse (its price differs):\n"
        "exit 1 and an anomaly recorded.",
        epilog="example:\n  telepayd orders reconcile tp_4f0c2a9e1b7d3c5a8e6f --payment-id 5077125123",
    )
    reconcile.add_argument("order_id", metavar="ORDER_ID", help="an order id, like tp_4f0c2a9e1b7d3c5a8e6f")
    reconcile.add_argument("--payment-id", type=whole_number(), required=True, metavar="N",
                           help="the NowPayments payment id (on the buyer's payment page, or in NowPayments' dashboard)")
    _add_config_option(reconcile)
    refund = order_actions.add_parser(
        "refund", help="refund a Telegram Stars order and take back what it bought",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Refund the Stars charge of ORDER_ID (Telegram's refundStarPayment: the Stars go back to the\n"
        "buyer) and apply the refund rule: the days it bought that are still ahead are taken back, the\n"
        "member is removed when nothing is left, the buyer and the owner are told. A crypto order is\n"
        "refunded in NowPayments' dashboard (its refunded IPN then takes the access back): exit 1.",
        epilog="example:\n  telepayd orders refund tp_4f0c2a9e1b7d3c5a8e6f",
    )
    refund.add_argument("order_id", metavar="ORDER_ID", help="a Stars order id, like tp_4f0c2a9e1b7d3c5a8e6f")
    _add_config_option(refund)

    subs = commands.add_parser("subscriptions", help="manual fixes, each recorded",
                               description="Manual fixes, each recorded in operator_actions.")
    sub_actions = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("grant", "extend a subscription by --days and send a join link"),
                       ("revoke", "end a subscription now, remove the member and revoke their open links")):
        action = sub_actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("--user", type=whole_number(), required=True, metavar="ID",
                            help="the subscriber's Telegram user id, e.g. 6271402111")
        action.add_argument("--channel", required=True, metavar="ID", help=CHANNEL_REF)
        action.add_argument("--days", type=whole_number(maximum=3650), metavar="N",
                            help="days to add (grant only; from the current end, or from now when it has passed)"
                            if name == "grant" else "refused: revoke ends the subscription now")
        _add_config_option(action)

    outbox = commands.add_parser("outbox", help="messages to Telegram that failed for good",
                                 description="Messages to Telegram that failed for good.")
    outbox_actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    failed = outbox_actions.add_parser("failed", help="list messages failed for good, with the reason",
                                       description="List messages failed for good: id, time, kind, chat, attempts, reason.")
    retry = outbox_actions.add_parser(
        "retry", help="queue failed messages again",
        description="Queue failed messages again. A message that cannot succeed as it is (its reason says "
        "undeliverable, a notification that names no channel on sale, a post for a channel no longer on sale) "
        "is skipped by --all and listed with the reason; retry ID refuses it unless --force.",
    )
    retry.add_argument("id", nargs="?", type=whole_number(), metavar="ID", help="a message id from 'outbox failed'")
    retry.add_argument("--all", action="store_true", help="every failed message that can succeed")
    retry.add_argument("--force", action="store_true", help="with ID: queue it even if it cannot succeed as it is")
    for sub in (failed, retry):
        _add_config_option(sub)

    broadcast = commands.add_parser(
        "broadcast", help="post or refresh the subscribe/donate post in open channels",
        description="Queue a broadcast job: the running daemon posts, or edits in place, the Subscribe/Donate post "
        "of each channel within [subscriptions] sweep_interval_seconds.",
    )
    broadcast.add_argument("--channel", action="append", metavar="ID",
                           help="the open channel id of a channel on sale, like -1001111111111 (repeat for "
                           "several); default: every channel on sale")
    _add_config_option(broadcast)

    codes_parser = commands.add_parser(
        "codes", help="access codes: days of access or a percentage off, redeemed with /redeem or a deep link",
        description="Access codes for a channel: each gives days of access (--days) or a percentage off the user's next "
        "invoice there (--percent). A user redeems one with /redeem CODE or its deep link "
        "https://t.me/<bot>?start=code_<CODE>, once, while it has uses left, has not expired and is not disabled.",
    )
    code_actions = codes_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    code_create = code_actions.add_parser(
        "create", help="create codes and print their deep links",
        usage="%(prog)s --channel ID (--days N | --percent P) [--tier K] [--uses N] [--expires DATE] [--count K] "
        "[--prefix TEXT] [-c FILE]",
        description="Create --count codes alike, each random (at least 40 bits, no look-alike characters), and print "
        "one line per code with its deep link (the bot's username asked of Telegram).",
        epilog="example: telepayd codes create --channel 3 --percent 20 --tier 2 --uses 50 --expires 2027-03-31 --prefix SUMMER",
    )
    code_create.add_argument("--channel", metavar="ID", help=CHANNEL_REF + " (required)")
    code_create.add_argument("--days", metavar="N", help="the days of access a code gives, 1-3650 (give --days or --percent)")
    code_create.add_argument("--percent", metavar="P", help="the percentage a code takes off the user's next invoice in "
                             "the channel, 1-99 (give --days or --percent)")
    code_create.add_argument("--tier", metavar="K", help="with --percent: for the plan at that position only, 1-3 as "
                             "'channels list' shows them (default: any plan)")
    code_create.add_argument("--uses", metavar="N", help="how many users may redeem each code, once each (default 1)")
    code_create.add_argument("--expires", metavar="DATE", help="redeemable until the end of that day, YYYY-MM-DD (UTC), "
                             "or until an ISO datetime like 2027-03-31T18:00+02:00 (default: no expiry)")
    code_create.add_argument("--count", metavar="K", help="how many codes to create, 1-1000 (default 1)")
    code_create.add_argument("--prefix", metavar="TEXT", help="put before each code's random part: up to 12 of "
                             "23456789ABCDEFGHJKMNPQRSTUVWXYZ (no 0, O, 1, I, L: they are misread), like SUMMER")
    code_list = code_actions.add_parser("list", help="list codes, newest first",
                                        description="List codes, newest first: code, channel, what it gives, "
                                        "used/uses, expiry, state (active, used up, expired, disabled).")
    code_list.add_argument("--channel", metavar="ID", help=CHANNEL_REF + " (default: every channel)")
    code_show = code_actions.add_parser("show", help="a code and who redeemed it",
                                        description="A code's details and its redemptions: user, when, order.")
    code_show.add_argument("code", metavar="CODE", help="the code (any case; spaces and dashes are ignored)")
    code_disable = code_actions.add_parser("disable", help="stop a code from being redeemed",
                                           description="Disable a code: it can no longer be redeemed, and a percent "
                                           "code's redemptions not yet on an invoice give no discount any more.")
    code_disable.add_argument("code", metavar="CODE", help="the code (any case; spaces and dashes are ignored)")
    for sub in (code_create, code_list, code_show, code_disable):
        _add_config_option(sub)

    report = commands.add_parser(
        "report", help="the owners' numbers: subscribers, new, renewed, churned, revenue, trials, codes",
        description="Per channel: the subscriptions running now (by plan and by rail), and for the month (UTC) and "
        "the month before: new and renewed paid subscriptions, churned subscriptions, revenue by rail (subscriptions "
        "and donations), trials taken and converted, codes redeemed. With --csv: one row per order paid in the month.",
        epilog="example: telepayd report --month 2026-03; telepayd report --channel 3 --month 2026-03 --csv > march.csv",
    )
    report.add_argument("--channel", metavar="ID", help=CHANNEL_REF + "; default: every channel on sale "
                        "(with --csv: every channel)")
    report.add_argument("--month", metavar="YYYY-MM", help="the month, like 2026-03 (default: this month, UTC)")
    report.add_argument("--csv", action="store_true",
                        help="print CSV: date,channel,tier,rail,currency,amount,user_id,code, one row per paid order")
    _add_config_option(report)

    sign = commands.add_parser(
        "sign", help="print Standard Webhooks headers for the body on standard input",
        description="Sign standard input with the first secret of a whsec_ secret file and print the "
        "three headers, one 'name: value' per line (for curl -H).",
        epilog="example: telepayd sign --secret-file /etc/telepayd/webhook-secrets < body.json > headers",
    )
    sign.add_argument("--secret-file", required=True, metavar="F", help="file holding whsec_... secrets, one per line")
    sign.add_argument("--id", dest="message_id", metavar="ID", help="webhook-id (default: a random msg_...)")
    sign.add_argument("--timestamp", type=whole_number(), metavar="T", help="webhook-timestamp in seconds (default: now)")
    return parser


def _load_or_report(path: Path, *, journal_errors: bool = False) -> Config | None:
    """The config, or None after one line per problem on stderr (at error priority in the journal when
    ``journal_errors``: ``run`` under systemd, before logging exists)."""
    try:
        return load(path)
    except ConfigError as exc:
        prefix = "<3>" if journal_errors else ""
        for problem in exc.problems:
            print(prefix + problem, file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    from . import logs
    from .daemon import run

    journal = logs.stderr_is_the_journal()
    config = _load_or_report(config_path(args.config), journal_errors=journal)
    if config is None:
        print(("<3>" if journal else "") + "telepayd: not started: fix the configuration above (telepayd check-config)",
              file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.logging)
    return run(config)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = _load_or_report(path)
    if config is None:
        return EXIT_FAILURE
    print(f"{path}: configuration ok")
    if config.relative_paths_from is not None:
        print(f"relative paths are read from {config.relative_paths_from}")
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from .security.webhook_signature import sign

    from .config import unsafe_secret_mode

    path = Path(args.secret_file)
    try:
        unsafe = unsafe_secret_mode(path.stat().st_mode)
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        print(f"telepayd sign: cannot read {args.secret_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    except UnicodeDecodeError:
        print(f"telepayd sign: {args.secret_file} is not UTF-8 text", file=sys.stderr)
        return EXIT_FAILURE
    if unsafe:
        print(f"telepayd sign: secret file {args.secret_file} is {unsafe}; chmod 0640 (or 0600) it", file=sys.stderr)
        return EXIT_FAILURE
    secrets = [line for line in lines if line and not line.startswith("#")]
    if not secrets:
        print(f"telepayd sign: {args.secret_file} holds no secret", file=sys.stderr)
        return EXIT_FAILURE
    body = sys.stdin.buffer.read()
    try:
        headers = sign(secrets[0], body, message_id=args.message_id, timestamp=args.timestamp)
    except ValueError as exc:
        print(f"telepayd sign: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for name, value in headers.as_dict().items():
        print(f"{name}: {value}")
    return EXIT_OK


def cmd_operator(args: argparse.Namespace) -> int:
    """The operator's commands (migrate, channels, orders, subscriptions, outbox, broadcast, set-webhook):
    one line per result or problem."""
    from telegram.error import TelegramError

    from . import admin
    from . import admin_codes
    from . import admin_report
    from .errors import StoreUnavailable

    config = _load_or_report(config_path(args.config))
    if config is None:
        return EXIT_CONFIG
    if args.command == "orders" and args.action == "show" and (args.order_id is None) == (args.user is None):
        print("telepayd orders show: give an ORDER_ID or --user ID", file=sys.stderr)
        return EXIT_USAGE
    run = {
        "migrate": lambda: admin.migrate_command(config),
        "channels": lambda: admin.channels_command(config, args),
        "orders": lambda: admin.orders_command(config, args),
        "subscriptions": lambda: admin.subscriptions_command(config, args),
        "set-webhook": lambda: admin.set_webhook_command(config),
        "outbox": lambda: admin.outbox_command(config, args),
        "broadcast": lambda: admin.broadcast_command(config, args),
        "codes": lambda: admin_codes.codes_command(config, args),
        "report": lambda: admin_report.report_command(config, args),
    }[args.command]
    try:
        lines = asyncio.run(run())
    except (admin.UsageError, SchemaTooNew) as exc:
        print(f"telepayd {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except StoreUnavailable as exc:
        print(f"telepayd {args.command}: database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except TelegramError as exc:
        print(f"telepayd {args.command}: Telegram refused: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for line in lines:
        print(line)
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "migrate": cmd_operator,
    "sign": cmd_sign,
    "channels": cmd_operator,
    "orders": cmd_operator,
    "subscriptions": cmd_operator,
    "set-webhook": cmd_operator,
    "outbox": cmd_operator,
    "broadcast": cmd_operator,
    "codes": cmd_operator,
    "report": cmd_operator,
}


def main(argv: list[str] | None = None) -> int:
    # PTB 22 warns on RetryAfter.retry_after unless timedeltas are opted into; we handle both forms.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    args = build_parser().parse_args(argv)
    # -c after the command wins over -c before it.
    args.config = getattr(args, "config", None) or args.config_before
    return COMMANDS[args.command](args)

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


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE",
        help="config file (default: $TELEPAYD_CONFIG, else /etc/telepayd/telepayd.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telepayd", description="Sell access to private Telegram channels.")
    parser.add_argument("--version", action="version", version=f"telepayd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    _add_config_option(run)
    check = commands.add_parser("check-config", help="validate the config and every secret file it names")
    _add_config_option(check)
    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    _add_config_option(migrate)

    webhook = commands.add_parser("set-webhook", help="register the Telegram webhook with the first secret token")
    _add_config_option(webhook)

    channels = commands.add_parser("channels", help="the channels for sale")
    channel_actions = channels.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = channel_actions.add_parser("add", help="register a channel with 1-3 tiers")
    add.add_argument("--open", required=True, metavar="ID", help="the public channel where the subscribe post lives")
    add.add_argument("--closed", required=True, metavar="ID", help="the private channel that is sold")
    add.add_argument("--owner", required=True, metavar="CHAT_ID", help="the owner's chat id (payment messages)")
    add.add_argument("--title", required=True)
    add.add_argument("--description", default="")
    add.add_argument("--tier", action="append", metavar="PRICE:DAYS", help="e.g. 9.99:30; repeat for up to 3 tiers")
    listing = channel_actions.add_parser("list", help="list channels (key, ids, title, tiers)")
    listing.add_argument("--all", action="store_true", help="include removed channels")
    update = channel_actions.add_parser("update", help="change a channel (new tiers replace the old ones)")
    update.add_argument("id", metavar="ID", help="channel key or open channel id")
    update.add_argument("--title")
    update.add_argument("--description")
    update.add_argument("--owner", metavar="CHAT_ID")
    update.add_argument("--tier", action="append", metavar="PRICE:DAYS")
    remove = channel_actions.add_parser("remove", help="take a channel off sale")
    remove.add_argument("id", metavar="ID", help="channel key or open channel id")
    remove.add_argument("--force", action="store_true", help="even with active subscribers (they run to their end)")
    for sub in (add, listing, update, remove):
        _add_config_option(sub)

    orders = commands.add_parser("orders", help="look up orders")
    order_actions = orders.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = order_actions.add_parser("show", help="an order with its IPN history and grant, or a user's orders")
    show.add_argument("order_id", nargs="?", metavar="ORDER_ID")
    show.add_argument("--user", type=whole_number(), metavar="ID")
    _add_config_option(show)

    subs = commands.add_parser("subscriptions", help="manual fixes, each recorded")
    sub_actions = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("grant", "extend a subscription by --days and send a join link"), ("revoke", "end a subscription now")):
        action = sub_actions.add_parser(name, help=text)
        action.add_argument("--user", type=whole_number(), required=True, metavar="ID")
        action.add_argument("--channel", required=True, metavar="ID", help="channel key or open channel id")
        action.add_argument("--days", type=whole_number(), metavar="N")
        _add_config_option(action)

    outbox = commands.add_parser("outbox", help="messages to Telegram that failed for good")
    outbox_actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    failed = outbox_actions.add_parser("failed", help="list messages failed for good, with the reason")
    retry = outbox_actions.add_parser("retry", help="queue failed messages again")
    retry.add_argument("id", nargs="?", type=whole_number(), metavar="ID")
    retry.add_argument("--all", action="store_true", help="every failed message")
    for sub in (failed, retry):
        _add_config_option(sub)

    broadcast = commands.add_parser("broadcast", help="post or refresh the subscribe/donate post in open channels")
    broadcast.add_argument("--channel", action="append", metavar="ID", help="an open channel id (repeat); default: all")
    _add_config_option(broadcast)

    sign = commands.add_parser(
        "sign", help="print Standard Webhooks headers for the body on standard input",
        description="Sign standard input with the first secret of a whsec_ secret file and print the "
        "three headers, one 'name: value' per line (for curl -H).",
    )
    sign.add_argument("--secret-file", required=True, metavar="F", help="file holding whsec_... secrets, one per line")
    sign.add_argument("--id", dest="message_id", metavar="ID", help="webhook-id (default: a random msg_...)")
    sign.add_argument("--timestamp", type=whole_number(), metavar="T", help="webhook-timestamp in seconds (default: now)")
    return parser


def _load_or_report(path: Path) -> Config | None:
    try:
        return load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    from . import logs
    from .daemon import serve

    config = _load_or_report(config_path(args.config))
    if config is None:
        print("telepayd: not started: fix the configuration above (telepayd check-config)", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.logging)
    return asyncio.run(serve(config))


def cmd_check_config(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = _load_or_report(path)
    if config is None:
        return EXIT_FAILURE
    print(f"{path}: configuration ok")
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
    from .errors import StoreUnavailable

    config = _load_or_report(config_path(args.config))
    if config is None:
        return EXIT_CONFIG
    if args.command == "orders" and (args.order_id is None) == (args.user is None):
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
}


def main(argv: list[str] | None = None) -> int:
    # PTB 22 warns on RetryAfter.retry_after unless timedeltas are opted into; we handle both forms.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)

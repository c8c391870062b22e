"""The ``telepayd`` command line (also ``python -m telepayd`` and ``python3 telepayd.pyz``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from . import __version__
from .config import Config, config_path, load
from .errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, SchemaTooNew


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

    sign = commands.add_parser(
        "sign", help="print Standard Webhooks headers for the body on standard input",
        description="Sign standard input with the first secret of a whsec_ secret file and print the "
        "three headers, one 'name: value' per line (for curl -H).",
    )
    sign.add_argument("--secret-file", required=True, metavar="F", help="file holding whsec_... secrets, one per line")
    sign.add_argument("--id", dest="message_id", metavar="ID", help="webhook-id (default: a random msg_...)")
    sign.add_argument("--timestamp", type=int, metavar="T", help="webhook-timestamp in seconds (default: now)")
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


def cmd_migrate(args: argparse.Namespace) -> int:
    from .errors import StoreUnavailable
    from .store import schema
    from .store.pool import connect

    config = _load_or_report(config_path(args.config))
    if config is None:
        return EXIT_CONFIG

    async def migrate() -> list[schema.Migration]:
        async with await connect(config.database) as conn:
            return await schema.migrate(conn)

    try:
        applied = asyncio.run(migrate())
    except (StoreUnavailable, SchemaTooNew) as exc:
        print(f"telepayd migrate: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    print(f"database schema at version {schema.latest_version()}" + ("" if applied else " (nothing to do)"))
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from .security.webhook_signature import sign

    try:
        lines = [line.strip() for line in Path(args.secret_file).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        print(f"telepayd sign: cannot read {args.secret_file}: {exc.strerror}", file=sys.stderr)
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


COMMANDS = {"run": cmd_run, "check-config": cmd_check_config, "migrate": cmd_migrate, "sign": cmd_sign}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)

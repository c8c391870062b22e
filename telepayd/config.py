"""The one configuration object: a TOML file plus secret files, loaded and validated by ``load()``.

Every problem is reported, not just the first, each as one line naming the file, the key, what is wrong and
what is expected (like ``nginx -t``). Past this module nothing sees a string-keyed dict.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .security.client_address import Networks
from .security.webhook_signature import decode_secret

DEFAULT_CONFIG_PATH = Path("/etc/telepayd/telepayd.toml")
CONFIG_ENV = "TELEPAYD_CONFIG"
_TELEGRAM_TOKEN_PATTERN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
_TELEGRAM_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Where a callback URL may be plain http: this machine only (the tests, make demo and make run).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class RateLimitConfig:
    per_minute: int = 120
    burst: int = 30
    max_clients: int = 100_000


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    unix_socket: str = ""
    trusted_proxies: Networks = Networks.parse(["127.0.0.1/32", "::1/128"])
    max_body_bytes: int = 65536
    status_allowed_ips: Networks = Networks.parse(["127.0.0.0/8", "::1/128"])
    # Slow and half-open clients (telepayd/http_server.py, guard._read_body); a reload applies them to
    # new connections and requests.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    keepalive_timeout_seconds: float = 15.0
    max_connections: int = 4096
    # One address may hold at most this many of them (the trusted proxies may hold all): a single stranger
    # cannot take every connection. Telegram opens up to 100 (setWebhook max_connections, 40 by default).
    max_connections_per_address: int = 256
    # GET /metrics (Prometheus) and the counting behind it; off: 404, and nothing is observed.
    metrics: bool = True
    # The event loop: "uvloop" (libuv, about 1.1x the signed ingest's throughput; the standard library's when
    # uvloop cannot be imported, which the log says) or "asyncio" (the standard library's).
    event_loop: str = "uvloop"


@dataclass(frozen=True)
class WebhooksConfig:
    allowed_ips: Networks = Networks([])
    secrets_file: Path = Path("/etc/telepayd/webhook-secrets")
    tolerance_seconds: int = 300
    rate_limit: RateLimitConfig = RateLimitConfig()
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class TelegramConfig:
    mode: str = "webhook"
    token_file: Path = Path("/etc/telepayd/telegram-token")
    webhook_url: str = "https://telepay.example.com/telegram"
    webhook_secret_file: Path = Path("/etc/telepayd/telegram-webhook-secret")
    api_base_url: str = "https://api.telegram.org/bot"
    allowed_ips: Networks = Networks([])
    # Telegram sends every update from a few addresses, in bursts: generous, still a bound per address.
    rate_limit: RateLimitConfig = RateLimitConfig(per_minute=6000, burst=1000, max_clients=10_000)
    token: str = field(default="", repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def webhook_path(self) -> str:
        """The local path of ``POST /telegram``: the path of ``webhook_url``."""
        return urlsplit(self.webhook_url).path or "/telegram"


@dataclass(frozen=True)
class NowPaymentsConfig:
    api_key_file: Path = Path("/etc/telepayd/nowpayments-api-key")
    ipn_secret_file: Path = Path("/etc/telepayd/nowpayments-ipn-secret")
    api_base_url: str = "https://api.nowpayments.io/v1"
    ipn_callback_url: str = "https://telepay.example.com/webhooks/nowpayments"
    allowed_ips: Networks = Networks([])
    notify_owner_on_ipn: bool = True
    # NowPayments retries each IPN a few times; a busy shop sees a few per second from a handful of addresses.
    rate_limit: RateLimitConfig = RateLimitConfig(per_minute=600, burst=100, max_clients=10_000)
    api_key: str = field(default="", repr=False)
    ipn_secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: str = "postgresql://telepay@localhost/telepay"
    password_file: Path | None = None
    min_size: int = 2
    max_size: int = 10
    timeout_seconds: float = 5.0
    migrate_on_start: bool = True
    # The bot's own pool: Telegram users cannot take the connections that IPNs and webhooks need.
    bot_pool_size: int = 4
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class PaymentsConfig:
    max_invoices_per_user_hour: int = 10


@dataclass(frozen=True)
class ReconcileConfig:
    """Re-checking payments with NowPayments' API when their IPNs do not come (docs/DESIGN.md)."""

    enabled: bool = True
    stale_after_minutes: int = 30
    interval_seconds: int = 300
    batch_size: int = 50
    buyer_checks_per_hour: int = 6


DEFAULT_SUPPORT_TEXT = (
    "For help with a payment, write to the owner of the channel you paid for, or to this bot's operator. "
    "Please include your order or the date and amount of the payment."
)
DEFAULT_TERMS_TEXT = (
    "You buy access to a private Telegram channel for the time shown with the plan. Access is personal: your join "
    "link works for you only. Monthly Telegram Stars subscriptions renew until you cancel them (/status); "
    "access then runs to the end of the time paid. Refunds are at the channel owner's discretion."
)


@dataclass(frozen=True)
class BotConfig:
    """How the bot speaks and what it tolerates (docs/DESIGN.md, "Languages", "Access codes")."""

    default_language: str = "en"  # for users whose Telegram language has no catalog here
    wrong_codes_per_hour: int = 10  # wrong access codes a user may send in an hour before a pause


@dataclass(frozen=True)
class StarsConfig:
    """Telegram Stars (currency XTR) beside NowPayments (docs/DESIGN.md)."""

    enabled: bool | None = None  # None: on when any plan has a Stars price
    usd_per_star: Decimal = Decimal("0.013")  # a donation's Stars: its USD amount / this, rounded up
    support_text: str = DEFAULT_SUPPORT_TEXT  # /paysupport
    terms_text: str = DEFAULT_TERMS_TEXT  # /terms
    sweep_interval_seconds: int = 600  # the getStarTransactions sweep for payments whose update was lost


@dataclass(frozen=True)
class DonationsConfig:
    min_amount: Decimal = Decimal("4.99")
    max_amount: Decimal = Decimal("9999.99")
    keypad_timeout_seconds: int = 300


@dataclass(frozen=True)
class SubscriptionsConfig:
    reminder_days: tuple[int, ...] = (3, 1)
    invite_link_hours: int = 24
    removal_dry_run: bool = False
    sweep_interval_seconds: int = 60


@dataclass(frozen=True)
class OutboxConfig:
    """Telegram's limits, kept by the one delivering daemon; 0 switches a limit off (benchmarks)."""

    messages_per_second: float = 30.0
    per_chat_per_second: float = 1.0
    per_group_per_minute: float = 20.0


@dataclass(frozen=True)
class RetentionConfig:
    sent_outbox_days: int = 30
    webhook_ids_days: int = 7


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "plain"


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    webhooks: WebhooksConfig
    telegram: TelegramConfig
    nowpayments: NowPaymentsConfig
    database: DatabaseConfig
    donations: DonationsConfig
    subscriptions: SubscriptionsConfig
    logging: LoggingConfig
    outbox: OutboxConfig = OutboxConfig()
    retention: RetentionConfig = RetentionConfig()
    payments: PaymentsConfig = PaymentsConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    stars: StarsConfig = StarsConfig()
    bot: BotConfig = BotConfig()
    # The config file's folder when a path in it was relative (they are read from there), else None.
    relative_paths_from: Path | None = None

    def restart_needed_for(self, new: Config) -> list[str]:
        """Settings that differ in ``new`` but only take effect after a restart."""
        pairs = {
            "[server] host": (self.server.host, new.server.host),
            "[server] port": (self.server.port, new.server.port),
            "[server] unix_socket": (self.server.unix_socket, new.server.unix_socket),
            "[server] max_body_bytes": (self.server.max_body_bytes, new.server.max_body_bytes),
            "[server] metrics": (self.server.metrics, new.server.metrics),
            "[server] event_loop": (self.server.event_loop, new.server.event_loop),
            "[database]": (self.database, new.database),
            "[telegram] token_file": (self.telegram.token, new.telegram.token),
            "[telegram] mode": (self.telegram.mode, new.telegram.mode),
            "[telegram] webhook_url": (self.telegram.webhook_path, new.telegram.webhook_path),
        }
        return [name for name, (old, fresh) in pairs.items() if old != fresh]


def config_path(explicit: str | None) -> Path:
    """``-c FILE``, else ``$TELEPAYD_CONFIG``, else ``/etc/telepayd/telepayd.toml``."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        # Relative paths in the file are read from the file's own folder (absolute: a reload after a
        # chdir reads the same files).
        self.folder = path.absolute().parent
        self.relative_used = False
        # How each file path was given, by "[section] key", for problems about the file: never a path
        # the user did not write without saying where it came from.
        self.shown: dict[str, str] = {}

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{self.path}: {where}: {message}")


class _Section:
    """Typed reads from one TOML table; every problem is recorded, defaults stand in for bad values."""

    def __init__(self, problems: _Problems, name: str, table: Any, known: set[str]) -> None:
        self.problems = problems
        self.name = name
        self.table: dict[str, Any] = {}
        if not isinstance(table, dict):
            problems.add(f"[{name}]", "expected a table")
            return
        self.table = table
        for key in sorted(set(table) - known):
            problems.add(f"[{name}] {key}", f"unknown key (known keys: {', '.join(sorted(known))})")

    def bad(self, key: str, expected: str, value: Any) -> None:
        shown = repr(value) if not isinstance(value, dict) else "a table"
        self.problems.add(f"[{self.name}] {key}", f"expected {expected}, got {shown}")

    def string(self, key: str, default: str, *, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            self.bad(key, " or ".join(f'"{c}"' for c in choices) if choices else "a string", value)
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.bad(key, f"a whole number from {minimum} to {maximum}", value)
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= maximum:
            self.bad(key, f"a number of seconds from {minimum:g} to {maximum:g}", value)
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.bad(key, "true or false", value)
            return default
        return value

    def networks(self, key: str, default: Networks) -> Networks:
        value = self.table.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(key, 'a list of CIDR strings such as ["10.0.0.0/8", "2001:db8::/32"]', value)
            return default
        bad = []
        for cidr in value:
            try:
                Networks.parse([cidr])
            except ValueError:
                bad.append(cidr)
        if bad:
            self.problems.add(
                f"[{self.name}] {key}",
                f"not an IPv4 or IPv6 address or CIDR network: {', '.join(repr(b) for b in bad)}",
            )
            return default
        host_bits = [(cidr, meant) for cidr in value if (meant := network_meant(cidr))]
        for cidr, meant in host_bits:
            address = cidr.strip().partition("/")[0]
            single = f"{address}/{32 if ':' not in address else 128}"
            self.problems.add(
                f"[{self.name}] {key}",
                f"{cidr!r} has host bits set: write {meant!r} for the network, or {single!r} for the one address",
            )
        return default if host_bits else Networks.parse(value)

    def path(self, key: str, default: Path | None) -> Path | None:
        """A file path: absolute, or relative to the config file's folder. None when the value is unusable
        (a problem is recorded; nothing is read from a path the user did not write)."""
        where = f"[{self.name}] {key}"
        value = self.table.get(key)
        if value is None and default is not None:
            self.problems.shown[where] = f"{default} (the default: {key} is not set)"
            return default
        if not isinstance(value, str) or not value.strip():
            self.bad(key, "a file path (absolute, or relative to the config file's folder)", value)
            return None
        if value.startswith("~"):
            self.bad(key, "a file path without ~ (it is not expanded): write the full path", value)
            return None
        if value.startswith("/"):
            self.problems.shown[where] = value
            return Path(value)
        resolved = self.problems.folder / value
        self.problems.relative_used = True
        self.problems.shown[where] = f"{value} (read as {resolved})"
        return resolved

    def url(self, key: str, default: str, *, https: bool = False) -> str:
        """An http(s) URL; with ``https``, plain http only for this machine (127.0.0.1, ::1, localhost)."""
        value = self.table.get(key, default)
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            self.bad(key, "an https:// URL" if https else "an http:// or https:// URL", value)
            return default
        if https and parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            self.bad(key, "an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)", value)
            return default
        return value

    def amount(self, key: str, default: Decimal) -> Decimal:
        value = self.table.get(key, str(default))
        try:
            amount = Decimal(value) if isinstance(value, str) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount.as_tuple().exponent < -2 or amount <= 0:
            self.bad(key, 'a positive amount in USD as a string with at most two decimals, like "4.99"', value)
            return default
        return amount


def _section(problems: _Problems, data: dict[str, Any], name: str, known: set[str]) -> _Section:
    return _Section(problems, name, data.get(name, {}), known)


def network_meant(cidr: str) -> str:
    """The network ``cidr`` probably means when it has host bits set (``192.168.1.1/24``:
    ``192.168.1.0/24``), else "" (a network as written, a bare address, or not a network at all)."""
    try:
        ipaddress.ip_network(cidr.strip())
        return ""
    except ValueError:
        pass
    try:
        return str(ipaddress.ip_network(cidr.strip(), strict=False))
    except ValueError:
        return ""


def unsafe_secret_mode(mode: int) -> str:
    """Why a secret file with ``mode`` cannot be trusted ("" when it can): others may read it, or others
    (its group included) may replace what it says."""
    if mode & stat.S_IROTH:
        return "readable by everyone"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by " + ("everyone" if mode & stat.S_IWOTH else "its group")
    return ""


def read_secret_lines(path: Path | None, problems: _Problems, where: str) -> tuple[str, ...]:
    """Read a secret file: one secret per line, blank lines and ``#`` comments skipped. ``path`` None (its
    key was unusable, already reported): nothing is read."""
    if path is None:
        return ()
    shown = problems.shown.get(where, str(path))
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add(where, f"secret file {shown} does not exist")
        return ()
    except PermissionError:
        problems.add(where, f"secret file {shown} is not readable by this user (uid {os.getuid()})")
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(where, f"secret file {shown} cannot be read ({exc.__class__.__name__})")
        return ()
    unsafe = unsafe_secret_mode(info.st_mode)
    if unsafe:
        problems.add(where, f"secret file {shown} is {unsafe}; chmod 0640 (or 0600) it")
        return ()
    lines = tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
    )
    if not lines:
        problems.add(where, f"secret file {shown} holds no secret")
    return lines


def load(path: Path) -> Config:
    """Load and validate the config file and every secret file it names; raise ``ConfigError``."""
    problems = _Problems(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: the config file does not exist"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: the config file is not readable by this user (uid {os.getuid()})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the config file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: the config file cannot be read ({exc.strerror})"]) from None

    sections = {
        "server", "webhooks", "telegram", "nowpayments", "database", "donations", "subscriptions", "logging",
        "outbox", "retention", "payments", "reconcile", "stars", "bot",
    }
    for name in sorted(set(data) - sections):
        problems.add(f"[{name}]", f"unknown section (known sections: {', '.join(sorted(sections))})")

    config = Config(
        path=path,
        server=_load_server(problems, data),
        webhooks=_load_webhooks(problems, data),
        telegram=_load_telegram(problems, data),
        nowpayments=_load_nowpayments(problems, data),
        database=_load_database(problems, data),
        donations=_load_donations(problems, data),
        subscriptions=_load_subscriptions(problems, data),
        logging=_load_logging(problems, data),
        outbox=_load_outbox(problems, data),
        retention=_load_retention(problems, data),
        payments=_load_payments(problems, data),
        reconcile=_load_reconcile(problems, data),
        stars=_load_stars(problems, data),
        bot=_load_bot(problems, data),
        relative_paths_from=problems.folder if problems.relative_used else None,
    )
    if config.retention.webhook_ids_days * 86400 < 2 * config.webhooks.tolerance_seconds:
        problems.add("[retention] webhook_ids_days", "must keep webhook-ids at least twice [webhooks] tolerance_seconds")
    if problems.lines:
        raise ConfigError(problems.lines)
    return config


def _load_server(problems: _Problems, data: dict[str, Any]) -> ServerConfig:
    known = {
        "host", "port", "unix_socket", "trusted_proxies", "max_body_bytes", "status_allowed_ips",
        "header_timeout_seconds", "body_timeout_seconds", "keepalive_timeout_seconds", "max_connections",
        "max_connections_per_address", "metrics", "event_loop",
    }
    s = _section(problems, data, "server", known)
    d = ServerConfig()
    unix_socket = ""
    if s.string("unix_socket", d.unix_socket):
        socket_path = s.path("unix_socket", None)
        unix_socket = str(socket_path) if socket_path else ""
    host = s.string("host", d.host)
    port = s.integer("port", d.port, minimum=0, maximum=65535)
    # One listener: the unix socket, or host:port. A host left at its default next to unix_socket is
    # what the shipped example does; any other host would be silently ignored, so it is refused.
    if unix_socket and host != d.host:
        problems.add(
            "[server] host",
            f'{host!r} and unix_socket {s.table["unix_socket"]!r} are both set, but telepayd listens on one or the '
            f'other: remove host (or leave it at "{d.host}") to listen on the socket, or remove unix_socket',
        )
    return ServerConfig(
        host=host,
        port=port,
        unix_socket=unix_socket,
        trusted_proxies=s.networks("trusted_proxies", d.trusted_proxies),
        max_body_bytes=s.integer("max_body_bytes", d.max_body_bytes, minimum=1024, maximum=16 * 1024 * 1024),
        status_allowed_ips=s.networks("status_allowed_ips", d.status_allowed_ips),
        header_timeout_seconds=s.number("header_timeout_seconds", d.header_timeout_seconds, minimum=1, maximum=300),
        body_timeout_seconds=s.number("body_timeout_seconds", d.body_timeout_seconds, minimum=1, maximum=300),
        keepalive_timeout_seconds=s.number(
            "keepalive_timeout_seconds", d.keepalive_timeout_seconds, minimum=1, maximum=3600
        ),
        max_connections=s.integer("max_connections", d.max_connections, minimum=16, maximum=1_000_000),
        max_connections_per_address=s.integer(
            "max_connections_per_address", d.max_connections_per_address, minimum=1, maximum=1_000_000),
        metrics=s.boolean("metrics", d.metrics),
        event_loop=s.string("event_loop", d.event_loop, choices=("uvloop", "asyncio")),
    )


def _rate_limit(problems: _Problems, section: _Section, default: RateLimitConfig) -> RateLimitConfig:
    """``[<section>.rate_limit]``: per client address, a token bucket of ``burst`` refilled at ``per_minute``."""
    r = _Section(problems, f"{section.name}.rate_limit", section.table.get("rate_limit", {}), {"per_minute", "burst", "max_clients"})
    return RateLimitConfig(
        per_minute=r.integer("per_minute", default.per_minute, minimum=1, maximum=1_000_000),
        burst=r.integer("burst", default.burst, minimum=1, maximum=1_000_000),
        max_clients=r.integer("max_clients", default.max_clients, minimum=1, maximum=10_000_000),
    )


def _load_webhooks(problems: _Problems, data: dict[str, Any]) -> WebhooksConfig:
    s = _section(problems, data, "webhooks", {"allowed_ips", "secrets_file", "tolerance_seconds", "rate_limit"})
    d = WebhooksConfig()
    rate_limit = _rate_limit(problems, s, d.rate_limit)
    secrets_file = s.path("secrets_file", d.secrets_file)
    where = "[webhooks] secrets_file"
    secrets = read_secret_lines(secrets_file, problems, where)
    for number, secret in enumerate(secrets, start=1):
        try:
            decode_secret(secret)
        except ValueError as exc:
            problems.add(where, f"secret on line {number} of {problems.shown[where]} is not usable: {exc}")
    return WebhooksConfig(
        allowed_ips=s.networks("allowed_ips", d.allowed_ips),
        secrets_file=secrets_file or d.secrets_file,
        tolerance_seconds=s.integer("tolerance_seconds", d.tolerance_seconds, minimum=1, maximum=86400),
        rate_limit=rate_limit,
        secrets=secrets,
    )


def _load_telegram(problems: _Problems, data: dict[str, Any]) -> TelegramConfig:
    known = {"mode", "token_file", "webhook_url", "webhook_secret_file", "api_base_url", "allowed_ips", "rate_limit"}
    s = _section(problems, data, "telegram", known)
    d = TelegramConfig()
    mode = s.string("mode", d.mode, choices=("webhook", "polling"))
    token_file = s.path("token_file", d.token_file)
    tokens = read_secret_lines(token_file, problems, "[telegram] token_file")
    token = tokens[0] if tokens else ""
    if token and not _TELEGRAM_TOKEN_PATTERN.fullmatch(token):
        problems.add("[telegram] token_file",
                     f"{problems.shown['[telegram] token_file']} does not hold a bot token like 123456:ABC-DEF... from @BotFather")
    webhook_secret_file = s.path("webhook_secret_file", d.webhook_secret_file)
    webhook_secrets: tuple[str, ...] = ()
    if mode == "webhook":
        where = "[telegram] webhook_secret_file"
        webhook_secrets = read_secret_lines(webhook_secret_file, problems, where)
        for number, secret in enumerate(webhook_secrets, start=1):
            if not _TELEGRAM_SECRET_PATTERN.fullmatch(secret):
                problems.add(where, f"line {number} of {problems.shown[where]}: Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and -")
    webhook_url = s.url("webhook_url", d.webhook_url, https=True)
    return TelegramConfig(
        mode=mode,
        token_file=token_file or d.token_file,
        webhook_url=webhook_url,
        webhook_secret_file=webhook_secret_file or d.webhook_secret_file,
        api_base_url=s.url("api_base_url", d.api_base_url),
        allowed_ips=s.networks("allowed_ips", d.allowed_ips),
        rate_limit=_rate_limit(problems, s, d.rate_limit),
        token=token,
        webhook_secrets=webhook_secrets,
    )


def _load_nowpayments(problems: _Problems, data: dict[str, Any]) -> NowPaymentsConfig:
    known = {"api_key_file", "ipn_secret_file", "api_base_url", "ipn_callback_url", "allowed_ips", "notify_owner_on_ipn",
             "rate_limit"}
    s = _section(problems, data, "nowpayments", known)
    d = NowPaymentsConfig()
    api_key_file = s.path("api_key_file", d.api_key_file)
    api_keys = read_secret_lines(api_key_file, problems, "[nowpayments] api_key_file")
    ipn_secret_file = s.path("ipn_secret_file", d.ipn_secret_file)
    return NowPaymentsConfig(
        api_key_file=api_key_file or d.api_key_file,
        ipn_secret_file=ipn_secret_file or d.ipn_secret_file,
        api_base_url=s.url("api_base_url", d.api_base_url),
        ipn_callback_url=s.url("ipn_callback_url", d.ipn_callback_url, https=True),
        allowed_ips=s.networks("allowed_ips", d.allowed_ips),
        notify_owner_on_ipn=s.boolean("notify_owner_on_ipn", d.notify_owner_on_ipn),
        rate_limit=_rate_limit(problems, s, d.rate_limit),
        api_key=api_keys[0] if api_keys else "",
        ipn_secrets=read_secret_lines(ipn_secret_file, problems, "[nowpayments] ipn_secret_file"),
    )


def _load_database(problems: _Problems, data: dict[str, Any]) -> DatabaseConfig:
    known = {"dsn", "password_file", "min_size", "max_size", "timeout_seconds", "migrate_on_start", "bot_pool_size"}
    s = _section(problems, data, "database", known)
    d = DatabaseConfig()
    dsn = s.string("dsn", d.dsn)
    if "password=" in dsn or re.match(r"postgres(ql)?://[^/@]*:[^/@]*@", dsn):
        problems.add("[database] dsn", "holds a password; put it in password_file instead")
    password = ""
    password_file: Path | None = None
    if s.string("password_file", ""):  # "" (the default): no password file
        password_file = s.path("password_file", None)
        lines = read_secret_lines(password_file, problems, "[database] password_file")
        password = lines[0] if lines else ""
    min_size = s.integer("min_size", d.min_size, minimum=0, maximum=1000)
    max_size = s.integer("max_size", d.max_size, minimum=1, maximum=1000)
    if max_size < min_size:
        problems.add("[database] max_size", f"must be at least min_size ({min_size}), got {max_size}")
    return DatabaseConfig(
        dsn=dsn,
        password_file=password_file,
        min_size=min_size,
        max_size=max_size,
        timeout_seconds=s.number("timeout_seconds", d.timeout_seconds, minimum=0.1, maximum=600),
        migrate_on_start=s.boolean("migrate_on_start", d.migrate_on_start),
        bot_pool_size=s.integer("bot_pool_size", d.bot_pool_size, minimum=1, maximum=100),
        password=password,
    )


def _load_donations(problems: _Problems, data: dict[str, Any]) -> DonationsConfig:
    s = _section(problems, data, "donations", {"min_amount", "max_amount", "keypad_timeout_seconds"})
    d = DonationsConfig()
    low = s.amount("min_amount", d.min_amount)
    high = s.amount("max_amount", d.max_amount)
    if high > Decimal("9999.99"):
        problems.add("[donations] max_amount", f'at most "9999.99" (the keypad has four integer digits), got "{high}"')
    if low > high:
        problems.add("[donations] min_amount", f'must not exceed max_amount ("{high}"), got "{low}"')
    return DonationsConfig(
        min_amount=low,
        max_amount=high,
        keypad_timeout_seconds=s.integer("keypad_timeout_seconds", d.keypad_timeout_seconds, minimum=10, maximum=3600),
    )


def _load_subscriptions(problems: _Problems, data: dict[str, Any]) -> SubscriptionsConfig:
    s = _section(
        problems, data, "subscriptions", {"reminder_days", "invite_link_hours", "removal_dry_run", "sweep_interval_seconds"}
    )
    d = SubscriptionsConfig()
    days = s.table.get("reminder_days", list(d.reminder_days))
    if not isinstance(days, list) or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 365 for n in days):
        s.bad("reminder_days", "a list of whole days from 1 to 365, like [3, 1]", days)
        days = list(d.reminder_days)
    return SubscriptionsConfig(
        reminder_days=tuple(sorted(set(days), reverse=True)),
        invite_link_hours=s.integer("invite_link_hours", d.invite_link_hours, minimum=1, maximum=720),
        removal_dry_run=s.boolean("removal_dry_run", d.removal_dry_run),
        sweep_interval_seconds=s.integer("sweep_interval_seconds", d.sweep_interval_seconds, minimum=1, maximum=3600),
    )


def _load_logging(problems: _Problems, data: dict[str, Any]) -> LoggingConfig:
    s = _section(problems, data, "logging", {"level", "format"})
    d = LoggingConfig()
    return LoggingConfig(
        level=s.string("level", d.level, choices=("debug", "info", "warning", "error")),
        format=s.string("format", d.format, choices=("plain", "json")),
    )


def _load_outbox(problems: _Problems, data: dict[str, Any]) -> OutboxConfig:
    s = _section(problems, data, "outbox", {"messages_per_second", "per_chat_per_second", "per_group_per_minute"})
    d = OutboxConfig()

    def rate(key: str, default: float) -> float:
        value = s.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10000:
            s.bad(key, "a rate from 0 (no limit) to 10000", value)
            return default
        return float(value)

    return OutboxConfig(
        messages_per_second=rate("messages_per_second", d.messages_per_second),
        per_chat_per_second=rate("per_chat_per_second", d.per_chat_per_second),
        per_group_per_minute=rate("per_group_per_minute", d.per_group_per_minute),
    )


def _load_payments(problems: _Problems, data: dict[str, Any]) -> PaymentsConfig:
    s = _section(problems, data, "payments", {"max_invoices_per_user_hour"})
    d = PaymentsConfig()
    return PaymentsConfig(
        max_invoices_per_user_hour=s.integer("max_invoices_per_user_hour", d.max_invoices_per_user_hour, minimum=1, maximum=1000),
    )


def _load_retention(problems: _Problems, data: dict[str, Any]) -> RetentionConfig:
    s = _section(problems, data, "retention", {"sent_outbox_days", "webhook_ids_days"})
    d = RetentionConfig()
    return RetentionConfig(
        sent_outbox_days=s.integer("sent_outbox_days", d.sent_outbox_days, minimum=1, maximum=3650),
        webhook_ids_days=s.integer("webhook_ids_days", d.webhook_ids_days, minimum=1, maximum=3650),
    )


def _load_reconcile(problems: _Problems, data: dict[str, Any]) -> ReconcileConfig:
    s = _section(problems, data, "reconcile",
                 {"enabled", "stale_after_minutes", "interval_seconds", "batch_size", "buyer_checks_per_hour"})
    d = ReconcileConfig()
    return ReconcileConfig(
        enabled=s.boolean("enabled", d.enabled),
        stale_after_minutes=s.integer("stale_after_minutes", d.stale_after_minutes, minimum=1, maximum=10080),
        interval_seconds=s.integer("interval_seconds", d.interval_seconds, minimum=1, maximum=86400),
        batch_size=s.integer("batch_size", d.batch_size, minimum=1, maximum=1000),
        buyer_checks_per_hour=s.integer("buyer_checks_per_hour", d.buyer_checks_per_hour, minimum=1, maximum=100),
    )


def _load_bot(problems: _Problems, data: dict[str, Any]) -> BotConfig:
    from .languages import AVAILABLE

    s = _section(problems, data, "bot", {"default_language", "wrong_codes_per_hour"})
    d = BotConfig()
    return BotConfig(
        default_language=s.string("default_language", d.default_language, choices=AVAILABLE),
        wrong_codes_per_hour=s.integer("wrong_codes_per_hour", d.wrong_codes_per_hour, minimum=1, maximum=1000),
    )


def _load_stars(problems: _Problems, data: dict[str, Any]) -> StarsConfig:
    s = _section(problems, data, "stars", {"enabled", "usd_per_star", "support_text", "terms_text", "sweep_interval_seconds"})
    d = StarsConfig()
    enabled = s.boolean("enabled", False) if "enabled" in s.table else None
    value = s.table.get("usd_per_star", str(d.usd_per_star))
    try:
        rate = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or not Decimal("0.0001") <= rate <= Decimal("100"):
        s.bad("usd_per_star", 'the USD value of one Star as a string, from "0.0001" to "100", like "0.013"', value)
        rate = d.usd_per_star

    def text(key: str, default: str) -> str:
        value = s.string(key, default)
        if not value.strip() or len(value) > 4000 or "\x00" in value:
            s.bad(key, "1 to 4000 characters of text", value[:40])
            return default
        return value.strip()

    return StarsConfig(
        enabled=enabled,
        usd_per_star=rate,
        support_text=text("support_text", d.support_text),
        terms_text=text("terms_text", d.terms_text),
        sweep_interval_seconds=s.integer("sweep_interval_seconds", d.sweep_interval_seconds, minimum=1, maximum=86400),
    )

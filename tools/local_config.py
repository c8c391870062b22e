"""A complete telepayd config with generated secret files, for tests, benchmarks and ``make run``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telepayd.security.webhook_signature import generate_secret
from tools.local_postgres import free_port

TELEGRAM_TOKEN = "123456789:AAHtelepaydTestTokenTestTokenTest01"
TELEGRAM_SECRET_TOKEN = "tg-secret-token-1"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


@dataclass
class ConfigFiles:
    """A config file and its secret files in ``directory``; ``write()`` again after changing settings."""

    directory: Path
    dsn: str
    port: int = field(default_factory=free_port)
    webhook_secrets: list[str] = field(default_factory=lambda: [generate_secret()])
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where the Telegram Bot API and NowPayments live (the emulators), e.g. "http://127.0.0.1:9000".
    api_base: str | None = None

    @property
    def path(self) -> Path:
        return self.directory / "telepayd.toml"

    def secret_file(self, name: str) -> Path:
        return self.directory / name

    def write(self) -> Path:
        secrets = {
            "webhook-secrets": "\n".join(self.webhook_secrets),
            "telegram-token": TELEGRAM_TOKEN,
            "telegram-webhook-secret": TELEGRAM_SECRET_TOKEN,
            "nowpayments-api-key": "NP-TEST-KEY",
            "nowpayments-ipn-secret": "ipn-secret-1",
        }
        for name, text in secrets.items():
            path = self.secret_file(name)
            path.write_text(text + "\n")
            path.chmod(0o600)
        sections: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": self.port, "trusted_proxies": [], "max_body_bytes": 65536},
            "webhooks": {
                "allowed_ips": ["127.0.0.0/8", "::1/128"],
                "secrets_file": str(self.secret_file("webhook-secrets")),
                "tolerance_seconds": 300,
            },
            "webhooks.rate_limit": {"per_minute": 100000, "burst": 100000, "max_clients": 1000},
            "telegram": {
                "token_file": str(self.secret_file("telegram-token")),
                "webhook_secret_file": str(self.secret_file("telegram-webhook-secret")),
                "webhook_url": f"http://127.0.0.1:{self.port}/telegram",
            },
            "nowpayments": {
                "api_key_file": str(self.secret_file("nowpayments-api-key")),
                "ipn_secret_file": str(self.secret_file("nowpayments-ipn-secret")),
                "ipn_callback_url": f"http://127.0.0.1:{self.port}/webhooks/nowpayments",
            },
            "database": {"dsn": self.dsn, "min_size": 1, "max_size": 4, "timeout_seconds": 5},
            "logging": {"level": "info"},
        }
        if self.api_base:
            sections["telegram"]["api_base_url"] = f"{self.api_base}/bot"
            sections["nowpayments"]["api_base_url"] = f"{self.api_base}/v1"
        for name, values in self.settings.items():
            sections.setdefault(name, {}).update(values)
        lines = []
        for name, values in sections.items():
            lines.append(f"[{name}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
            lines.append("")
        self.path.write_text("\n".join(lines))
        return self.path

"""The config loader and ``telepayd check-config``: every problem reported precisely, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from telepayd.config import load
from telepayd.errors import ConfigError
from tests.harness import ConfigFiles


@pytest.fixture
def files(tmp_path: Path) -> ConfigFiles:
    files = ConfigFiles(tmp_path, "postgresql://telepay@localhost/telepay")
    files.write()
    return files


def problems(files: ConfigFiles) -> list[str]:
    files.write()
    with pytest.raises(ConfigError) as caught:
        load(files.path)
    return caught.value.problems


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telepayd", "check-config", "-c", str(path)], capture_output=True, text=True
    )


def test_valid_config_loads_typed_values(files):
    config = load(files.path)
    assert config.server.port == files.port
    assert config.webhooks.secrets == tuple(files.webhook_secrets)
    assert config.donations.min_amount == Decimal("4.99")
    assert config.subscriptions.reminder_days == (3, 1)
    assert config.telegram.webhook_path == "/telegram"
    assert "whsec_" not in repr(config)  # secrets never reach logs through repr


def test_shipped_example_config_parses(tmp_path):
    example = Path(__file__).resolve().parents[1] / "packaging" / "telepayd.toml"
    text = example.read_text()
    assert "[webhooks.rate_limit]" in text
    import tomllib

    data = tomllib.loads(text)
    assert data["server"]["port"] == 8080 and data["donations"]["max_amount"] == "9999.99"


def test_every_problem_is_reported_with_file_key_and_expectation(files):
    files.settings = {
        "server": {"port": 70000, "trusted_proxies": ["10.0.0.0/8", "not-an-ip"]},
        "webhooks": {"tolerance_seconds": "300"},
        "logging": {"level": "loud", "colour": True},
        "donations": {"min_amount": "4.999"},
    }
    found = problems(files)
    text = "\n".join(found)
    assert f"{files.path}: [server] port: expected a whole number from 0 to 65535, got 70000" in found
    assert "[server] trusted_proxies: not an IPv4 or IPv6 address or CIDR network: 'not-an-ip'" in text
    assert "[webhooks] tolerance_seconds: expected a whole number from 1 to 86400, got '300'" in text
    assert '[logging] level: expected "debug" or "info" or "warning" or "error"' in text
    assert "[logging] colour: unknown key" in text
    assert "[donations] min_amount" in text
    assert len(found) == 6


def test_secret_file_problems(files):
    files.write()
    files.secret_file("webhook-secrets").write_text("not-a-whsec\n")
    files.secret_file("telegram-token").unlink()
    files.secret_file("nowpayments-ipn-secret").chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load(files.path)
    text = "\n".join(caught.value.problems)
    assert "secret on line 1" in text and "starts with 'whsec_'" in text
    assert "telegram-token does not exist" in text
    assert "nowpayments-ipn-secret is readable by everyone" in text


def test_password_in_dsn_is_refused(files):
    files.settings = {"database": {"dsn": "postgresql://telepay:hunter2@localhost/telepay"}}
    assert any("put it in password_file" in p for p in problems(files))


def test_check_config_cli_exit_codes_and_lines(files):
    ok = check_config(files.path)
    assert ok.returncode == 0 and "configuration ok" in ok.stdout
    files.settings = {"server": {"max_body_bytes": 10}}
    files.write()
    bad = check_config(files.path)
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"{files.path}: [server] max_body_bytes: expected a whole number from 1024 to 16777216, got 10"
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("content", ["[server\nport = 1", "\xff\xfe"])
def test_unparseable_files_get_one_clear_line(tmp_path, content):
    path = tmp_path / "broken.toml"
    path.write_bytes(content.encode("latin-1"))
    result = check_config(path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file(tmp_path):
    result = check_config(tmp_path / "nope.toml")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_run_with_bad_config_exits_with_the_config_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "telepayd", "run", "-c", str(tmp_path / "nope.toml")], capture_output=True, text=True
    )
    assert result.returncode == 78
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_slow_client_limits_have_defaults_and_bounds(files):
    server = load(files.path).server
    assert (server.header_timeout_seconds, server.body_timeout_seconds) == (10.0, 10.0)
    assert (server.keepalive_timeout_seconds, server.max_connections) == (15.0, 4096)
    files.settings = {"server": {"header_timeout_seconds": 2.5, "body_timeout_seconds": 300,
                                 "keepalive_timeout_seconds": 1, "max_connections": 16}}
    files.write()
    server = load(files.path).server
    assert (server.header_timeout_seconds, server.body_timeout_seconds) == (2.5, 300.0)
    assert (server.keepalive_timeout_seconds, server.max_connections) == (1.0, 16)

    files.settings = {"server": {"header_timeout_seconds": 0, "body_timeout_seconds": "10",
                                 "keepalive_timeout_seconds": 3601, "max_connections": 15}}
    found = problems(files)
    assert found == [
        f"{files.path}: [server] header_timeout_seconds: expected a number of seconds from 1 to 300, got 0",
        f"{files.path}: [server] body_timeout_seconds: expected a number of seconds from 1 to 300, got '10'",
        f"{files.path}: [server] keepalive_timeout_seconds: expected a number of seconds from 1 to 3600, got 3601",
        f"{files.path}: [server] max_connections: expected a whole number from 16 to 1000000, got 15",
    ]
    files.settings = {"server": {"max_connections": 1_000_001, "header_timeout_seconds": True}}
    assert len(problems(files)) == 2

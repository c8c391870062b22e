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


def test_the_event_loop_is_uvloop_by_default_or_asyncio(files):
    assert load(files.path).server.event_loop == "uvloop"
    files.settings = {"server": {"event_loop": "asyncio"}}
    files.write()
    assert load(files.path).server.event_loop == "asyncio"
    files.settings = {"server": {"event_loop": "trio"}}
    assert problems(files) == [f"{files.path}: [server] event_loop: expected \"uvloop\" or \"asyncio\", got 'trio'"]


def test_relative_paths_are_read_from_the_config_files_folder(files, tmp_path):
    files.settings = {
        "webhooks": {"secrets_file": "webhook-secrets"},
        "telegram": {"token_file": "./telegram-token", "webhook_secret_file": "telegram-webhook-secret"},
        "nowpayments": {"api_key_file": "nowpayments-api-key", "ipn_secret_file": "nowpayments-ipn-secret"},
        "database": {"password_file": "db-password"},
        "server": {"unix_socket": "run/telepayd.sock"},
    }
    files.write()
    (files.directory / "db-password").write_text("hunter2\n")
    (files.directory / "db-password").chmod(0o600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Read from the config file's folder, not from the current directory.
    result = subprocess.run([sys.executable, "-m", "telepayd", "check-config", "-c", str(files.path)],
                            capture_output=True, text=True, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"relative paths are read from {files.directory}"
    config = load(files.path)
    assert config.webhooks.secrets_file == files.directory / "webhook-secrets"
    assert config.webhooks.secrets == tuple(files.webhook_secrets)
    assert config.database.password == "hunter2"
    assert config.server.unix_socket == str(files.directory / "run" / "telepayd.sock")
    assert config.relative_paths_from == files.directory


def test_absolute_paths_only_say_nothing_about_relative_ones(files):
    ok = check_config(files.path)
    assert ok.returncode == 0 and "relative" not in ok.stdout and load(files.path).relative_paths_from is None


def test_a_path_problem_names_only_what_the_user_wrote(files):
    files.settings = {"webhooks": {"secrets_file": "nope"}, "telegram": {"token_file": 5},
                      "nowpayments": {"ipn_secret_file": "~/ipn-secret"}}
    found = problems(files)
    assert found == [
        f"{files.path}: [webhooks] secrets_file: secret file nope (read as {files.directory / 'nope'}) does not exist",
        f"{files.path}: [telegram] token_file: expected a file path (absolute, or relative to the config file's folder), got 5",
        f"{files.path}: [nowpayments] ipn_secret_file: expected a file path without ~ (it is not expanded): write the full path, "
        "got '~/ipn-secret'",
    ]
    # A key left out is read at its default, and the problem says so.
    files.settings = {}
    files.write()
    text = files.path.read_text().replace(f'token_file = "{files.secret_file("telegram-token")}"\n', "")
    files.path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(files.path)
    assert caught.value.problems == [
        f"{files.path}: [telegram] token_file: secret file /etc/telepayd/telegram-token (the default: token_file is not set)"
        " does not exist"
    ]


def test_networks_with_host_bits_set_are_refused_with_the_network_meant(files):
    files.settings = {
        "server": {"trusted_proxies": ["192.168.1.1/24", "10.0.0.0/8"], "status_allowed_ips": ["127.0.0.1/8"]},
        "webhooks": {"allowed_ips": ["2001:db8::1/64", "203.0.113.7"]},
        "telegram": {"allowed_ips": ["149.154.167.1/20"]},
        "nowpayments": {"allowed_ips": ["51.89.194.21/32", "51.75.77.69/31"]},
    }
    found = [p.removeprefix(f"{files.path}: ") for p in problems(files)]
    assert found == [
        "[server] trusted_proxies: '192.168.1.1/24' has host bits set: write '192.168.1.0/24' for the network, "
        "or '192.168.1.1/32' for the one address",
        "[server] status_allowed_ips: '127.0.0.1/8' has host bits set: write '127.0.0.0/8' for the network, "
        "or '127.0.0.1/32' for the one address",
        "[webhooks] allowed_ips: '2001:db8::1/64' has host bits set: write '2001:db8::/64' for the network, "
        "or '2001:db8::1/128' for the one address",
        "[telegram] allowed_ips: '149.154.167.1/20' has host bits set: write '149.154.160.0/20' for the network, "
        "or '149.154.167.1/32' for the one address",
        "[nowpayments] allowed_ips: '51.75.77.69/31' has host bits set: write '51.75.77.68/31' for the network, "
        "or '51.75.77.69/32' for the one address",
    ]


@pytest.mark.parametrize("section, key, path", [("telegram", "webhook_url", "/telegram"),
                                                ("nowpayments", "ipn_callback_url", "/webhooks/nowpayments")])
def test_callback_urls_must_be_https_except_on_this_machine(files, section, key, path):
    for url in (f"https://pay.example.com{path}", f"http://127.0.0.1:8080{path}", f"http://localhost{path}",
                f"http://[::1]:8080{path}"):
        files.settings = {section: {key: url}}
        files.write()
        assert getattr(getattr(load(files.path), section), key) == url
    for url in (f"http://pay.example.com{path}", f"http://10.0.0.5{path}", f"ftp://pay.example.com{path}"):
        files.settings = {section: {key: url}}
        assert problems(files) == [f"{files.path}: [{section}] {key}: expected an https:// URL"
                                   + (" (http:// only for 127.0.0.1, ::1 or localhost)" if url.startswith("http:") else "")
                                   + f", got '{url}'"]


def test_host_and_unix_socket_together_are_refused_unless_host_is_the_default(files):
    for server in ({"unix_socket": "/run/telepayd/telepayd.sock", "host": "127.0.0.1"},
                   {"unix_socket": "/run/telepayd/telepayd.sock"}):
        files.settings = {"server": server}
        files.write()
        if "host" not in server:
            files.path.write_text(files.path.read_text().replace('host = "127.0.0.1"\n', "", 1))
        assert load(files.path).server.unix_socket == "/run/telepayd/telepayd.sock"
    files.settings = {"server": {"unix_socket": "/run/telepayd/telepayd.sock", "host": "0.0.0.0"}}
    assert problems(files) == [
        f"{files.path}: [server] host: '0.0.0.0' and unix_socket '/run/telepayd/telepayd.sock' are both set, but telepayd "
        'listens on one or the other: remove host (or leave it at "127.0.0.1") to listen on the socket, or remove unix_socket'
    ]

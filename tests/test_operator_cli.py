"""The operator's commands: channels, orders, subscriptions, set-webhook — clear lines, never a traceback."""

from __future__ import annotations

import json

from tests.test_buying_e2e import CLOSED, OPEN, OWNER, add_channel, db, telepayd


def test_channel_validation_errors_are_one_clear_line(config_files):
    assert telepayd(config_files, "migrate").returncode == 0
    base = ["channels", "add", "--open", str(OPEN), "--closed", str(CLOSED), "--owner", str(OWNER), "--title", "T"]
    cases = {
        "expected a Telegram chat id": [*base[:3], "abc", *base[4:], "--tier", "9.99:30"],
        "above 0 and at most two decimals": [*base, "--tier=-5:30"],
        "at most two decimals": [*base, "--tier", "9.999:30"],
        "DAYS must be a whole number": [*base, "--tier", "9.99:0"],
        "at most 3 tiers": [*base, *["--tier", "1:1"] * 4],
        "give 1 to 3 --tier": base,
        "must be different channels": ["channels", "add", "--open", str(OPEN), "--closed", str(OPEN), "--owner", "1", "--title", "T", "--tier", "1:1"],
    }
    for expected, args in cases.items():
        result = telepayd(config_files, *args)
        assert result.returncode == 1, (expected, result.stdout)
        assert expected in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert db(config_files, "SELECT count(*) FROM channels") == [(0,)]


def test_duplicate_channels_are_refused(config_files):
    add_channel(config_files, "9.99:30")
    again = telepayd(config_files, "channels", "add", "--open", str(OPEN), "--closed", "-1009", "--owner", "1", "--title", "X", "--tier", "1:1")
    assert again.returncode == 1 and "already registered" in again.stderr


def test_commands_before_migrate_say_what_to_do(config_files):
    result = telepayd(config_files, "channels", "list")
    assert result.returncode == 1 and "run 'telepayd migrate' first" in result.stderr


def test_list_update_and_remove_with_active_subscribers(config_files):
    key = add_channel(config_files, "9.99:30", "24.99:90")
    listing = telepayd(config_files, "channels", "list")
    assert f"{key}\topen {OPEN}\tclosed {CLOSED}" in listing.stdout and "$9.99/30d, $24.99/90d" in listing.stdout
    assert telepayd(config_files, "channels", "update", str(key), "--tier", "12.00:30", "--title", "New").returncode == 0
    assert "New\t$12.00/30d" in telepayd(config_files, "channels", "list").stdout
    granted = telepayd(config_files, "subscriptions", "grant", "--user", "42", "--channel", str(OPEN), "--days", "7")
    assert granted.returncode == 0 and "a join link is queued" in granted.stdout
    refused = telepayd(config_files, "channels", "remove", str(key))
    assert refused.returncode == 1 and "1 active subscriber(s); add --force" in refused.stderr
    removed = telepayd(config_files, "channels", "remove", str(key), "--force")
    assert removed.returncode == 0 and "run to their end" in removed.stdout
    assert "no channels" in telepayd(config_files, "channels", "list").stdout
    assert "(removed)" in telepayd(config_files, "channels", "list", "--all").stdout
    # The subscription still runs; the operator's actions are recorded.
    assert db(config_files, "SELECT count(*) FROM subscriptions WHERE ends_at > now()") == [(1,)]
    actions = [a for (a,) in db(config_files, "SELECT action FROM operator_actions ORDER BY id")]
    assert actions == ["channel_add", "channel_update", "subscription_grant", "channel_remove"]


def test_grant_and_revoke(config_files):
    key = add_channel(config_files, "9.99:30")
    assert telepayd(config_files, "subscriptions", "grant", "--user", "42", "--channel", str(key), "--days", "3").returncode == 0
    revoked = telepayd(config_files, "subscriptions", "revoke", "--user", "42", "--channel", str(key))
    assert revoked.returncode == 0 and "ended now" in revoked.stdout
    again = telepayd(config_files, "subscriptions", "revoke", "--user", "42", "--channel", str(key))
    assert again.returncode == 1 and "no active subscription" in again.stderr
    missing = telepayd(config_files, "subscriptions", "grant", "--user", "42", "--channel", "999", "--days", "3")
    assert missing.returncode == 1 and "no channel 999" in missing.stderr


def test_orders_show_errors(config_files):
    add_channel(config_files, "9.99:30")
    assert "no order 'nope'" in telepayd(config_files, "orders", "show", "nope").stderr
    assert "no orders for user 5" in telepayd(config_files, "orders", "show", "--user", "5").stdout
    both = telepayd(config_files, "orders", "show")
    assert both.returncode == 2 and "give an ORDER_ID or --user ID" in both.stderr


def test_set_webhook_registers_url_secret_and_updates(config_files, emulator):
    result = telepayd(config_files, "set-webhook")
    assert result.returncode == 0, result.stderr
    (call,) = emulator.calls("setWebhook")
    params = call["params"]
    assert params["url"] == f"http://127.0.0.1:{config_files.port}/telegram"
    assert params["secret_token"] == "tg-secret-token-1"
    assert {"chat_join_request", "chat_member", "callback_query", "message"} <= set(params["allowed_updates"])


def test_set_webhook_reports_telegram_refusing(config_files, emulator):
    emulator.fail("setWebhook", 400, description="Bad Request: bad webhook: HTTPS url must be provided", count=1)
    result = telepayd(config_files, "set-webhook")
    assert result.returncode == 1 and "Telegram refused" in result.stderr and "https url" in result.stderr.lower()
    assert "Traceback" not in result.stderr


async def test_telegram_down_at_start_then_recovers(config_files, start_daemon, emulator):
    import aiohttp

    emulator.fail("getMe", 502, description="Bad Gateway", seconds=3)
    daemon = start_daemon(config_files)
    assert "degraded" in daemon.notify.messages[0] and "telegram" in daemon.notify.messages[0]
    async with aiohttp.ClientSession() as session:
        async with session.get(daemon.base_url + "/ready") as response:
            assert response.status == 503 and (await response.json())["down"] == ["telegram"]
        async with session.post(daemon.base_url + "/telegram", json={"update_id": 1},
                                headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret-token-1"}) as response:
            assert response.status == 503 and response.headers["Retry-After"]
        for _ in range(100):
            async with session.get(daemon.base_url + "/ready") as response:
                if response.status == 200:
                    break
            await __import__("asyncio").sleep(0.2)
        assert response.status == 200


def test_polling_mode_polls(config_files, start_daemon, emulator):
    config_files.settings = {"telegram": {"mode": "polling"}}
    config_files.write()
    start_daemon(config_files)
    assert emulator.wait_calls("getUpdates")
    assert emulator.calls("getUpdates")[0]["params"]["allowed_updates"] == json.loads(
        json.dumps(["message", "callback_query", "chat_join_request", "chat_member", "my_chat_member"]))


def test_psycopg_is_only_used_in_the_store():
    """SQL lives in telepayd/store/: nothing else runs execute()."""
    import pathlib

    import telepayd

    root = pathlib.Path(telepayd.__file__).parent
    offenders = [
        str(path.relative_to(root)) for path in root.rglob("*.py")
        if "store" not in path.parts and (".execute(" in path.read_text() or "SELECT " in path.read_text())
    ]
    assert offenders == []


def test_a_new_first_telegram_secret_token_calls_setwebhook_on_reload(config_files, start_daemon, emulator):
    import signal

    daemon = start_daemon(config_files)
    config_files.secret_file("telegram-webhook-secret").write_text("tg-secret-token-2\ntg-secret-token-1\n")
    mark = len(daemon.notify.messages)
    daemon.send(signal.SIGHUP)
    daemon.notify.wait_for("READY=1", start=mark)
    (call,) = emulator.wait_calls("setWebhook")
    assert call["params"]["secret_token"] == "tg-secret-token-2"
    from tests.harness import TelegramUser

    # During the overlap both tokens are accepted.
    assert TelegramUser(daemon, 1, secret="tg-secret-token-1").send("/help") == 200
    assert TelegramUser(daemon, 1, secret="tg-secret-token-2").send("/help") == 200

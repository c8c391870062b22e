"""The operator's commands: channels, orders, subscriptions, set-webhook — clear lines, never a traceback."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import psycopg
import pytest

from telepayd.admin import cannot_succeed
from telepayd.cli import build_parser
from telepayd.store.outbox import OutboxMessage
from tests.test_buying_e2e import CLOSED, OPEN, OWNER, add_channel, db, telepayd


def test_channel_validation_errors_are_one_clear_line(config_files):
    assert telepayd(config_files, "migrate").returncode == 0
    base = ["channels", "add", "--open", str(OPEN), "--closed", str(CLOSED), "--owner", str(OWNER), "--title", "T"]
    cases = {
        "--open 'abc': expected a channel id": [*base[:3], "abc", *base[4:], "--tier", "9.99:30"],
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


def test_channel_and_owner_ids_must_have_their_form(config_files):
    """--open and --closed are channel ids (-100 then digits), --owner a user's chat id (positive)."""
    assert telepayd(config_files, "migrate").returncode == 0
    ids = {"--open": str(OPEN), "--closed": str(CLOSED), "--owner": str(OWNER)}
    cases = [
        ("--open", "1001111111111", "--open '1001111111111': expected a channel id, -100 followed by digits"),
        ("--open", "-1111111111", "--open '-1111111111': expected a channel id"),  # a basic group's id
        ("--closed", "555000111", "--closed '555000111': expected a channel id"),
        ("--closed", "-100", "--closed '-100': expected a channel id"),
        ("--owner", "-1003333333333", "--owner '-1003333333333': expected a user's chat id, a positive number"),
        ("--owner", "0", "--owner '0': expected a user's chat id"),
    ]
    for option, value, expected in cases:
        args = [a for name, given in {**ids, option: value}.items() for a in (name, given)]
        result = telepayd(config_files, "channels", "add", *args, "--title", "T", "--tier", "9.99:30")
        assert result.returncode == 1, (option, value, result.stdout)
        assert expected in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert db(config_files, "SELECT count(*) FROM channels") == [(0,)]
    key = add_channel(config_files, "9.99:30")
    refused = telepayd(config_files, "channels", "update", str(key), "--owner", str(OPEN))
    assert refused.returncode == 1 and f"--owner '{OPEN}': expected a user's chat id" in refused.stderr
    assert telepayd(config_files, "channels", "update", str(key), "--owner", "777").returncode == 0
    assert db(config_files, "SELECT owner_chat_id FROM channels") == [(777,)]


def test_channels_add_prints_the_deep_links(config_files, emulator):
    assert telepayd(config_files, "migrate").returncode == 0
    result = telepayd(config_files, "channels", "add", "--open", str(OPEN), "--closed", str(CLOSED), "--owner", str(OWNER),
                      "--title", "T", "--tier", "9.99:30")
    assert result.returncode == 0, result.stderr
    (key,) = [k for (k,) in db(config_files, "SELECT id FROM channels")]
    assert f"https://t.me/telepay_test_bot?start=sub_{key}" in result.stdout
    assert f"https://t.me/telepay_test_bot?start=don_{key}" in result.stdout
    assert len(emulator.calls("getMe")) == 1


@pytest.mark.parametrize("telegram", ["refuses the token", "cannot be reached"])
def test_channels_add_without_the_bot_username_still_adds(config_files, emulator, telegram):
    from tools.local_postgres import free_port

    if telegram == "refuses the token":
        emulator.fail("getMe", 401, description="Unauthorized", count=1)
        why = "Telegram refused the bot token"
    else:
        config_files.settings = {"telegram": {"api_base_url": f"http://127.0.0.1:{free_port()}/bot"}}
        config_files.write()
        why = "Telegram could not be reached"
    assert telepayd(config_files, "migrate").returncode == 0
    result = telepayd(config_files, "channels", "add", "--open", str(OPEN), "--closed", str(CLOSED), "--owner", str(OWNER),
                      "--title", "T", "--tier", "9.99:30")
    assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout, result.stderr
    (key,) = [k for (k,) in db(config_files, "SELECT id FROM channels")]
    first, second = result.stdout.splitlines()
    assert first.startswith(f"added channel {key}:") and f"start=sub_{key}" in first and f"start=don_{key}" in first
    assert "username could not be fetched" in second and why in second


def test_config_option_before_the_command_and_after_wins(config_files, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "telepayd", *args], capture_output=True, text=True)

    good, missing = str(config_files.path), str(tmp_path / "missing.toml")
    assert run("-c", good, "migrate").returncode == 0
    assert run("--config", good, "channels", "list").stdout.startswith("no channels")
    assert run("-c", missing, "channels", "list", "-c", good).returncode == 0  # after the command wins
    wrong = run("-c", good, "channels", "list", "--config", missing)
    assert wrong.returncode == 78 and f"{missing}: the config file does not exist" in wrong.stderr
    assert "after the command wins" in " ".join(run("--help").stdout.split())


def _every_argument(parser: argparse.ArgumentParser, path: str = "telepayd"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _every_argument(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_argument_of_every_command_is_explained():
    undocumented = [f"{path} {action.option_strings or action.dest}" for path, action in _every_argument(build_parser())
                    if not action.help or action.help == argparse.SUPPRESS]
    assert undocumented == []
    commands = [path for path, _ in _every_argument(build_parser())]
    assert "telepayd channels add" in commands and "telepayd outbox retry" in commands


def test_channels_add_help_explains_each_option(config_files):
    result = subprocess.run([sys.executable, "-m", "telepayd", "channels", "add", "--help"], capture_output=True, text=True)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for expected in ("--open ID the public channel", "-100 then digits",
                     "--owner CHAT_ID the owner's Telegram user id", "--tier PRICE:DAYS[:STARS] a plan", "9.99:30", "9.99:30:500",
                     "--title T the name buyers see"):
        assert expected in text, expected


def test_broadcast_refuses_a_channel_not_on_sale(config_files):
    key = add_channel(config_files, "9.99:30")
    assert telepayd(config_files, "broadcast", "--channel", str(OPEN)).returncode == 0
    for wrong in ("-1009999999999", str(CLOSED), str(key)):
        refused = telepayd(config_files, "broadcast", "--channel", str(OPEN), "--channel", wrong)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert f"--channel {wrong}: not the open channel id of a channel on sale" in refused.stderr
    assert telepayd(config_files, "channels", "remove", str(key)).returncode == 0
    gone = telepayd(config_files, "broadcast", "--channel", str(OPEN))
    assert gone.returncode == 1 and f"--channel {OPEN}: not the open channel id" in gone.stderr
    assert db(config_files, "SELECT open_channel_ids FROM broadcast_jobs") == [([str(OPEN)],)]


def test_revoke_takes_no_days(config_files):
    key = add_channel(config_files, "9.99:30")
    assert telepayd(config_files, "subscriptions", "grant", "--user", "42", "--channel", str(key), "--days", "3").returncode == 0
    refused = telepayd(config_files, "subscriptions", "revoke", "--user", "42", "--channel", str(key), "--days", "3")
    assert refused.returncode == 1 and "takes no --days" in refused.stderr and refused.stderr.count("\n") == 1
    assert db(config_files, "SELECT count(*) FROM subscriptions WHERE ends_at > now()") == [(1,)]


def _failed(kind: str, payload: dict, last_error: str, chat_id: int | None = 11) -> OutboxMessage:
    return OutboxMessage(id=1, kind=kind, chat_id=chat_id, payload=payload, attempts=1, status="failed",
                         last_error=last_error, created_at=None)  # type: ignore[arg-type]


def test_the_rule_for_what_a_retry_cannot_fix():
    blocked = "Forbidden: Forbidden: bot was blocked by the user"
    assert cannot_succeed(_failed("message", {"text": "hi"}, blocked)) == ""
    assert cannot_succeed(_failed("join_link", {}, "BadRequest: chat not found")) == ""
    assert cannot_succeed(_failed("message", {}, "undeliverable: KeyError: 'text'")) == "undeliverable: KeyError: 'text'"
    assert "unknown message kind 'fax'" in cannot_succeed(_failed("fax", {}, "PermanentFailure: unknown outbox kind"))
    orphan = _failed("notification", {"notification_id": 5}, "PermanentFailure: undeliverable: notification 5 names no known channel", None)
    assert "names no channel on sale" in cannot_succeed(orphan, target_exists=True, on_sale=False)
    assert cannot_succeed(orphan, target_exists=True, on_sale=True) == ""  # a channel with its open id is on sale now
    assert "notification 5 does not exist" in cannot_succeed(orphan, target_exists=False, on_sale=False)
    owned = _failed("notification", {"notification_id": 5}, blocked, 555)  # its owner was known: sent there
    assert cannot_succeed(owned, target_exists=True, on_sale=False) == ""
    post = _failed("channel_post", {"channel_id": 3}, "BadRequest: chat not found", OPEN)
    assert cannot_succeed(post, target_exists=True, on_sale=True) == ""
    assert "channel 3 is no longer on sale" in cannot_succeed(post, target_exists=True, on_sale=False)
    assert "channel 3 is no longer on sale" in cannot_succeed(post, target_exists=False, on_sale=False)


def test_outbox_retry_skips_what_cannot_succeed(config_files):
    key = add_channel(config_files, "9.99:30")
    gone = add_channel(config_files, "9.99:30", open_id=-1003000000000, closed_id=-1004000000000)
    assert telepayd(config_files, "channels", "remove", str(gone)).returncode == 0
    with psycopg.connect(config_files.dsn) as conn:
        def notification(open_channel_id: str) -> int:
            return conn.execute("INSERT INTO notifications (webhook_id, open_channel_id, payment_type, payment_data)"
                                " VALUES (gen_random_uuid()::text, %s, 'donation', '{}') RETURNING id",
                                [open_channel_id]).fetchone()[0]

        def failed(kind: str, chat_id: int | None, payload: dict, error: str) -> int:
            return conn.execute("INSERT INTO outbox (kind, chat_id, payload, status, attempts, last_error)"
                                " VALUES (%s, %s, %s, 'failed', 1, %s) RETURNING id",
                                [kind, chat_id, json.dumps(payload), error]).fetchone()[0]

        unreadable = failed("message", 11, {}, "undeliverable: KeyError: 'text'")
        blocked = failed("message", 13, {"text": "hi"}, "Forbidden: bot was blocked by the user")
        orphan_id = notification("-1009999999999")
        orphan = failed("notification", None, {"notification_id": orphan_id},
                        f"PermanentFailure: undeliverable: notification {orphan_id} names no known channel (-1009999999999)")
        found_id = notification(str(OPEN))  # its channel was put on sale after it failed: it can go now
        found = failed("notification", None, {"notification_id": found_id},
                       f"PermanentFailure: undeliverable: notification {found_id} names no known channel ({OPEN})")
        post = failed("channel_post", -1003000000000, {"channel_id": gone}, f"PermanentFailure: channel {gone} is no longer on sale")
        live_post = failed("channel_post", OPEN, {"channel_id": key}, "Forbidden: bot is not a member of the channel chat")

    single = telepayd(config_files, "outbox", "retry", str(unreadable))
    assert single.returncode == 1 and single.stderr.count("\n") == 1
    assert f"message {unreadable} cannot succeed as it is (undeliverable: KeyError: 'text'); add --force" in single.stderr
    assert telepayd(config_files, "outbox", "retry", "--all", "--force").returncode == 1

    result = telepayd(config_files, "outbox", "retry", "--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"skipped {unreadable} (message): undeliverable: KeyError: 'text'",
        f"skipped {orphan} (notification): the notification names no channel on sale, so it has no owner to go to",
        f"skipped {post} (channel_post): channel {gone} is no longer on sale",
    ]
    assert lines[3].startswith("3 message(s) queued again; 3 skipped: they cannot succeed as they are")
    statuses = dict(db(config_files, "SELECT id, status FROM outbox WHERE kind <> 'join_link'"))
    assert statuses == {unreadable: "failed", blocked: "pending", orphan: "failed", found: "pending",
                        post: "failed", live_post: "pending"}

    forced = telepayd(config_files, "outbox", "retry", str(post), "--force")
    assert forced.returncode == 0 and "1 message(s) queued again" in forced.stdout
    assert db(config_files, "SELECT status FROM outbox WHERE id = %s", post) == [("pending",)]
    notes = [d for (d,) in db(config_files, "SELECT detail FROM operator_actions WHERE action = 'outbox_retry' ORDER BY id")]
    assert notes == ["3 message(s): all; 3 skipped", f"1 message(s): {post} (forced: channel {gone} is no longer on sale)"]


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
    assert {"chat_join_request", "chat_member", "callback_query", "message", "pre_checkout_query"} <= set(params["allowed_updates"])


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
        json.dumps(["message", "callback_query", "chat_join_request", "chat_member", "my_chat_member", "pre_checkout_query"]))


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

"""Nothing lost when Telegram misbehaves: the outbox, broadcasts and expiry through the running daemon."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import aiohttp
import psycopg

from telepayd.security.webhook_signature import sign
from tests.test_buying_e2e import add_channel, db, telepayd

OWNER_BASE = 880000000


def make_channels(config_files, count: int, *, owners: int | None = None) -> list[int]:
    """Insert channels straight into the database (the CLI takes a second each); return their open ids."""
    assert telepayd(config_files, "migrate").returncode == 0
    open_ids = []
    with psycopg.connect(config_files.dsn) as conn:
        for n in range(count):
            open_id = -1005000000000 - n
            key = conn.execute(
                "INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title) VALUES (%s, %s, %s, %s) RETURNING id",
                [open_id, -1006000000000 - n, OWNER_BASE + n % (owners or count), f"Channel {n}"],
            ).fetchone()[0]
            conn.execute("INSERT INTO tiers (channel_id, position, price, days) VALUES (%s, 1, 9.99, 30)", [key])
            open_ids.append(open_id)
    return open_ids


async def send_notifications(daemon, secret: str, open_ids: list[int], count: int, *, prefix: str = "n") -> list[int]:
    async with aiohttp.ClientSession() as session:
        semaphore = asyncio.Semaphore(32)

        async def post(n: int) -> int:
            body = json.dumps({"open_channel_id": str(open_ids[n % len(open_ids)]), "payment_type": "donation",
                               "payment_data": {"amount": f"{n}.00", "currency": "usd", "user_id": n}}).encode()
            headers = {**sign(secret, body, message_id=f"{prefix}-{n}").as_dict(), "Content-Type": "application/json"}
            async with semaphore, session.post(daemon.base_url + "/webhooks/notification", data=body, headers=headers) as r:
                return r.status

        return await asyncio.gather(*(post(n) for n in range(count)))


def delivered_amounts(emulator) -> Counter:
    """How many times Telegram accepted each notification (told apart by its amount)."""
    return Counter(
        c["params"]["text"].split(": ")[1].split(" USD")[0]
        for c in emulator.calls("sendMessage") if c["ok"] and "New donation" in c["params"]["text"]
    )


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


async def test_outage_then_429_loses_nothing_and_sends_nothing_twice(config_files, start_daemon, emulator):
    open_ids = make_channels(config_files, 50)
    daemon = start_daemon(config_files)
    emulator.fail("sendMessage", 502, description="Bad Gateway", seconds=30)
    started = time.monotonic()
    statuses = await send_notifications(daemon, config_files.webhook_secrets[0], open_ids, 500)
    assert statuses.count(202) == 500
    await asyncio.sleep(max(0.0, 30 - (time.monotonic() - started)))
    assert [c for c in emulator.calls("sendMessage") if c["ok"]] == []  # nothing got through the outage
    emulator.fail("sendMessage", 429, description="Too Many Requests: retry after 3", retry_after=3, count=1)
    assert wait_for(lambda: sum(delivered_amounts(emulator).values()) >= 500, 90)
    amounts = delivered_amounts(emulator)
    assert len(amounts) == 500 and set(amounts.values()) == {1}  # every one, exactly once
    calls = emulator.calls("sendMessage")
    (throttled,) = [c for c in calls if c.get("status") == 429]
    after = [c["at"] for c in calls if c["at"] > throttled["at"]]
    assert min(after) - throttled["at"] >= 2.9  # the 429's retry_after was honoured
    assert db(config_files, "SELECT count(*) FROM outbox WHERE status = 'sent'") == [(500,)]


async def test_kill_9_mid_delivery_loses_nothing(config_files, start_daemon, emulator):
    open_ids = make_channels(config_files, 25)
    config_files.settings = {"outbox": {"messages_per_second": 20}}
    config_files.write()
    daemon = start_daemon(config_files)
    assert (await send_notifications(daemon, config_files.webhook_secrets[0], open_ids, 200)).count(202) == 200
    assert wait_for(lambda: sum(delivered_amounts(emulator).values()) >= 40, 30)
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(10)
    start_daemon(config_files)
    assert wait_for(lambda: len(delivered_amounts(emulator)) >= 200, 60)
    amounts = delivered_amounts(emulator)
    assert len(amounts) == 200
    # A message can repeat only if Telegram accepted it just before the kill: one in flight at most.
    assert sum(n - 1 for n in amounts.values()) <= 1


async def test_two_daemons_deliver_each_notification_once(config_files, start_daemon, emulator, tmp_path):
    from tools.local_config import ConfigFiles

    open_ids = make_channels(config_files, 50)
    emulator.enforce_limits(per_second=30)
    first = start_daemon(config_files)
    other = tmp_path / "second"
    other.mkdir()
    second_files = ConfigFiles(other, config_files.dsn, webhook_secrets=config_files.webhook_secrets, api_base=emulator.base_url)
    second_files.write()
    second = start_daemon(second_files)
    half = await send_notifications(first, config_files.webhook_secrets[0], open_ids, 250, prefix="a")
    half += await send_notifications(second, config_files.webhook_secrets[0], open_ids[::-1], 250, prefix="b")
    assert half.count(202) == 500
    assert wait_for(lambda: sum(delivered_amounts(emulator).values()) >= 500, 90)
    time.sleep(1)
    accepted = [c for c in emulator.calls("sendMessage") if c["ok"]]
    assert len(accepted) == 500
    assert [c for c in emulator.calls("sendMessage") if not c["ok"]] == []  # no 429: the limits held across daemons
    assert db(config_files, "SELECT count(*) FROM outbox WHERE status = 'sent'") == [(500,)]


def test_broadcast_to_200_channels_within_limits_then_edits(config_files, start_daemon, emulator):
    open_ids = make_channels(config_files, 200)
    config_files.settings = {"outbox": {"messages_per_second": 25}, "subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    emulator.enforce_limits(per_second=30)
    daemon = start_daemon(config_files)
    body = b"{}"
    headers = {**sign(config_files.webhook_secrets[0], body).as_dict(), "Content-Type": "application/json"}
    from tests.harness import http_post

    assert http_post(daemon.base_url + "/webhooks/broadcast", body, headers)[0] == 202
    assert wait_for(lambda: len([c for c in emulator.calls("sendMessage") if c["ok"]]) >= 200, 60)
    posts = [c for c in emulator.calls("sendMessage") if c["ok"]]
    assert {int(c["params"]["chat_id"]) for c in posts} == set(open_ids)
    buttons = json.loads(json.dumps(posts[0]["params"]["reply_markup"]))["inline_keyboard"][0]
    assert buttons[0]["url"].startswith("https://t.me/telepay_test_bot?start=sub_") and "start=don_" in buttons[1]["url"]
    # The second broadcast (from the command line) edits the posts in place.
    assert "queued" in telepayd(config_files, "broadcast").stdout
    assert wait_for(lambda: len(emulator.calls("editMessageText")) >= 200, 60)
    assert len([c for c in emulator.calls("sendMessage") if c["ok"]]) == 200
    assert [c for c in emulator.calls() if not c["ok"]] == []  # no 429 anywhere


def test_a_channel_without_rights_is_reported_and_the_others_go_on(config_files, start_daemon, emulator):
    open_ids = make_channels(config_files, 3)
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    emulator.fail("sendMessage", 403, description="Forbidden: bot is not a member of the channel chat", count=1)
    start_daemon(config_files)
    assert telepayd(config_files, "broadcast").returncode == 0
    assert wait_for(lambda: len([c for c in emulator.calls("sendMessage") if c["ok"]]) >= 2, 20)
    assert db(config_files, "SELECT kind FROM anomalies") == [("broadcast_failed",)]
    failed = telepayd(config_files, "outbox", "failed")
    assert "channel_post" in failed.stdout and "bot is not a member" in failed.stdout
    message_id = failed.stdout.split()[0]
    assert "1 message(s) queued again" in telepayd(config_files, "outbox", "retry", message_id).stdout
    assert wait_for(lambda: len([c for c in emulator.calls("sendMessage") if c["ok"]]) == 3, 20)
    assert len(open_ids) == 3


async def test_unknown_channel_is_undeliverable_and_an_anomaly(config_files, start_daemon, emulator):
    make_channels(config_files, 1)
    daemon = start_daemon(config_files)
    assert await send_notifications(daemon, config_files.webhook_secrets[0], [-100999], 1) == [202]
    assert wait_for(lambda: db(config_files, "SELECT count(*) FROM outbox WHERE status = 'failed'") == [(1,)], 15)
    assert db(config_files, "SELECT kind FROM anomalies") == [("unknown_channel",)]
    assert "undeliverable" in telepayd(config_files, "outbox", "failed").stdout


def test_blocked_owner_fails_for_good_with_the_reason(config_files, start_daemon, emulator):
    open_ids = make_channels(config_files, 1)
    emulator.fail("sendMessage", 403, description="Forbidden: bot was blocked by the user")
    daemon = start_daemon(config_files)
    asyncio.run(send_notifications(daemon, config_files.webhook_secrets[0], open_ids, 2))
    assert wait_for(lambda: db(config_files, "SELECT count(*) FROM outbox WHERE status = 'failed'") == [(2,)], 15)
    assert "bot was blocked by the user" in telepayd(config_files, "outbox", "failed").stdout
    retried = telepayd(config_files, "outbox", "retry", "--all")
    assert "2 message(s) queued again" in retried.stdout


def test_expiry_reminds_once_per_day_and_removes_once_without_banning(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1, "reminder_days": [3, 1]}}
    config_files.write()
    user = 424242
    now = datetime.now(timezone.utc)
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("INSERT INTO subscriptions (user_id, channel_id, ends_at) VALUES (%s, %s, %s)", [user, key, now + timedelta(days=2.5)])
    start_daemon(config_files)

    def reminders() -> list:
        return [c for c in emulator.calls("sendMessage") if int(c["params"]["chat_id"]) == user and "ends on" in c["params"]["text"]]

    assert wait_for(lambda: len(reminders()) == 1, 15)
    time.sleep(2.5)  # more sweeps: no second reminder for the same day
    assert len(reminders()) == 1
    assert "start=sub_" in json.dumps(reminders()[0]["params"]["reply_markup"])
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = %s", [now + timedelta(hours=12)])
    assert wait_for(lambda: len(reminders()) == 2, 15)
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = %s", [now - timedelta(minutes=1)])
    assert wait_for(lambda: len(emulator.calls("unbanChatMember")) == 1, 15)
    time.sleep(2.5)
    (removal,) = emulator.calls("unbanChatMember")
    assert int(removal["params"]["user_id"]) == user and "only_if_banned" not in removal["params"]
    assert emulator.calls("banChatMember") == []
    assert wait_for(lambda: any("has ended" in c["params"]["text"] for c in emulator.calls("sendMessage")), 10)
    assert len(reminders()) == 2


def test_removal_dry_run_only_logs(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1, "removal_dry_run": True}}
    config_files.write()
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("INSERT INTO subscriptions (user_id, channel_id, ends_at) VALUES (7, %s, now() - interval '1 hour')", [key])
    daemon = start_daemon(config_files)
    assert wait_for(lambda: "removal_dry_run: would remove user 7" in daemon.log(), 15)
    time.sleep(2)
    assert emulator.calls("unbanChatMember") == []
    assert daemon.log().count("would remove user 7") == 1


def test_lost_invite_rights_are_an_anomaly_the_owner_hears_of(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    emulator.fail("createChatInviteLink", 400, description="Bad Request: not enough rights to manage chat invite link")
    start_daemon(config_files)
    granted = telepayd(config_files, "subscriptions", "grant", "--user", "77", "--channel", str(key), "--days", "3")
    assert granted.returncode == 0
    assert wait_for(lambda: db(config_files, "SELECT kind FROM anomalies") == [("bot_lost_rights",)], 15)
    assert wait_for(lambda: any("no longer an administrator" in c["params"]["text"] for c in emulator.calls("sendMessage")), 15)


def test_bot_demoted_in_a_closed_channel_is_an_anomaly(config_files, start_daemon, emulator):
    from tests.harness import TelegramUser
    from tests.test_buying_e2e import CLOSED, OWNER

    add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    owner = TelegramUser(daemon, OWNER, "owner")
    assert owner.bot_membership_changed(CLOSED, "administrator", can_invite_users=True) == 200
    assert owner.bot_membership_changed(-100123, "left") == 200  # not one of ours: nothing to say
    assert owner.bot_membership_changed(CLOSED, "administrator", can_invite_users=False) == 200
    assert wait_for(lambda: any("no longer an administrator" in c["params"]["text"] for c in emulator.calls("sendMessage")), 15)
    assert db(config_files, "SELECT kind FROM anomalies") == [("bot_lost_rights",)]


def test_retention_purges_sent_messages_and_old_webhook_ids_but_keeps_records(config_files, start_daemon, emulator):
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    make_channels(config_files, 1)
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("INSERT INTO outbox (kind, chat_id, payload, status, sent_at) VALUES"
                     " ('message', 1, '{}', 'sent', now() - interval '40 days'), ('message', 2, '{}', 'sent', now() - interval '1 day'),"
                     " ('message', 3, '{}', 'failed', NULL)")
        conn.execute("INSERT INTO webhook_messages (webhook_id, route, received_at) VALUES"
                     " ('old', 'notification', now() - interval '8 days'), ('new', 'notification', now())")
        conn.execute("INSERT INTO ipn_events (payment_id, payment_status, order_id, body, received_at) VALUES (1, 'finished', 'x', '{}', now() - interval '400 days')")
    daemon = start_daemon(config_files)
    assert wait_for(lambda: db(config_files, "SELECT chat_id FROM outbox ORDER BY chat_id") == [(2,), (3,)], 15)
    assert db(config_files, "SELECT webhook_id FROM webhook_messages") == [("new",)]
    assert db(config_files, "SELECT count(*) FROM ipn_events") == [(1,)]  # financial records are kept
    assert "retention: purged 1 sent outbox message(s) and 1 old webhook-id(s)" in daemon.log()


def test_a_deleted_channel_post_is_posted_again(config_files, start_daemon, emulator):
    open_ids = make_channels(config_files, 1)
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    emulator.enforce_limits()  # the emulator now knows which messages exist
    start_daemon(config_files)
    assert telepayd(config_files, "broadcast").returncode == 0
    assert wait_for(lambda: len([c for c in emulator.calls("sendMessage") if c["ok"]]) == 1, 15)
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE channel_posts SET message_id = 999999")  # as if an admin deleted the post
    assert telepayd(config_files, "broadcast").returncode == 0
    assert wait_for(lambda: len([c for c in emulator.calls("sendMessage") if c["ok"]]) == 2, 15)
    edits = emulator.calls("editMessageText")
    assert len(edits) == 1 and edits[0]["status"] == 400  # "message to edit not found": a new post instead
    assert db(config_files, "SELECT count(*) FROM outbox WHERE status = 'failed'") == [(0,)]
    assert int(emulator.calls("sendMessage")[-1]["params"]["chat_id"]) == open_ids[0]


def test_a_removal_waiting_in_the_outbox_spares_a_user_who_renewed(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("INSERT INTO subscriptions (user_id, channel_id, ends_at, removed_at) VALUES (9, %s, now() + interval '30 days', now())", [key])
        conn.execute("INSERT INTO outbox (kind, chat_id, payload) VALUES ('remove_member', 9, %s)",
                     [json.dumps({"closed_chat_id": -1002222222222, "title": "T", "channel_key": key})])
    start_daemon(config_files)
    assert wait_for(lambda: db(config_files, "SELECT status FROM outbox") == [("sent",)], 15)
    assert emulator.calls("unbanChatMember") == []

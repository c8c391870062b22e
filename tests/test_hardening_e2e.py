"""Paths an attacker picks, through the running daemon: ended users, refunds, non-ASCII digits, hostile IPN
bodies, floods of button presses, poison outbox rows, owner notifications queued ahead of a buyer."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg

from tests.emulators.nowpayments_api import ipn_body, sign_ipn
from tests.harness import TelegramUser, http_post
from tests.test_buying_e2e import ALICE, CLOSED, MALLORY, OWNER, add_channel, buttons, buy, db, telepayd, to
from tests.test_delivery_e2e import send_notifications, wait_for


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def _paid(config_files, emulator, daemon, key: int, user: TelegramUser, payment_id: int) -> tuple[str, str]:
    """Buy and pay; return the order id and the join link the buyer got."""
    order_id = buy(emulator, user, key)
    assert emulator.send_ipn(order_id, "finished", payment_id=payment_id)["status"] == 200
    dm = emulator.wait_calls("sendMessage", where=lambda p: to(user.user_id)(p) and "https://t.me/+" in p["text"])
    link = next(word for word in dm[-1]["params"]["text"].split() if word.startswith("https://t.me/+"))
    return order_id, link


# 1. A join request is approved only while the requester's access is active.

def test_a_revoked_user_cannot_come_back_and_their_links_are_revoked(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    _, link = _paid(config_files, emulator, daemon, key, alice, 5001)

    revoked = telepayd(config_files, "subscriptions", "revoke", "--user", str(ALICE), "--channel", str(key))
    assert revoked.returncode == 0, revoked.stderr
    # Removed now (not at the next sweep), and the link she still holds is revoked with Telegram.
    assert wait_for(lambda: len(emulator.calls("unbanChatMember")) == 1, 15)
    assert wait_for(lambda: [c["params"]["invite_link"] for c in emulator.calls("revokeChatInviteLink")] == [link], 15)
    assert db(config_files, "SELECT revoked_at IS NOT NULL FROM join_links") == [(True,)]

    # The old link, or a fresh one from the button: declined, and no anomaly (it is her own link).
    assert alice.ask_to_join(CLOSED, link) == 200
    assert emulator.wait_calls("declineChatJoinRequest")
    assert emulator.calls("approveChatJoinRequest") == []
    assert alice.press(f"link:{key}") == 200
    refusal = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "no join link" in p["text"])[-1]["params"]
    assert [b["callback_data"] for b in buttons(refusal)] == [f"ch:{key}"]  # Renew instead
    assert len(emulator.calls("createChatInviteLink")) == 1
    assert db(config_files, "SELECT kind FROM anomalies") == []
    # The revoke refused --days: it ends now and takes no amount.
    again = telepayd(config_files, "subscriptions", "revoke", "--user", str(ALICE), "--channel", str(key), "--days", "3")
    assert again.returncode == 1 and "takes no --days" in again.stderr


def test_a_revoke_landing_while_a_join_is_approved_still_removes_the_user(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    _, link = _paid(config_files, emulator, daemon, key, alice, 5003)
    emulator.slow("approveChatJoinRequest", 3.0)  # the approval is on its way to Telegram ...
    assert alice.ask_to_join(CLOSED, link) == 200
    assert emulator.wait_calls("approveChatJoinRequest")
    # ... when the operator revokes: its removal reaches Telegram before she is even in.
    assert telepayd(config_files, "subscriptions", "revoke", "--user", str(ALICE), "--channel", str(key)).returncode == 0
    assert wait_for(lambda: len(emulator.calls("unbanChatMember")) == 1, 10)
    # Once the approval went through, the daemon sees her access has ended and removes her again.
    assert wait_for(lambda: len(emulator.calls("unbanChatMember")) == 2, 15)
    approved_at = emulator.calls("approveChatJoinRequest")[0]["at"]
    assert emulator.calls("unbanChatMember")[-1]["at"] > approved_at + 2.5
    assert "removal queued" in daemon.log()


def test_an_expired_user_cannot_reuse_an_unexpired_link(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    _, link = _paid(config_files, emulator, daemon, key, alice, 5002)
    with psycopg.connect(config_files.dsn) as conn:  # the subscription ended, removal done; the link lives on
        conn.execute("UPDATE subscriptions SET ends_at = now() - interval '1 minute', removed_at = now()")
    assert alice.ask_to_join(CLOSED, link) == 200
    assert emulator.wait_calls("declineChatJoinRequest")
    assert emulator.calls("approveChatJoinRequest") == []


# 2. A refund after finished takes back what it granted.

def test_a_refund_after_finished_takes_back_the_days_and_removes_at_zero(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    first, _ = _paid(config_files, emulator, daemon, key, alice, 6001)
    second = buy(emulator, alice, key)  # the first order is paid, so this is a new one
    assert emulator.send_ipn(second, "finished", payment_id=6002)["status"] == 200
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions")[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=60))) < timedelta(minutes=2)

    refunded = emulator.send_ipn(second, "refunded", payment_id=6002)
    assert refunded["status"] == 200 and refunded["answer"]["outcome"] == "refunded: access taken back"
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions")[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=2)
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "refunded" in p["text"] and "now ends" in p["text"])
    assert emulator.wait_calls("sendMessage", where=lambda p: to(OWNER)(p) and "30 days of access were taken back" in p["text"])
    assert emulator.calls("unbanChatMember") == []

    # A duplicate refund IPN takes nothing more; the first payment's refund reaches now: removed as at expiry.
    assert emulator.send_ipn(second, "refunded", payment_id=6002)["answer"]["outcome"] == "duplicate"
    assert emulator.send_ipn(first, "refunded", payment_id=6001)["status"] == 200
    assert wait_for(lambda: len(emulator.calls("unbanChatMember")) == 1, 15)
    assert db(config_files, "SELECT ends_at <= now(), removed_at IS NOT NULL FROM subscriptions") == [(True, True)]
    assert db(config_files, "SELECT status FROM orders ORDER BY created_at") == [("refunded",), ("refunded",)]


def test_a_refund_never_takes_what_another_payment_bought(config_files, start_daemon, emulator):
    """A refund takes back only what is left of its own payment's access: not after a revoke (which spent
    it), not after it ran out, and never the days a later payment bought."""
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    first, _ = _paid(config_files, emulator, daemon, key, alice, 6101)
    assert telepayd(config_files, "subscriptions", "revoke", "--user", str(ALICE), "--channel", str(key)).returncode == 0
    second = buy(emulator, alice, key)
    assert emulator.send_ipn(second, "finished", payment_id=6102)["answer"]["outcome"] == "granted"
    refunded = emulator.send_ipn(first, "refunded", payment_id=6101)
    assert refunded["answer"]["outcome"] == "refunded"  # the revoke had spent it: nothing left to take
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions")[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=2)

    # A payment whose access ran out long ago, refunded now: the current subscription keeps every day.
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE payments SET granted_at = now() - interval '70 days', granted_from = now() - interval '70 days',"
                     " granted_until = now() - interval '40 days' WHERE payment_id = 6102")
        conn.execute("UPDATE subscriptions SET revoked_at = NULL")
    third = buy(emulator, alice, key)
    assert emulator.send_ipn(third, "finished", payment_id=6103)["answer"]["outcome"] == "granted"
    assert emulator.send_ipn(second, "refunded", payment_id=6102)["answer"]["outcome"] == "refunded"
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions")[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=60))) < timedelta(minutes=2)


# 3. Numbers are ASCII.

def test_non_ascii_digits_are_refused_everywhere(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    bob = TelegramUser(daemon, 4242, "bob")
    for payload in ("sub_²", "don_٣", f"sub_{key}\u0663", "sub_", "sub_-1"):
        assert bob.send(f"/start {payload}") == 200
    assert wait_for(lambda: len([c for c in emulator.calls("sendMessage") if to(4242)(c["params"]) and "Pick a channel" in c["params"]["text"]]) == 5, 15)
    assert emulator.calls("editMessageText") == [] and "Choose a plan" not in json.dumps(emulator.calls("sendMessage"))

    order_id = buy(emulator, bob, key)
    invoice = dict(emulator.invoices()[order_id], _price_number=9.99)
    for weird in ("²", "٣٣", "1_000", " 12"):
        body = json.dumps({**json.loads(ipn_body(invoice, "finished", 1)), "payment_id": weird}, ensure_ascii=False).encode()
        status, answer = http_post(daemon.base_url + "/webhooks/nowpayments", body,
                                   {"Content-Type": "application/json", "x-nowpayments-sig": sign_ipn(body)})
        assert status == 422 and json.loads(answer)["error"] == "invalid_field", (weird, answer)
    assert db(config_files, "SELECT count(*) FROM ipn_events") == [(0,)]

    for args in (["orders", "show", "--user", "٣"], ["subscriptions", "grant", "--user", "²", "--channel", str(key), "--days", "1"],
                 ["subscriptions", "grant", "--user", "1", "--channel", str(key), "--days", "٣"], ["outbox", "retry", "٣"]):
        result = telepayd(config_files, *args)
        assert result.returncode == 2 and "digits 0-9" in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    for args in (["channels", "add", "--open", "-100٣", "--closed", "-1002", "--owner", "1", "--title", "T", "--tier", "9.99:30"],
                 ["channels", "add", "--open", "-1001", "--closed", "-1002", "--owner", "1", "--title", "T", "--tier", "٩.٩٩:30"],
                 ["channels", "add", "--open", "-1001", "--closed", "-1002", "--owner", "1", "--title", "T", "--tier", "9.99:²"],
                 ["subscriptions", "revoke", "--user", "1", "--channel", "²"]):
        result = telepayd(config_files, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)
    assert "Traceback" not in daemon.log()


def test_numbers_too_big_for_the_database_are_refused_not_crashed_on(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    for args in (["subscriptions", "grant", "--user", "9" * 19, "--channel", str(key), "--days", "1"],
                 ["subscriptions", "grant", "--user", "1", "--channel", str(key), "--days", "3000000"],
                 ["outbox", "retry", "9" * 19], ["orders", "show", "--user", "9" * 19]):
        result = telepayd(config_files, *args)
        assert result.returncode == 2 and "largest accepted" in result.stderr and "Traceback" not in result.stderr, result.stderr
    daemon = start_daemon(config_files)
    bob = TelegramUser(daemon, 4242, "bob")
    assert bob.send("/start sub_" + "9" * 19) == 200  # a key past bigint: the channel list, not an error
    assert emulator.wait_calls("sendMessage", where=lambda p: to(4242)(p) and "Pick a channel" in p["text"])
    update = {"update_id": 1, "message": {"message_id": 1, "date": 10**20, "text": "hi", "chat": {"id": 1, "type": "private"}}}
    status, answer = http_post(daemon.base_url + "/telegram", json.dumps(update).encode(),
                               {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret-token-1"})
    assert status == 400 and json.loads(answer)["error"] == "invalid_update"
    assert "Traceback" not in daemon.log()


async def test_a_flood_of_readiness_probes_shares_one_ping(config_files, start_daemon, emulator):
    import aiohttp

    import asyncio

    daemon = start_daemon(config_files)
    before = _get(daemon.base_url + "/status")[1]["pool"].get("requests_num", 0)
    async with aiohttp.ClientSession() as session:
        async def probe() -> int:
            async with session.get(daemon.base_url + "/ready") as response:
                return response.status

        statuses = await asyncio.gather(*(probe() for _ in range(300)))
    assert set(statuses) == {200}, sorted(set(statuses))
    # Anyone may probe /ready: 300 probes took a few pooled connections, not 300 from the pool IPNs use.
    taken = _get(daemon.base_url + "/status")[1]["pool"].get("requests_num", 0) - before
    assert taken < 20, taken


# 4 and 10. Hostile and invalid IPN bodies: a 400 before any hashing, never a 500.

def test_hostile_ipn_shapes_and_invalid_unicode_get_400(config_files, start_daemon, emulator):
    daemon = start_daemon(config_files)
    many_keys = json.dumps({f"k{i}": 1 for i in range(5000)}).encode()
    nested = json.dumps({f"k{i}": {f"k{j}": 0 for j in range(3)} for i in range(1500)}).encode()
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    surrogate = b'{"payment_id": "\\ud800", "payment_status": "finished"}'
    for body in (many_keys, nested, deep, surrogate):
        assert len(body) <= 65536
        status, answer = http_post(daemon.base_url + "/webhooks/nowpayments", body,
                                   {"Content-Type": "application/json", "x-nowpayments-sig": "0" * 128})
        assert status == 400 and json.loads(answer)["error"] == "invalid_json", answer
    for path in ("/webhooks/notification", "/webhooks/broadcast", "/telegram"):
        status, answer = http_post(daemon.base_url + path, b'{"open_channel_ids": ["\\udfff"]}',
                                   {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret-token-1",
                                    **_signed(config_files, b'{"open_channel_ids": ["\\udfff"]}')})
        assert status == 400 and json.loads(answer)["error"] == "invalid_json", (path, answer)
    assert "Traceback" not in daemon.log()


def _signed(config_files, body: bytes) -> dict[str, str]:
    from telepayd.security.webhook_signature import sign

    return sign(config_files.webhook_secrets[0], body).as_dict()


# 5. Per-address rate limits on the NowPayments and Telegram routes.

def test_nowpayments_and_telegram_routes_are_rate_limited_per_address(config_files, start_daemon, emulator):
    config_files.settings = {"nowpayments.rate_limit": {"per_minute": 60, "burst": 3},
                             "telegram.rate_limit": {"per_minute": 60, "burst": 3}}
    config_files.write()
    daemon = start_daemon(config_files)
    ipn_codes = [http_post(daemon.base_url + "/webhooks/nowpayments", b"{}",
                           {"Content-Type": "application/json", "x-nowpayments-sig": "0" * 128})[0] for _ in range(5)]
    assert ipn_codes[:3] == [401, 401, 401] and ipn_codes[3:] == [429, 429]
    bob = TelegramUser(daemon, 4242, "bob")
    assert [bob.send("/help") for _ in range(5)] == [200, 200, 200, 429, 429]


# 6. Telegram users cannot drain the pool that IPNs use; one user's flood is bounded.

def test_a_flood_of_button_presses_never_makes_an_ipn_wait(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    config_files.settings = {"database": {"max_size": 4, "bot_pool_size": 2}}
    config_files.write()
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    emulator.slow("*", 3.0)  # Telegram answers every call 3 s late

    users = [TelegramUser(daemon, 7000 + n, f"u{n}") for n in range(40)]
    with ThreadPoolExecutor(40) as pool:
        presses = [pool.submit(u.press, f"ch:{key}") for u in users] + [pool.submit(users[0].press, f"ch:{key}") for _ in range(20)]
        time.sleep(1.0)  # the presses are in the handlers, waiting on Telegram
        started = time.monotonic()
        answer = emulator.send_ipn(order_id, "finished", payment_id=7777)
        waited = time.monotonic() - started
        assert all(p.result() == 200 for p in presses)
    assert answer["status"] == 200 and answer["answer"]["outcome"] == "granted", answer
    assert waited < 2.0, waited  # not behind any button press (the pool would make it wait 2.5 s, then 503)
    # One user's twenty extra presses: at most five of theirs were taken in, the rest turned away politely.
    emulator.slow("*", 0)
    assert wait_for(lambda: any("still answering" in (c["params"].get("text") or "") for c in emulator.calls("answerCallbackQuery")), 20)


# 8. Orders and invoices per user are bounded.

def test_invoices_per_user_are_capped_and_a_repeated_donation_reuses_its_invoice(config_files, start_daemon, emulator):
    from tests.test_donations_e2e import open_keypad, type_keys

    key = add_channel(config_files, "9.99:30", "19.99:60", "29.99:90")
    config_files.settings = {"payments": {"max_invoices_per_user_hour": 3}}
    config_files.write()
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    for _ in range(2):  # the same donation twice: one order, one invoice
        message_id = open_keypad(emulator, alice, key)
        type_keys(emulator, alice, message_id, "5✅")
        assert wait_for(lambda: len(emulator.invoices()) == 1, 10)
    assert wait_for(lambda: len([c for c in emulator.calls("editMessageText") if "Donation of $5.00" in c["params"].get("text", "")]) == 2, 10)
    assert db(config_files, "SELECT count(*) FROM orders") == [(1,)]
    buy(emulator, alice, key, 0)
    buy(emulator, alice, key, 1)
    assert len(emulator.invoices()) == 3
    assert alice.press(f"tier:{key}:{db(config_files, 'SELECT max(id) FROM tiers')[0][0]}") == 200
    assert emulator.wait_calls("editMessageText", where=lambda p: "many invoices" in p.get("text", ""))
    assert len(emulator.invoices()) == 3 and db(config_files, "SELECT count(*) FROM orders") == [(3,)]
    buy(emulator, alice, key, 0)  # an open order of the hour is still given back
    assert len(emulator.invoices()) == 3


# 9. One bad message never stops anything.

def test_a_poison_outbox_row_fails_alone_and_the_worker_goes_on(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("INSERT INTO outbox (kind, chat_id, payload) VALUES ('message', 11, '{}')")  # no text
        conn.execute("INSERT INTO outbox (kind, chat_id, payload) VALUES ('notification', 12, '{\"notification_id\": 999}')")
        conn.execute("INSERT INTO outbox (kind, chat_id, payload) VALUES ('message', 13, '{\"text\": \"after\"}')")
    daemon = start_daemon(config_files)
    assert wait_for(lambda: db(config_files, "SELECT count(*) FROM outbox WHERE status = 'failed'") == [(2,)], 15)
    assert emulator.wait_calls("sendMessage", where=lambda p: p["text"] == "after")
    failed = telepayd(config_files, "outbox", "failed").stdout
    assert "undeliverable: KeyError" in failed and "notification 999 does not exist" in failed
    # A restart does not trip on them again, and the daemon stayed ready throughout.
    assert daemon.process.poll() is None and _get(daemon.base_url + "/ready")[0] == 200
    assert key and daemon.log().count("Traceback") <= 1


def test_supervised_tasks_restart_and_ready_names_them(config_files, start_daemon, emulator):
    """A task that keeps failing is down in /ready (by name only) and STATUS=, and the daemon serves on."""
    daemon = start_daemon(config_files)
    with psycopg.connect(config_files.dsn) as conn:  # the sweeper's broadcast part now fails on every sweep
        conn.execute("ALTER TABLE broadcast_jobs RENAME COLUMN open_channel_ids TO gone")
        conn.execute("INSERT INTO broadcast_jobs (gone) VALUES (NULL)")
    # The sweeper isolates its parts: reminders and removals go on, the failure is counted in /status.
    assert wait_for(lambda: "sweeper broadcasts" in _get(daemon.base_url + "/status")[1]["errors"], 70)
    assert daemon.process.poll() is None and _get(daemon.base_url + "/health")[0] == 200


# 12. No head-of-line blocking in the outbox.

async def test_owner_notifications_do_not_hold_back_a_buyers_join_link(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    codes = await send_notifications(daemon, config_files.webhook_secrets[0], [-1001111111111], 40)
    assert set(codes) == {202}
    assert emulator.wait_calls("sendMessage", where=to(OWNER))  # the owner's chat is now cooling down
    paid_at = time.monotonic()
    assert emulator.send_ipn(order_id, "finished", payment_id=8080)["status"] == 200
    link = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "https://t.me/+" in p["text"], timeout=30)
    assert link and time.monotonic() - paid_at < 5, time.monotonic() - paid_at  # not 40 s behind the owner's queue
    assert db(config_files, "SELECT count(*) FROM outbox WHERE kind = 'notification' AND chat_id IS NULL") == [(0,)]


# 11, 13. Logs cannot be flooded by clients that leave; /ready names the failing parts only.

def test_a_client_leaving_mid_body_is_not_an_error(config_files, start_daemon, emulator):
    daemon = start_daemon(config_files)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", config_files.port)) as conn:
            conn.sendall(b"POST /webhooks/nowpayments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"a\":")
    time.sleep(1)
    assert _get(daemon.base_url + "/health")[0] == 200
    assert "Traceback" not in daemon.log() and "ERROR" not in daemon.log()


def test_ready_names_what_is_down_without_the_reason(config_files, start_daemon, emulator):
    from tools.local_postgres import free_port

    config_files.dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    config_files.write()
    daemon = start_daemon(config_files)
    status, body = _get(daemon.base_url + "/ready")
    assert status == 503 and body["down"] == ["database"]
    assert "refused" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
    assert "refused" in json.dumps(_get(daemon.base_url + "/status")[1]["database"])


# 14. Secret files that others could change are refused.

def test_group_or_world_writable_secret_files_are_refused(config_files):
    secret = config_files.secret_file("webhook-secrets")
    for mode, word in ((0o620, "writable by its group"), (0o602, "writable by everyone"), (0o604, "readable by everyone")):
        secret.chmod(mode)
        checked = subprocess.run([sys.executable, "-m", "telepayd", "check-config", "-c", str(config_files.path)],
                                 capture_output=True, text=True)
        assert checked.returncode == 1 and word in checked.stderr, checked.stderr
        signed = subprocess.run([sys.executable, "-m", "telepayd", "sign", "--secret-file", str(secret)],
                                input="{}", capture_output=True, text=True)
        assert signed.returncode == 1 and word in signed.stderr and "webhook-signature" not in signed.stdout
    secret.chmod(0o600)
    assert subprocess.run([sys.executable, "-m", "telepayd", "check-config", "-c", str(config_files.path)]).returncode == 0

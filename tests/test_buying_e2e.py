"""Buying access through the running daemon, PostgreSQL and the Bot API / NowPayments emulators."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from tests.emulators.nowpayments_api import ipn_body, sign_ipn
from tests.harness import TelegramUser, http_post

OPEN, CLOSED, OWNER = -1001111111111, -1002222222222, 555000111
ALICE, MALLORY = 6271402111, 6666666666
VECTORS = json.loads((Path(__file__).resolve().parent / "vectors" / "nowpayments-ipn.json").read_text())


def telepayd(config_files, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telepayd", *args, "-c", str(config_files.path)], capture_output=True, text=True)


def add_channel(config_files, *tiers: str, open_id: int = OPEN, closed_id: int = CLOSED, title: str = "Premium <Signals>") -> int:
    assert telepayd(config_files, "migrate").returncode == 0
    result = telepayd(config_files, "channels", "add", "--open", str(open_id), "--closed", str(closed_id), "--owner", str(OWNER),
                      "--title", title, "--description", "Daily calls & charts", *[a for t in tiers for a in ("--tier", t)])
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[2].rstrip(":"))


def buttons(params: dict) -> list[dict]:
    markup = params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def to(user_id: int):
    return lambda params: int(params.get("chat_id", 0)) == user_id


def buy(emulator, user: TelegramUser, channel_key: int, tier_index: int = 0) -> str:
    """/start → channel → tier; returns the order id of the invoice the user got (callable again)."""
    def is_menu(p: dict) -> bool:
        return to(user.user_id)(p) and "Pick a channel" in p["text"]

    def is_plans(p: dict) -> bool:
        return "Choose a plan" in p.get("text", "")

    def is_pay(p: dict) -> bool:
        return any("url" in b for b in buttons(p))

    def count(method: str, where) -> int:
        return len([c for c in emulator.calls(method) if where(c["params"])])

    menus, plans, pays = count("sendMessage", is_menu), count("editMessageText", is_plans), count("editMessageText", is_pay)
    assert user.send("/start") == 200
    menu = emulator.wait_calls("sendMessage", menus + 1, where=is_menu)[-1]["params"]
    assert f"ch:{channel_key}" in [b.get("callback_data") for b in buttons(menu)]
    assert user.press(f"ch:{channel_key}") == 200
    tiers = emulator.wait_calls("editMessageText", plans + 1, where=is_plans)[-1]["params"]
    assert "Premium &lt;Signals&gt;" in tiers["text"]  # channel input is HTML-escaped
    tier_data = [b["callback_data"] for b in buttons(tiers) if b["callback_data"].startswith("tier:")][tier_index]
    before = len(emulator.invoices())
    assert user.press(tier_data) == 200
    pay = emulator.wait_calls("editMessageText", pays + 1, where=is_pay)[-1]["params"]
    invoices = emulator.invoices()
    assert len(invoices) >= before
    order_id = next(o for o, inv in invoices.items() if inv["invoice_url"] == buttons(pay)[0]["url"])
    assert buttons(pay)[0]["text"].startswith("Pay $")
    return order_id


def db(config_files, query: str, *params) -> list[tuple]:
    with psycopg.connect(config_files.dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_a_users_whole_journey(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30", "24.99:90")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    order_id = buy(emulator, alice, key)
    invoice = emulator.invoices()[order_id]
    assert invoice["price_amount"] == "9.99" and invoice["ipn_callback_url"].endswith("/webhooks/nowpayments")

    payment_id = 5077125051
    for status in ("waiting", "confirming", "confirmed", "sending", "finished"):
        sent = emulator.send_ipn(order_id, status, payment_id=payment_id)
        assert sent["status"] == 200, sent

    links = emulator.wait_calls("createChatInviteLink")
    assert len(links) == 1
    assert links[0]["params"]["creates_join_request"] is True
    assert links[0]["params"]["name"] == order_id and int(links[0]["params"]["chat_id"]) == CLOSED
    dm = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "Payment confirmed" in p["text"])
    assert len(dm) == 1
    link = next(word for word in dm[0]["params"]["text"].split() if word.startswith("https://t.me/+"))
    owner = emulator.wait_calls("sendMessage", where=to(OWNER))
    assert len(owner) == 1 and "$9.99" in owner[0]["params"]["text"] and "@alice" in owner[0]["params"]["text"]

    assert alice.ask_to_join(CLOSED, link) == 200
    approved = emulator.wait_calls("approveChatJoinRequest")
    assert [int(c["params"]["user_id"]) for c in approved] == [ALICE]
    mallory = TelegramUser(daemon, MALLORY, "mallory")
    assert mallory.ask_to_join(CLOSED, link) == 200
    declined = emulator.wait_calls("declineChatJoinRequest")
    assert [int(c["params"]["user_id"]) for c in declined] == [MALLORY]
    assert len(emulator.calls("approveChatJoinRequest")) == 1

    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions WHERE user_id = %s", ALICE)[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=2)
    assert db(config_files, "SELECT kind FROM anomalies") == [("intruder_join_request",)]
    assert db(config_files, "SELECT status FROM orders") == [("paid",)]

    shown = telepayd(config_files, "orders", "show", order_id)
    assert shown.returncode == 0
    assert "payment 5077125051: finished, granted" in shown.stdout and shown.stdout.count("IPN ") == 5
    assert "approved" in shown.stdout

    # /status lists the subscription; a new link is refused within 10 minutes of the last one.
    assert alice.send("/status") == 200
    status = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "active until" in p["text"])[-1]["params"]
    assert alice.press(buttons(status)[0]["callback_data"]) == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "once every 10 minutes" in p["text"])


def test_the_same_finished_ipn_five_times_concurrently_grants_once(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE), key)
    statuses = ["finished", "confirming"] * 3 + ["finished", "waiting"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda s: emulator.send_ipn(order_id, s, payment_id=777), statuses))
    assert all(a["status"] == 200 for a in answers), answers
    time.sleep(1.5)  # let the outbox deliver everything it was given
    assert len(emulator.wait_calls("createChatInviteLink")) == 1
    assert len(emulator.calls("sendMessage")) == len([c for c in emulator.calls("sendMessage") if not ("Payment confirmed" in c["params"]["text"] or to(OWNER)(c["params"]))]) + 2
    assert len([c for c in emulator.calls("sendMessage") if to(OWNER)(c["params"])]) == 1
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions")[0]
    assert ends_at < datetime.now(timezone.utc) + timedelta(days=30, minutes=2)  # extended once, not five times
    assert db(config_files, "SELECT status, granted_at IS NOT NULL FROM payments") == [("finished", True)]
    assert db(config_files, "SELECT count(*) FROM ipn_events") == [(3,)]  # finished, confirming, waiting: once each


def test_a_lower_price_grants_nothing_and_is_an_anomaly(config_files, start_daemon, emulator):
    key = add_channel(config_files, "24.99:90")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE), key)
    sent = emulator.send_ipn(order_id, "finished", overrides={"price_amount": 2.49})
    assert sent["status"] == 200 and sent["answer"]["outcome"] == "price_mismatch"
    assert db(config_files, "SELECT kind FROM anomalies") == [("price_mismatch",)]
    assert db(config_files, "SELECT count(*) FROM subscriptions") == [(0,)]
    assert db(config_files, "SELECT status FROM orders") == [("invoiced",)]
    with urllib.request.urlopen(daemon.base_url + "/status") as response:
        assert json.load(response)["anomalies"] == {"price_mismatch": 1}
    time.sleep(1)
    assert emulator.calls("createChatInviteLink") == []


def test_a_forged_ipn_changes_nothing(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE), key)
    forged = emulator.send_ipn(order_id, "finished", signature=sign_ipn(b'{"a":1}', "not-the-secret"))
    assert forged["status"] == 401 and forged["answer"]["error"] == "no_matching_signature"
    assert db(config_files, "SELECT count(*) FROM ipn_events") == [(0,)]
    assert db(config_files, "SELECT count(*) FROM subscriptions") == [(0,)]


def test_partially_paid_then_finished_on_the_same_order(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE), key)
    assert emulator.send_ipn(order_id, "partially_paid", payment_id=901, overrides={"actually_paid": 3.1})["status"] == 200
    notice = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "incomplete" in p["text"])
    assert notice and "3.1 USDTTRC20" in notice[0]["params"]["text"] and "$9.99" in notice[0]["params"]["text"]
    assert db(config_files, "SELECT count(*) FROM subscriptions") == [(0,)]
    assert emulator.send_ipn(order_id, "finished", payment_id=901)["status"] == 200
    assert len(emulator.wait_calls("createChatInviteLink")) == 1


def _post_ipn(daemon, body: bytes, signature: str | None = None) -> int:
    headers = {"Content-Type": "application/json", "x-nowpayments-sig": signature or sign_ipn(body)}
    return http_post(daemon.base_url + "/webhooks/nowpayments", body, headers)[0]


def test_two_daemons_on_one_database_grant_once(config_files, start_daemon, emulator, tmp_path):
    from tools.local_config import ConfigFiles

    key = add_channel(config_files, "9.99:30")
    first = start_daemon(config_files)
    other_dir = tmp_path / "second"
    other_dir.mkdir()
    second_files = ConfigFiles(other_dir, config_files.dsn, webhook_secrets=config_files.webhook_secrets, api_base=emulator.base_url)
    second_files.write()
    second = start_daemon(second_files)
    order_id = buy(emulator, TelegramUser(first, ALICE), key)
    invoice = dict(emulator.invoices()[order_id], _price_number=9.99)
    bodies = [ipn_body(invoice, status, 4242) for status in ("confirming", "finished", "finished", "confirming", "finished")]
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda args: _post_ipn(*args), [(d, b) for b in bodies for d in (first, second)]))
    assert set(codes) == {200}
    time.sleep(2)
    assert len(emulator.wait_calls("createChatInviteLink")) == 1
    assert len([c for c in emulator.calls("sendMessage") if to(OWNER)(c["params"])]) == 1
    assert db(config_files, "SELECT count(*) FROM payments WHERE granted_at IS NOT NULL") == [(1,)]


def test_every_shared_vector_through_the_endpoint(config_files, start_daemon, emulator):
    secrets = sorted({v["ipn_secret"] for v in VECTORS})
    config_files.secret_file("nowpayments-ipn-secret").write_text("ipn-secret-1\n" + "\n".join(secrets) + "\n")
    daemon = start_daemon(config_files)
    for vector in VECTORS:
        status = _post_ipn(daemon, vector["body"].encode(), vector["x-nowpayments-sig"])
        assert status == (200 if vector["expect"] == "valid" else 401), vector["name"]
    # Valid vectors name orders this database never saw: stored, answered 200, counted as anomalies.
    assert db(config_files, "SELECT count(*) FROM ipn_events") == [(3,)]
    assert db(config_files, "SELECT kind, count(*) FROM anomalies GROUP BY kind") == [("unknown_order", 3)]


def test_confused_users_get_short_helpful_answers(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    bob = TelegramUser(daemon, 4242, "bob")
    assert bob.press(f"tier:{key}:999") == 200  # a stale button: that tier was replaced
    assert emulator.wait_calls("sendMessage", where=lambda p: to(4242)(p) and "out of date" in p["text"])
    assert emulator.wait_calls("sendMessage", where=lambda p: to(4242)(p) and "Choose a plan" in p["text"])
    assert bob.press("tier:999:1") == 200  # a button for a channel that does not exist
    assert emulator.wait_calls("editMessageText", where=lambda p: "no longer available" in p.get("text", ""))
    assert bob.press("drop table;") == 200  # forged callback data
    assert bob.send("hello?") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(4242)(p) and "did not understand" in p["text"])
    assert bob.send("/start") == 200 and bob.send("/start") == 200  # a second /start mid-choice just shows the list
    assert len(emulator.wait_calls("sendMessage", 2, where=lambda p: to(4242)(p) and "Pick a channel" in p["text"])) >= 2
    assert telepayd(config_files, "channels", "remove", str(key)).returncode == 0
    assert bob.send(f"/start sub_{key}") == 200  # a deep link to a removed channel
    assert emulator.wait_calls("sendMessage", where=lambda p: to(4242)(p) and "no longer available" in p["text"])
    assert bob.send("/help") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(4242)(p) and "How it works" in p["text"])
    assert "Traceback" not in daemon.log()
    from tools.local_config import TELEGRAM_TOKEN

    assert TELEGRAM_TOKEN.split(":")[1] not in daemon.log()  # the bot token never reaches the logs


def test_invoice_failure_keeps_the_order_and_a_retry_reuses_it(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE)
    emulator.fail_invoices(3)  # the client tries three times
    assert alice.send(f"/start sub_{key}") == 200
    tiers = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "Choose a plan" in p["text"])[-1]["params"]
    tier_data = buttons(tiers)[0]["callback_data"]
    assert alice.press(tier_data) == 200
    assert emulator.wait_calls("editMessageText", where=lambda p: "did not answer" in p.get("text", ""))
    assert db(config_files, "SELECT status FROM orders") == [("created",)]
    assert alice.press(tier_data) == 200
    assert emulator.wait_calls("editMessageText", where=lambda p: any("url" in b for b in buttons(p)))
    assert db(config_files, "SELECT status FROM orders") == [("invoiced",)]  # the same order, now invoiced


def test_telegram_webhook_needs_the_secret_token(config_files, start_daemon, emulator):
    daemon = start_daemon(config_files)
    for secret, expected in (("wrong", 401), ("", 401), ("tg-secret-token-1", 200)):
        assert TelegramUser(daemon, 1, secret=secret).send("/help") == expected
    status, body = http_post(daemon.base_url + "/telegram", b'{"update_id": "x"}',
                             {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret-token-1"})
    assert status == 400 and json.loads(body)["error"] == "invalid_update"


def test_channel_list_is_paged_past_ten(config_files, start_daemon, emulator):
    for n in range(12):
        add_channel(config_files, f"{n + 1}.00:30", open_id=-1003000000000 - n, closed_id=-1004000000000 - n, title=f"Channel {n:02d}")
    daemon = start_daemon(config_files)
    user = TelegramUser(daemon, 31337, "carol")
    assert user.send("/start") == 200
    first = emulator.wait_calls("sendMessage", where=to(31337))[-1]["params"]
    data = [b["callback_data"] for b in buttons(first)]
    assert len([d for d in data if d.startswith("ch:")]) == 10 and "list:1" in data
    assert "Channel 00 — from $1.00" in [b["text"] for b in buttons(first)]
    assert user.press("list:1") == 200
    second = emulator.wait_calls("editMessageText", where=lambda p: "list:0" in json.dumps(p.get("reply_markup")))[-1]["params"]
    assert len([b for b in buttons(second) if b["callback_data"].startswith("ch:")]) == 2
    assert user.press([b["callback_data"] for b in buttons(second) if b["callback_data"].startswith("ch:")][0]) == 200
    tiers = emulator.wait_calls("editMessageText", where=lambda p: "Channel 10" in p.get("text", ""))
    assert tiers and all(len(b["callback_data"].encode()) <= 64 for b in buttons(tiers[-1]["params"]))
    # A channel taken off sale is neither listed nor counted; a page past the end (an old button) is the last.
    assert telepayd(config_files, "channels", "remove", "1").returncode == 0
    edits = len(emulator.calls("editMessageText"))
    assert user.press("list:99") == 200
    last = emulator.wait_calls("editMessageText", edits + 1)[-1]["params"]
    assert [b["text"] for b in buttons(last)][:1] == ["Channel 11 — from $12.00"] and "list:0" in json.dumps(last["reply_markup"])
    assert len([b for b in buttons(last) if b["callback_data"].startswith("ch:")]) == 1
    edits = len(emulator.calls("editMessageText"))
    assert user.press("list:999999999999999999") == 200  # forged: the most digits a button may carry
    forged = emulator.wait_calls("editMessageText", edits + 1)[-1]["params"]
    assert [b["text"] for b in buttons(forged)][:1] == ["Channel 11 — from $12.00"]


def test_an_owner_finds_their_id_and_a_channels_id_from_the_bot(config_files, start_daemon, emulator):
    daemon = start_daemon(config_files)
    owner = TelegramUser(daemon, OWNER, "owner")
    assert owner.send("/whoami") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(OWNER)(p) and f"<code>{OWNER}</code>" in p["text"])
    forwarded = {"message_id": 77, "date": int(time.time()), "text": "a post", "from": owner.user,
                 "chat": {"id": OWNER, "type": "private"},
                 "forward_origin": {"type": "channel", "date": int(time.time()), "message_id": 5,
                                    "chat": {"id": CLOSED, "type": "channel", "title": "Closed <club>"}}}
    assert owner._post({"message": forwarded}) == 200
    answer = emulator.wait_calls("sendMessage", where=lambda p: to(OWNER)(p) and str(CLOSED) in p["text"])
    assert answer and "Closed &lt;club&gt;" in answer[-1]["params"]["text"]

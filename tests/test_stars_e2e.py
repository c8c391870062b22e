"""Telegram Stars through the running daemon, PostgreSQL and the Bot API emulator: invoices in XTR, the
pre-checkout answer, payments recorded once, renewals, cancel and resume, refunds, the transactions sweep."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import psycopg

from tests.harness import TelegramUser, pay_stars, renew_stars
from tests.test_buying_e2e import ALICE, CLOSED, MALLORY, OWNER, add_channel, buttons, db, telepayd, to
from tests.test_donations_e2e import open_keypad, type_keys
from tests.test_reconcile_e2e import wait_for

MONTH = 30 * 86400
FAST_SWEEPS = {"subscriptions": {"sweep_interval_seconds": 1}, "stars": {"sweep_interval_seconds": 1}}


def choose_stars(emulator, user: TelegramUser, channel_key: int, tier_index: int = 0) -> str:
    """/start → channel → plan → "Pay N ⭐"; returns the invoice link the buyer got."""
    def count(method: str, where) -> int:
        return len([c for c in emulator.calls(method) if where(c["params"])])

    def is_plans(p: dict) -> bool:
        return "Choose a plan" in p.get("text", "")

    def is_choice(p: dict) -> bool:
        return "How would you like to pay" in p.get("text", "")

    def is_link(p: dict) -> bool:
        return any(b.get("url", "").startswith("https://t.me/$") for b in buttons(p))

    plans, choices, links = count("editMessageText", is_plans), count("editMessageText", is_choice), count("editMessageText", is_link)
    assert user.press(f"ch:{channel_key}") == 200
    tiers = emulator.wait_calls("editMessageText", plans + 1, where=is_plans)[-1]["params"]
    tier_data = [b["callback_data"] for b in buttons(tiers) if b["callback_data"].startswith("tier:")][tier_index]
    assert user.press(tier_data) == 200
    choice = emulator.wait_calls("editMessageText", choices + 1, where=is_choice)[-1]["params"]
    labels = [b["text"] for b in buttons(choice)]
    assert labels[0].startswith("Pay $") and labels[0].endswith("(crypto)") and labels[1].endswith("⭐"), labels
    assert user.press(buttons(choice)[1]["callback_data"]) == 200
    pay = emulator.wait_calls("editMessageText", links + 1, where=is_link)[-1]["params"]
    return next(b["url"] for b in buttons(pay) if "url" in b)


def join(emulator, user: TelegramUser, order_id: str) -> str:
    """The join link sent for ``order_id``; the user asks to join with it and is approved."""
    (created,) = [c for c in emulator.wait_calls("createChatInviteLink", where=lambda p: p.get("name") == order_id)
                  if c["params"].get("name") == order_id]
    dm = emulator.wait_calls("sendMessage", where=lambda p: to(user.user_id)(p) and "https://t.me/+" in p["text"])
    link = next(word for c in dm for word in c["params"]["text"].split() if word.startswith("https://t.me/+"))
    approved = len(emulator.calls("approveChatJoinRequest"))
    assert user.ask_to_join(CLOSED, link) == 200
    emulator.wait_calls("approveChatJoinRequest", approved + 1)
    assert int(created["params"]["chat_id"]) == CLOSED
    return link


def subscription_end(config_files, user_id: int = ALICE) -> datetime:
    return db(config_files, "SELECT ends_at FROM subscriptions WHERE user_id = %s", user_id)[0][0]


def near(moment: datetime, days: float) -> bool:
    return abs(moment - (datetime.now(timezone.utc) + timedelta(days=days))) < timedelta(minutes=5)


def bought(config_files, start_daemon, emulator, *tiers: str, tier_index: int = 0):
    """A channel with ``tiers`` (default one 30-day plan at 500 Stars), the daemon, and Alice having paid one
    in Stars: (daemon, alice, channel key, pay_stars' answer, order id). Waits for her join link."""
    key = add_channel(config_files, *(tiers or ("9.99:30:500",)))
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    paid = pay_stars(emulator, alice, choose_stars(emulator, alice, key, tier_index))
    (order_id,) = db(config_files, "SELECT order_id FROM orders")[0]
    emulator.wait_calls("createChatInviteLink")
    return daemon, alice, key, paid, order_id


def test_a_30_day_plan_bought_in_stars_is_a_subscription_only_the_buyer_can_use(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30:500", "24.99:90:1300")
    listed = telepayd(config_files, "channels", "list")
    assert "$9.99/30d or 500 stars" in listed.stdout and "$24.99/90d or 1300 stars" in listed.stdout
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    assert alice.send("/start") == 200
    link = choose_stars(emulator, alice, key)
    (order_id, rail, price, currency, status) = db(config_files, "SELECT order_id, rail, price::int, currency, status FROM orders")[0]
    assert (rail, price, currency, status) == ("stars", 500, "xtr", "invoiced")
    (created,) = emulator.calls("createInvoiceLink")
    params = created["params"]
    assert params["currency"] == "XTR" and params["payload"] == order_id and params["subscription_period"] == MONTH
    assert [p["amount"] for p in params["prices"]] == [500] and not params.get("provider_token")

    paid = pay_stars(emulator, alice, link)
    assert paid["ok"] is True and paid["charge_id"]
    join(emulator, alice, order_id)
    mallory = TelegramUser(daemon, MALLORY, "mallory")
    sent_link = next(w for c in emulator.calls("sendMessage") if to(ALICE)(c["params"])
                     for w in c["params"]["text"].split() if w.startswith("https://t.me/+"))
    assert mallory.ask_to_join(CLOSED, sent_link) == 200
    assert [int(c["params"]["user_id"]) for c in emulator.wait_calls("declineChatJoinRequest")] == [MALLORY]
    owner = emulator.wait_calls("sendMessage", where=lambda p: to(OWNER)(p) and "500 ⭐" in p["text"])
    assert owner and "@alice" in owner[0]["params"]["text"]
    assert db(config_files, "SELECT status FROM orders") == [("paid",)]
    assert near(subscription_end(config_files), 30)
    assert db(config_files, "SELECT charge_id, source, outcome FROM stars_charges") == [(paid["charge_id"], "update", "granted")]
    assert db(config_files, "SELECT renewal_charge_id IS NOT NULL, renewal_canceled FROM subscriptions") == [(True, False)]
    # /status offers to cancel the renewal; orders show tells the charge.
    assert alice.send("/status") == 200
    status = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "renews automatically" in p["text"])
    assert any(b.get("callback_data") == f"rnoff:{key}" for b in buttons(status[-1]["params"]))
    shown = telepayd(config_files, "orders", "show", order_id)
    assert f"charge {paid['charge_id']} 500 XTR recurring (Telegram's next charge " in shown.stdout
    assert "): granted" in shown.stdout and "paid with stars" in shown.stdout


def test_a_90_day_plan_is_a_one_off_stars_invoice(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30:500", "24.99:90:1300")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    link = choose_stars(emulator, alice, key, tier_index=1)
    (created,) = emulator.calls("createInvoiceLink")
    assert "subscription_period" not in created["params"] and created["params"]["prices"][0]["amount"] == 1300
    paid = pay_stars(emulator, alice, link)
    assert paid["ok"] and paid["expiration"] is None
    (order_id,) = db(config_files, "SELECT order_id FROM orders")[0]
    join(emulator, alice, order_id)
    assert near(subscription_end(config_files), 90)
    assert db(config_files, "SELECT renewal_charge_id FROM subscriptions") == [(None,)]
    # The same plan again: the invoice is paid, so the pre-checkout refuses a second payment of it.
    again = pay_stars(emulator, alice, link)
    assert again["ok"] is False and "already paid" in again["error_message"]


def test_pre_checkout_refuses_a_wrong_amount_a_stranger_and_an_unknown_payload(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30:500")
    daemon = start_daemon(config_files)
    alice, mallory = TelegramUser(daemon, ALICE, "alice"), TelegramUser(daemon, MALLORY, "mallory")
    choose_stars(emulator, alice, key)
    (order_id,) = db(config_files, "SELECT order_id FROM orders")[0]
    answers = {}
    for name, user, payload, amount, currency in (
        ("amount", alice, order_id, 1, "XTR"), ("currency", alice, order_id, 500, "USD"),
        ("stranger", mallory, order_id, 500, "XTR"), ("unknown", alice, "tp_00000000000000000000", 500, "XTR"),
        ("garbage", alice, "x" * 128, 500, "XTR"),
    ):
        status, query_id = user.pre_checkout(payload, amount, currency)
        assert status == 200
        answers[name] = emulator.precheckout_answer(query_id)
    assert all(a["answered"] and a["ok"] is False and a["error_message"] for a in answers.values()), answers
    assert "another Telegram account" in answers["stranger"]["error_message"]
    assert "amount does not match" in answers["amount"]["error_message"]
    status, query_id = alice.pre_checkout(order_id, 500)
    assert emulator.precheckout_answer(query_id)["ok"] is True
    assert db(config_files, "SELECT status FROM orders") == [("invoiced",)]


def test_a_duplicate_successful_payment_has_one_effect(config_files, start_daemon, emulator):
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    end = subscription_end(config_files)
    for _ in range(3):  # Telegram delivering the same update again
        assert alice.successful_payment(order_id, 500, paid["charge_id"], subscription_expiration_date=paid["expiration"],
                                        is_recurring=True, is_first_recurring=True) == 200
    time.sleep(1.5)
    assert subscription_end(config_files) == end
    assert len(emulator.calls("createChatInviteLink")) == 1
    assert db(config_files, "SELECT count(*) FROM stars_charges") == [(1,)]
    assert db(config_files, "SELECT count(*) FROM orders") == [(1,)]


def test_three_renewals_extend_the_access_by_three_months_without_new_links(config_files, start_daemon, emulator):
    daemon, alice, key, paid, first = bought(config_files, start_daemon, emulator)
    join(emulator, alice, first)
    for n in range(1, 4):
        renew_stars(emulator, alice, first, 500)
        wait_for(lambda: len(emulator.calls("sendMessage")) and len([
            c for c in emulator.calls("sendMessage") if to(ALICE)(c["params"]) and "renewed" in c["params"]["text"]]) >= n,
            what=f"renewal {n} told")
    assert near(subscription_end(config_files), 120)
    assert len(emulator.calls("createChatInviteLink")) == 1  # still a member: no new link
    renewals = db(config_files, "SELECT status, renews_order_id, price::int FROM orders WHERE renews_order_id IS NOT NULL")
    assert renewals == [("paid", first, 500)] * 3
    assert db(config_files, "SELECT outcome, count(*) FROM stars_charges GROUP BY 1 ORDER BY 1") == [("granted", 1), ("renewed", 3)]
    owner = [c for c in emulator.wait_calls("sendMessage", 4, where=to(OWNER)) if "renewed" in c["params"]["text"]]
    assert len(owner) == 3
    # The reminder before the end says it renews, with no Renew button.
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = now() + interval '20 hours'")
    config_files.settings = FAST_SWEEPS
    config_files.write()
    daemon.stop()
    start_daemon(config_files)
    reminder = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "renews automatically" in p["text"])
    assert reminder and not buttons(reminder[-1]["params"])
    assert not [c for c in emulator.calls("sendMessage") if to(ALICE)(c["params"]) and "Renew to keep it" in c["params"]["text"]]


def test_cancel_then_expiry_removes_and_resume_turns_it_back_on(config_files, start_daemon, emulator):
    config_files.settings = FAST_SWEEPS
    config_files.write()
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    join(emulator, alice, order_id)
    # An ended renewal is kept for a day: the renewal charge may come a little after the end.
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = now() - interval '1 hour'")
    time.sleep(3)
    assert emulator.calls("unbanChatMember") == []
    # Cancelled while it runs: access to the end paid, then removed at once (no day of grace).
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = now() + interval '2 days'")
    assert alice.press(f"rnoff:{key}") == 200
    edit = emulator.wait_calls("editUserStarSubscription")
    assert edit[0]["params"]["is_canceled"] is True and edit[0]["params"]["telegram_payment_charge_id"] == paid["charge_id"]
    assert emulator.star_charges()[paid["charge_id"]]["canceled"] is True
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "is cancelled" in p["text"])
    assert alice.send("/status") == 200
    status = emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "auto-renewal off" in p["text"])
    assert any(b.get("callback_data") == f"rnon:{key}" for b in buttons(status[-1]["params"]))
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = now() - interval '1 minute'")
    removed = emulator.wait_calls("unbanChatMember")
    assert [int(c["params"]["user_id"]) for c in removed] == [ALICE]
    assert db(config_files, "SELECT renewal_canceled, removed_at IS NOT NULL FROM subscriptions") == [(True, True)]
    # Once the access ended there is nothing to resume; while it runs, resume turns renewal back on.
    assert alice.press(f"rnon:{key}") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "no Stars subscription" in p["text"])
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = now() + interval '10 days', removed_at = NULL")
    assert alice.press(f"rnon:{key}") == 200
    edits = emulator.wait_calls("editUserStarSubscription", 2)
    assert edits[-1]["params"]["is_canceled"] is False
    assert db(config_files, "SELECT renewal_canceled FROM subscriptions") == [(False,)]
    # ...and nobody else's: Mallory has no Stars subscription here.
    mallory = TelegramUser(daemon, MALLORY, "mallory")
    assert mallory.press(f"rnoff:{key}") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(MALLORY)(p) and "no Stars subscription" in p["text"])
    assert len(emulator.calls("editUserStarSubscription")) == 2


def test_a_refund_takes_back_the_days_once(config_files, start_daemon, emulator):
    config_files.settings = FAST_SWEEPS
    config_files.write()
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator, "9.99:30:500", "24.99:90:1300",
                                                tier_index=1)
    join(emulator, alice, order_id)
    unknown = telepayd(config_files, "orders", "refund", "tp_00000000000000000000")
    assert unknown.returncode == 1 and "no order" in unknown.stderr
    refunded = telepayd(config_files, "orders", "refund", order_id)
    assert refunded.returncode == 0, refunded.stderr
    assert "refunded 1300 Stars" in refunded.stdout
    (call,) = emulator.calls("refundStarPayment")
    assert call["params"]["telegram_payment_charge_id"] == paid["charge_id"] and int(call["params"]["user_id"]) == ALICE
    assert subscription_end(config_files) <= datetime.now(timezone.utc) + timedelta(minutes=1)
    assert db(config_files, "SELECT status FROM orders") == [("refunded",)]
    assert emulator.wait_calls("unbanChatMember")
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "refunded" in p["text"] and "1,300 ⭐" in p["text"])
    assert emulator.wait_calls("sendMessage", where=lambda p: to(OWNER)(p) and "refunded" in p["text"])
    # Telegram's refunded_payment message for the same charge, and the command again: no second effect.
    assert alice.refunded_payment(order_id, 1300, paid["charge_id"]) == 200
    again = telepayd(config_files, "orders", "refund", order_id)
    assert again.returncode == 1 and "no Stars charge left to refund" in again.stderr
    time.sleep(1)
    assert len([c for c in emulator.calls("sendMessage") if to(OWNER)(c["params"]) and "refunded" in c["params"]["text"]]) == 1


def test_a_refunded_payment_update_takes_back_the_days(config_files, start_daemon, emulator):
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    assert alice.refunded_payment(order_id, 500, paid["charge_id"]) == 200
    wait_for(lambda: db(config_files, "SELECT status FROM orders") == [("refunded",)], what="the refund applied")
    assert subscription_end(config_files) <= datetime.now(timezone.utc) + timedelta(minutes=1)
    assert db(config_files, "SELECT renewal_charge_id FROM subscriptions") == [(None,)]


def test_a_payment_whose_update_was_lost_is_found_by_the_transactions_sweep(config_files, start_daemon, emulator):
    config_files.settings = FAST_SWEEPS
    config_files.write()
    key = add_channel(config_files, "9.99:30:500")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    paid = pay_stars(emulator, alice, choose_stars(emulator, alice, key), deliver=False)
    assert paid["ok"] and paid["charge_id"]
    (order_id,) = db(config_files, "SELECT order_id FROM orders")[0]
    links = emulator.wait_calls("createChatInviteLink", timeout=20)
    assert [c["params"]["name"] for c in links] == [order_id]
    assert db(config_files, "SELECT charge_id, source, outcome FROM stars_charges") == [(paid["charge_id"], "sweep", "granted")]
    assert near(subscription_end(config_files), 30)
    assert emulator.calls("getStarTransactions")
    # The late update changes nothing more.
    assert alice.successful_payment(order_id, 500, paid["charge_id"], subscription_expiration_date=paid["expiration"],
                                    is_recurring=True, is_first_recurring=True) == 200
    time.sleep(1.5)
    assert len(emulator.calls("createChatInviteLink")) == 1


def test_a_donation_paid_in_stars(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30:500")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    pad = open_keypad(emulator, alice, key)
    type_keys(emulator, alice, pad, "13✅")
    choice = emulator.wait_calls("editMessageText", where=lambda p: "How would you like to pay" in p.get("text", ""))[-1]["params"]
    labels = [b["text"] for b in buttons(choice)]
    assert labels == ["Pay $13.00 (crypto)", "Pay 1,000 ⭐"], labels  # 13 / 0.013
    assert alice.press(buttons(choice)[1]["callback_data"]) == 200
    pay = emulator.wait_calls("editMessageText", where=lambda p: any(b.get("url", "").startswith("https://t.me/$") for b in buttons(p)))
    link = buttons(pay[-1]["params"])[0]["url"]
    assert "subscription_period" not in emulator.calls("createInvoiceLink")[0]["params"]
    assert pay_stars(emulator, alice, link)["ok"]
    assert emulator.wait_calls("sendMessage", where=lambda p: to(OWNER)(p) and "1,000 ⭐ (donation)" in p["text"])
    assert db(config_files, "SELECT kind, rail, price::int, status FROM orders") == [("donation", "stars", 1000, "paid")]
    assert emulator.calls("createChatInviteLink") == []
    # A forged amount beyond the limits is refused (the buttons carry the amount).
    assert alice.press(f"dxtr:{key}:99999999") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "maximum donation" in p["text"])


def test_support_and_terms_and_stars_switched_off(config_files, start_daemon, emulator):
    config_files.settings = {"stars": {"enabled": False, "support_text": "Write to @support_desk <any time>"}}
    config_files.write()
    key = add_channel(config_files, "9.99:30:500")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    assert alice.send("/paysupport") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: "@support_desk &lt;any time&gt;" in p["text"])
    assert alice.send("/terms") == 200
    assert emulator.wait_calls("sendMessage", where=lambda p: "renew until you cancel" in p["text"])
    # Stars off: the plan goes straight to the crypto invoice, and a pre-checkout is refused.
    assert alice.press(f"ch:{key}") == 200
    plans = emulator.wait_calls("editMessageText", where=lambda p: "Choose a plan" in p.get("text", ""))[-1]["params"]
    assert "⭐" not in str(plans["reply_markup"])
    assert alice.press(buttons(plans)[0]["callback_data"]) == 200
    assert emulator.wait_calls("editMessageText", where=lambda p: any("url" in b and "Pay $" in b["text"] for b in buttons(p)))
    status, query_id = alice.pre_checkout(db(config_files, "SELECT order_id FROM orders")[0][0], 999)
    assert "switched off" in emulator.precheckout_answer(query_id)["error_message"]


def test_with_the_database_lost_a_pre_checkout_is_answered_and_a_charge_is_not_lost(config_files, start_daemon, emulator,
                                                                                      admin_dsn):
    config_files.settings = FAST_SWEEPS
    config_files.write()
    key = add_channel(config_files, "9.99:30:500")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    choose_stars(emulator, alice, key)  # the order and its invoice link
    (order_id,) = db(config_files, "SELECT order_id FROM orders")[0]
    name = psycopg.conninfo.conninfo_to_dict(config_files.dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:  # nothing can connect, and the pool's sessions end
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
    try:
        started = time.monotonic()
        status, query_id = alice.pre_checkout(order_id, 500)
        answer = emulator.precheckout_answer(query_id, timeout=12)
        assert answer["answered"] and answer["ok"] is False and "try again" in answer["error_message"]
        assert time.monotonic() - started < 10, "Telegram waits 10 s for the answer"
        # Telegram charged anyway (its pre-checkout of a moment before said ok): the update cannot be recorded now.
        charge = emulator.star_charge(ALICE, order_id, 500, period=MONTH)
        assert alice.successful_payment(order_id, 500, charge["charge_id"], is_recurring=True, is_first_recurring=True,
                                        subscription_expiration_date=charge["subscription_expiration_date"]) == 200
        assert emulator.wait_calls("sendMessage", timeout=20, where=lambda p: to(ALICE)(p) and "access follows" in p["text"])
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    # The database is back: the Stars sweep finds the charge in getStarTransactions and grants it once.
    links = emulator.wait_calls("createChatInviteLink", timeout=60)
    assert [c["params"]["name"] for c in links] == [order_id]
    assert db(config_files, "SELECT charge_id, source, outcome FROM stars_charges") == [(charge["charge_id"], "sweep", "granted")]
    assert "Traceback" not in daemon.log()


def test_a_revoke_cancels_the_renewal_and_a_later_charge_is_refused(config_files, start_daemon, emulator):
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    join(emulator, alice, order_id)
    revoked = telepayd(config_files, "subscriptions", "revoke", "--user", str(ALICE), "--channel", str(key))
    assert revoked.returncode == 0, revoked.stderr
    assert "1 Telegram Stars renewal(s) cancelled with Telegram" in revoked.stdout
    (call,) = emulator.calls("editUserStarSubscription")
    assert call["params"]["is_canceled"] is True and call["params"]["telegram_payment_charge_id"] == paid["charge_id"]
    emulator.wait_calls("unbanChatMember")
    # Telegram charged anyway (it had not seen the cancel): nothing is granted back, the operator is told.
    renew_stars(emulator, alice, order_id, 500)
    wait_for(lambda: db(config_files, "SELECT count(*) FROM stars_charges") == [(2,)], what="the renewal recorded")
    time.sleep(1)
    assert db(config_files, "SELECT outcome FROM stars_charges ORDER BY received_at") == [("granted",), ("renewal_refused",)]
    assert subscription_end(config_files) <= datetime.now(timezone.utc)
    assert len(emulator.calls("createChatInviteLink")) == 1
    assert ("stars_renewal_refused",) in db(config_files, "SELECT kind FROM anomalies")


def test_removing_a_channel_cancels_its_renewals(config_files, start_daemon, emulator):
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    removed = telepayd(config_files, "channels", "remove", str(key), "--force")
    assert removed.returncode == 0, removed.stderr
    assert "1 Telegram Stars renewal(s) cancelled with Telegram" in removed.stdout
    assert emulator.star_charges()[paid["charge_id"]]["canceled"] is True
    assert db(config_files, "SELECT renewal_charge_id FROM subscriptions") == [(None,)]


def test_a_second_stars_subscription_to_the_same_channel_is_not_sold(config_files, start_daemon, emulator):
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator, "9.99:30:500", "24.99:90:1300")
    # The plans again: the 30-day plan in Stars is refused (it would charge twice a month)...
    assert alice.press(f"xtr:{key}:{db(config_files, 'SELECT tier_id FROM orders')[0][0]}") == 200
    assert emulator.wait_calls("editMessageText", where=lambda p: "would charge you twice" in p.get("text", ""))
    assert len(emulator.calls("createInvoiceLink")) == 1
    # ...and so is the old invoice of a second one, at the pre-checkout.
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, currency, rail, status)"
                     " SELECT 'tp_aaaaaaaaaaaaaaaaaaaa', kind, user_id, channel_id, tier_id, days, price, currency, rail, 'invoiced'"
                     " FROM orders WHERE order_id = %s", [order_id])
    status, query_id = alice.pre_checkout("tp_aaaaaaaaaaaaaaaaaaaa", 500)
    assert "already have a Stars subscription" in emulator.precheckout_answer(query_id)["error_message"]
    # A first charge of a second subscription that got through anyway (two devices at once) is granted and
    # reported; the renewal tracked stays the first one.
    second = emulator.star_charge(ALICE, order_id, 500, period=MONTH)
    assert alice.successful_payment(order_id, 500, second["charge_id"], is_recurring=True, is_first_recurring=True,
                                    subscription_expiration_date=second["subscription_expiration_date"]) == 200
    wait_for(lambda: ("stars_repeat_payment",) in db(config_files, "SELECT kind FROM anomalies"), what="the anomaly")
    assert db(config_files, "SELECT renewal_charge_id FROM subscriptions") == [(paid["charge_id"],)]
    assert near(subscription_end(config_files), 60)


def test_a_renewal_in_the_grace_day_keeps_the_member_without_a_new_link(config_files, start_daemon, emulator):
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    join(emulator, alice, order_id)
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE subscriptions SET ends_at = now() - interval '5 minutes'")
    renew_stars(emulator, alice, order_id, 500)
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "renewed" in p["text"])
    assert len(emulator.calls("createChatInviteLink")) == 1
    assert near(subscription_end(config_files), 30)


def test_the_sweep_applies_a_lost_refund_and_is_not_stopped_by_odd_history(config_files, start_daemon, emulator, admin_dsn):
    config_files.settings = FAST_SWEEPS
    config_files.write()
    # History from before telepayd: a payload PostgreSQL cannot even store, and one of another shape.
    emulator.star_charge(ALICE, "old\x00payload", 50)
    emulator.star_charge(ALICE, "another-bot-order-17", 50)
    daemon, alice, key, paid, order_id = bought(config_files, start_daemon, emulator)
    # The refund's message is lost (the daemon was down): Telegram's transactions still show it.
    name = psycopg.conninfo.conninfo_to_dict(config_files.dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
    refunded = emulator._call("POST", "/bot123:abc/refundStarPayment", {"user_id": ALICE, "telegram_payment_charge_id": paid["charge_id"]})
    assert refunded["ok"] is True  # refunded at Telegram (by the owner, elsewhere)
    assert alice.refunded_payment(order_id, 500, paid["charge_id"]) == 200
    time.sleep(1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    wait_for(lambda: db(config_files, "SELECT status FROM orders") == [("refunded",)], timeout=60, what="the refund applied")
    assert subscription_end(config_files) <= datetime.now(timezone.utc) + timedelta(minutes=1)
    assert "Traceback" not in daemon.log()
    assert db(config_files, "SELECT count(*) FROM stars_charges") == [(1,)]  # the odd history was left alone

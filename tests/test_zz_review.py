"""Throwaway review probes (to be deleted)."""
from __future__ import annotations

import time
from decimal import Decimal

from tests.harness import TelegramUser, pay_stars, renew_stars
from tests.test_buying_e2e import ALICE, OWNER, add_channel, buttons, db, telepayd, to
from tests.test_growth_e2e import RUSSIAN, said, data_of, created_codes, execute
from tests.test_stars_e2e import choose_stars
from tests.test_reconcile_e2e import wait_for
from telepayd.texts import ENGLISH


def test_r1_russian_user_redeem_language_stats(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    ivan = TelegramUser(daemon, ALICE, "ivan", language_code="ru")
    assert ivan.send("/start") == 200
    said(emulator, ALICE, RUSSIAN.START)
    assert ivan.send("/redeem NOSUCHCODE22") == 200
    time.sleep(1.5)
    assert ivan.send("/language") == 200
    time.sleep(1.5)
    assert ivan.send("/stats") == 200
    time.sleep(1.5)
    assert ivan.send("/redeem") == 200
    time.sleep(1.5)
    msgs = [c["params"]["text"] for c in emulator.calls("sendMessage") if to(ALICE)(c["params"])]
    print("\nMESSAGES:", *msgs, sep="\n---\n")
    # then send the code as a message of its own, as REDEEM_ASK says
    (code,) = created_codes(config_files, "--channel", str(key), "--days", "7")
    assert ivan.send(code) == 200
    time.sleep(1.5)
    msgs = [c["params"]["text"] for c in emulator.calls("sendMessage") if to(ALICE)(c["params"])]
    print("\nAFTER CODE AS MESSAGE:", msgs[-1])
    print("subs:", db(config_files, "SELECT count(*) FROM subscriptions"))
    assert RUSSIAN.CODE_WRONG in msgs


def test_r2_one_redemption_two_discounted_paid_orders(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    (code,) = created_codes(config_files, "--channel", str(key), "--percent", "20")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    assert alice.send(f"/redeem {code}") == 200
    offer = said(emulator, ALICE, "discount of 20%")
    tier = data_of(offer, "tier:")[0]
    assert alice.press(tier) == 200
    emulator.wait_calls("editMessageText", where=lambda p: to(ALICE)(p) and bool(data_of(p, "paid")))
    (first,) = emulator.invoices()
    # One payment of the first invoice expires (the buyer picked a coin, did not send it).
    r = emulator.send_ipn(first, "expired", payment_id=91001)
    print("expired:", r["answer"])
    assert alice.press(tier) == 200
    emulator.wait_calls("editMessageText", 2, where=lambda p: to(ALICE)(p) and bool(data_of(p, "paid")))
    print("invoices:", {k: v["price_amount"] for k, v in emulator.invoices().items()})
    second = next(k for k in emulator.invoices() if k != first)
    # The first invoice is paid after all (another payment of it), and so is the second.
    print("first paid:", emulator.send_ipn(first, "finished", payment_id=91002)["answer"])
    print("second paid:", emulator.send_ipn(second, "finished", payment_id=91003)["answer"])
    print(db(config_files, "SELECT order_id, price, list_price, code, status FROM orders ORDER BY created_at"))
    print(db(config_files, "SELECT code, user_id, order_id FROM code_redemptions"))
    print(telepayd(config_files, "codes", "show", code).stdout)


def test_r3_stars_30_day_discount_renews_at_discount(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30:500")
    (code,) = created_codes(config_files, "--channel", str(key), "--percent", "50")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    assert alice.send(f"/redeem {code}") == 200
    said(emulator, ALICE, "discount of 50%")
    link = choose_stars(emulator, alice, key)
    paid = pay_stars(emulator, alice, link)
    print("paid", paid)
    (created,) = emulator.calls("createInvoiceLink")
    print("link params:", created["params"].get("subscription_period"), created["params"]["prices"])
    order_id = created["params"]["payload"]
    said(emulator, ALICE, "Payment confirmed")
    for n in range(2):
        renew_stars(emulator, alice, order_id, 250)
    time.sleep(2)
    print(db(config_files, "SELECT order_id, price, list_price, code, status, renews_order_id FROM orders ORDER BY created_at"))
    print(db(config_files, "SELECT outcome FROM stars_charges"))
    print(telepayd(config_files, "report", "--csv").stdout)

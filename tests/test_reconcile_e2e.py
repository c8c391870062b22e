"""No payment lost: lost IPNs recovered by the reconcile sweep, the operator's command and the buyer's own
check, through the running daemon, PostgreSQL and the NowPayments emulator's ``GET /v1/payment/{id}``."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from tests.harness import TelegramUser
from tests.test_buying_e2e import ALICE, CLOSED, MALLORY, add_channel, buttons, buy, db, telepayd, to

FAST = {"reconcile": {"interval_seconds": 1, "stale_after_minutes": 1}}


def age_payments(config_files, minutes: int = 5) -> None:
    """Make every payment look as if no IPN had moved it for ``minutes`` (the sweep's stale age is 1 min)."""
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE payments SET updated_at = now() - make_interval(mins => %s)", [minutes])


def fast_daemon_with_an_order(config_files, start_daemon, emulator):
    """A daemon whose reconcile sweep runs every second (stale after 1 min), and Alice's open order."""
    config_files.settings = FAST
    config_files.write()
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    return daemon, buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)


def links_for(emulator, order_id: str) -> list[dict]:
    return [c for c in emulator.calls("createChatInviteLink") if c["params"].get("name") == order_id]


def wait_for(predicate, timeout: float = 20.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_finished_payment_whose_ipn_never_came_is_granted_by_the_sweep(config_files, start_daemon, emulator):
    config_files.settings = FAST
    config_files.write()
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE, "alice")
    order_id = buy(emulator, alice, key)
    payment_id = 5077125901
    assert emulator.send_ipn(order_id, "waiting", payment_id=payment_id)["status"] == 200
    emulator.set_payment(order_id, "finished", payment_id=payment_id)  # its IPN never arrives
    time.sleep(2)
    assert links_for(emulator, order_id) == [], "a payment is not checked before it is stale"
    assert payment_id not in emulator.lookups()

    age_payments(config_files)
    wait_for(lambda: links_for(emulator, order_id), what="the join link granted by the sweep")
    assert emulator.wait_calls("sendMessage", where=lambda p: to(ALICE)(p) and "Payment confirmed" in p["text"])
    assert db(config_files, "SELECT status FROM orders WHERE order_id = %s", order_id) == [("paid",)]
    assert db(config_files, "SELECT payment_status, source, outcome FROM ipn_events ORDER BY id") == [
        ("waiting", "ipn", "status waiting"), ("finished", "reconcile", "granted")]
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions WHERE user_id = %s", ALICE)[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=2)

    shown = telepayd(config_files, "orders", "show", order_id)
    assert shown.returncode == 0, shown.stderr
    assert "reconcile" in shown.stdout and "finished: granted" in shown.stdout

    # The IPN that finally arrives changes nothing; the payment is no longer checked.
    assert emulator.send_ipn(order_id, "finished", payment_id=payment_id)["answer"]["outcome"] == "duplicate"
    looked = len(emulator.lookups())
    time.sleep(2.5)
    assert len(emulator.lookups()) == looked
    assert len(links_for(emulator, order_id)) == 1


def test_a_payment_still_confirming_is_checked_less_and_less_often(config_files, start_daemon, emulator):
    daemon, order_id = fast_daemon_with_an_order(config_files, start_daemon, emulator)
    payment_id = 5077125902
    assert emulator.send_ipn(order_id, "confirming", payment_id=payment_id)["status"] == 200
    age_payments(config_files)
    wait_for(lambda: payment_id in emulator.lookups(), what="the first check")
    time.sleep(3)  # at one round a second: the next check waits a stale age (1 min), doubled per check
    assert emulator.lookups().count(payment_id) == 1
    assert db(config_files, "SELECT checks FROM payments") == [(1,)]
    assert db(config_files, "SELECT status FROM orders") == [("invoiced",)]
    assert db(config_files, "SELECT count(*) FROM ipn_events WHERE source = 'reconcile'") == [(0,)]  # nothing new


def test_the_operator_reconciles_one_order_and_is_refused_the_wrong_payment(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice_order = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    mallory_order = buy(emulator, TelegramUser(daemon, MALLORY, "mallory"), key)
    alice_payment = emulator.set_payment(alice_order, "finished", payment_id=5077125911)

    wrong = telepayd(config_files, "orders", "reconcile", mallory_order, "--payment-id", str(alice_payment))
    assert wrong.returncode == 1
    assert f"payment {alice_payment} is not for order {mallory_order}" in wrong.stderr and "nothing changed" in wrong.stderr
    unknown = telepayd(config_files, "orders", "reconcile", alice_order, "--payment-id", "5077999999")
    assert unknown.returncode == 1 and "NowPayments knows no payment 5077999999" in unknown.stderr
    no_order = telepayd(config_files, "orders", "reconcile", "tp_00000000000000000000", "--payment-id", str(alice_payment))
    assert no_order.returncode == 1 and "no order" in no_order.stderr
    bad_id = telepayd(config_files, "orders", "reconcile", alice_order, "--payment-id", "12ab")
    assert bad_id.returncode == 2 and "not a whole number" in bad_id.stderr
    assert db(config_files, "SELECT count(*) FROM payments") == [(0,)]
    assert links_for(emulator, alice_order) == [] and links_for(emulator, mallory_order) == []

    done = telepayd(config_files, "orders", "reconcile", alice_order, "--payment-id", str(alice_payment))
    assert done.returncode == 0, done.stderr
    assert f"payment {alice_payment} of order {alice_order} is finished at NowPayments" in done.stdout
    assert "applied by the money rules: granted" in done.stdout
    assert "order: invoiced -> paid" in done.stdout and "subscription until: none -> 20" in done.stdout
    wait_for(lambda: links_for(emulator, alice_order), what="the join link, sent by the running daemon")

    again = telepayd(config_files, "orders", "reconcile", alice_order, "--payment-id", str(alice_payment))
    assert again.returncode == 0 and "duplicate" in again.stdout and "order: paid (unchanged)" in again.stdout
    time.sleep(1)
    assert len(links_for(emulator, alice_order)) == 1
    assert db(config_files, "SELECT source FROM ipn_events") == [("reconcile",)]


def test_a_price_that_differs_is_refused_by_the_money_rules_whatever_the_source(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    payment_id = emulator.set_payment(order_id, "finished", overrides={"price_amount": 0.99})
    refused = telepayd(config_files, "orders", "reconcile", order_id, "--payment-id", str(payment_id))
    assert refused.returncode == 1 and "price_mismatch" in refused.stderr
    assert db(config_files, "SELECT kind FROM anomalies") == [("price_mismatch",)]
    assert db(config_files, "SELECT status FROM orders") == [("invoiced",)]
    assert links_for(emulator, order_id) == []


def test_a_buyer_recovers_their_own_payment_from_the_bot(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice, mallory = TelegramUser(daemon, ALICE, "alice"), TelegramUser(daemon, MALLORY, "mallory")
    order_id = buy(emulator, alice, key)

    def answers(user: int, text: str) -> list[dict]:
        return emulator.wait_calls("sendMessage", where=lambda p: to(user)(p) and text in p["text"])

    # /status shows the open invoice with the "I paid" button, which asks for the payment id.
    assert alice.send("/status") == 200
    status = answers(ALICE, "waiting for payment")[-1]["params"]
    paid = [b for b in buttons(status) if "I paid" in b["text"]]
    assert len(paid) == 1
    assert alice.press(paid[0]["callback_data"]) == 200
    ask = answers(ALICE, "payment id")[-1]["params"]
    assert ask["reply_markup"].get("force_reply") is True

    confirming = emulator.set_payment(order_id, "confirming", payment_id=5077125921)
    assert alice.send(str(confirming)) == 200
    assert answers(ALICE, "is still confirming at NowPayments")
    assert mallory.send(str(confirming)) == 200  # someone else's payment: no detail, nothing applied
    assert answers(MALLORY, "is for another order")
    assert alice.send("5077999999") == 200
    assert answers(ALICE, "NowPayments knows no payment")
    assert links_for(emulator, order_id) == []

    emulator.set_payment(order_id, "finished", payment_id=confirming)
    assert alice.send(f"/status {confirming}") == 200
    assert answers(ALICE, "is complete. Your access is granted")
    wait_for(lambda: links_for(emulator, order_id), what="the join link")
    assert answers(ALICE, "Payment confirmed")
    assert alice.send(f" {confirming} ") == 200
    assert answers(ALICE, "was already applied")
    assert db(config_files, "SELECT payment_status, source FROM ipn_events ORDER BY id") == [
        ("confirming", "reconcile"), ("finished", "reconcile")]
    assert len(links_for(emulator, order_id)) == 1


def test_a_buyer_cannot_make_the_bot_hammer_nowpayments(config_files, start_daemon, emulator):
    config_files.settings = {"reconcile": {"buyer_checks_per_hour": 3}}
    config_files.write()
    add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    mallory = TelegramUser(daemon, MALLORY, "mallory")
    for n in range(6):  # one after the other (more than 4 at once are turned away before any check)
        assert mallory.send(str(5077000000 + n)) == 200
        assert len(emulator.wait_calls("sendMessage", n + 1, where=to(MALLORY))) == n + 1
    texts = [c["params"]["text"] for c in emulator.calls("sendMessage") if to(MALLORY)(c["params"])]
    assert sum("knows no payment" in t for t in texts) == 3
    assert sum("checked several payments just now" in t for t in texts) == 3
    assert len(emulator.lookups()) == 3


def test_reconciliation_and_a_late_ipn_racing_each_other_grant_once(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    for round_ in range(3):
        payment_id = 5077125931 + round_
        emulator.set_payment(order_id, "finished", payment_id=payment_id)
        with ThreadPoolExecutor(4) as pool:
            cli = [pool.submit(telepayd, config_files, "orders", "reconcile", order_id, "--payment-id", str(payment_id))
                   for _ in range(2)]
            ipns = [pool.submit(emulator.send_ipn, order_id, "finished", payment_id=payment_id) for _ in range(2)]
            results = [f.result() for f in cli]
            sent = [f.result() for f in ipns]
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        outcomes = [s["answer"]["outcome"] for s in sent] + [
            line.split(": ", 1)[1] for r in results for line in r.stdout.splitlines() if "applied by the money rules" in line]
        assert sorted(outcomes).count("granted") == 1, outcomes
    # Three payments, each granted once: 3 x 30 days stacked.
    (ends_at,) = db(config_files, "SELECT ends_at FROM subscriptions WHERE user_id = %s", ALICE)[0]
    assert abs(ends_at - (datetime.now(timezone.utc) + timedelta(days=90))) < timedelta(minutes=2)
    assert db(config_files, "SELECT count(*) FROM payments WHERE granted_at IS NOT NULL") == [(3,)]
    assert db(config_files, "SELECT count(*) FROM ipn_events WHERE payment_status = 'finished'") == [(3,)]


def test_nowpayments_down_makes_the_sweep_back_off_and_recover(config_files, start_daemon, emulator):
    daemon, order_id = fast_daemon_with_an_order(config_files, start_daemon, emulator)
    payment_id = 5077125941
    assert emulator.send_ipn(order_id, "sending", payment_id=payment_id)["status"] == 200
    emulator.set_payment(order_id, "finished", payment_id=payment_id)

    def an_hour_passes() -> None:
        with psycopg.connect(config_files.dsn) as conn:
            conn.execute("UPDATE payments SET checked_at = checked_at - interval '1 hour'")

    emulator.fail_lookups(-1, 503)
    age_payments(config_files)
    wait_for(lambda: emulator.lookups() == [payment_id], what="the first, failed check")
    # Rounds run every second, but the payment waits out its gap (stale age x 2 per check) and the rounds
    # back off: no check a second.
    time.sleep(4)
    assert emulator.lookups() == [payment_id]
    assert db(config_files, "SELECT checks FROM payments") == [(1,)]
    assert "reconcile: NowPayments unavailable" in daemon.log() and "next round in" in daemon.log()

    emulator.fail_lookups(-1, 429)
    an_hour_passes()
    wait_for(lambda: len(emulator.lookups()) == 2, timeout=30, what="a check after the gap, throttled")
    assert db(config_files, "SELECT status FROM orders") == [("invoiced",)]
    import urllib.request
    with urllib.request.urlopen(daemon.base_url + "/ready", timeout=5) as answer:
        assert answer.status == 200  # NowPayments down is not the daemon down
    assert daemon.process.poll() is None

    emulator.fail_lookups(0)
    an_hour_passes()
    wait_for(lambda: links_for(emulator, order_id), timeout=40, what="the grant once NowPayments is back")
    assert db(config_files, "SELECT status FROM orders") == [("paid",)]
    assert "Traceback" not in daemon.log()


def test_unpaid_orders_expire_after_the_invoice_lifetime_and_a_late_payment_still_grants(config_files, start_daemon, emulator):
    config_files.settings = {"subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    old, moving, fresh = (buy(emulator, TelegramUser(daemon, user, f"u{user}"), key)
                          for user in (ALICE, MALLORY, 7000000001))
    assert emulator.send_ipn(moving, "confirming")["status"] == 200
    with psycopg.connect(config_files.dsn) as conn:
        conn.execute("UPDATE orders SET created_at = now() - interval '8 days' WHERE order_id IN (%s, %s)", [old, moving])
    wait_for(lambda: db(config_files, "SELECT status FROM orders WHERE order_id = %s", old) == [("expired",)],
             what="the old unpaid order expired")
    assert db(config_files, "SELECT status FROM orders WHERE order_id = %s", moving) == [("invoiced",)]  # a payment moves
    assert db(config_files, "SELECT status FROM orders WHERE order_id = %s", fresh) == [("invoiced",)]
    assert "unpaid order(s) older than 7 days marked expired" in daemon.log()

    payment_id = emulator.set_payment(old, "finished")
    done = telepayd(config_files, "orders", "reconcile", old, "--payment-id", str(payment_id))
    assert done.returncode == 0 and "order: expired -> paid" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("status", [500, 403])  # an error of that payment only: a 5xx, or a refusal
def test_a_payment_that_fails_alone_does_not_stop_the_others(config_files, start_daemon, emulator, status):
    config_files.settings = FAST
    config_files.write()
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    stuck_order = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    paid_order = buy(emulator, TelegramUser(daemon, MALLORY, "mallory"), key)
    assert emulator.send_ipn(stuck_order, "waiting", payment_id=5077125951)["status"] == 200
    assert emulator.send_ipn(paid_order, "waiting", payment_id=5077125952)["status"] == 200
    emulator.set_payment(paid_order, "finished", payment_id=5077125952)
    with psycopg.connect(config_files.dsn) as conn:  # the failing one first in line (older)
        conn.execute("UPDATE payments SET updated_at = now() - interval '10 minutes' WHERE payment_id = 5077125951")
        conn.execute("UPDATE payments SET updated_at = now() - interval '5 minutes' WHERE payment_id = 5077125952")
    emulator.fail_payment(5077125951, status)
    wait_for(lambda: links_for(emulator, paid_order), timeout=30, what=f"the other payment granted despite a {status}")
    assert 5077125951 in emulator.lookups()
    assert db(config_files, "SELECT status FROM orders WHERE order_id = %s", stuck_order) == [("invoiced",)]
    assert db(config_files, "SELECT status FROM orders WHERE order_id = %s", paid_order) == [("paid",)]


def test_an_abandoned_payment_expiring_leaves_a_paid_order_paid(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    # The buyer opened a BTC payment, switched coins and paid with a second one; the first then expires.
    assert emulator.send_ipn(order_id, "waiting", payment_id=5077125961)["status"] == 200
    assert emulator.send_ipn(order_id, "finished", payment_id=5077125962)["answer"]["outcome"] == "granted"
    answer = emulator.send_ipn(order_id, "expired", payment_id=5077125961)["answer"]
    assert answer["outcome"] == "status expired: another payment of the order is paid or under way"
    assert db(config_files, "SELECT status FROM orders") == [("paid",)]
    time.sleep(1)
    assert not emulator.calls("sendMessage") or not any(
        "expired" in c["params"].get("text", "") for c in emulator.calls("sendMessage"))


def test_a_refused_lookup_does_not_stand_in_for_the_signed_ipn(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key)
    emulator.set_payment(order_id, "finished", payment_id=5077125971, overrides={"price_currency": "eur"})
    refused = telepayd(config_files, "orders", "reconcile", order_id, "--payment-id", "5077125971")
    assert refused.returncode == 1 and "price_mismatch" in refused.stderr
    assert db(config_files, "SELECT kind FROM anomalies") == [("price_mismatch",)]
    assert db(config_files, "SELECT count(*) FROM ipn_events") == [(0,)]
    assert emulator.send_ipn(order_id, "finished", payment_id=5077125971)["answer"]["outcome"] == "granted"
    wait_for(lambda: links_for(emulator, order_id), what="the join link of the signed IPN")

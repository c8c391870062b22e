"""The donation keypad through the running daemon: typing rules, limits, timeout, cancel, restart."""

from __future__ import annotations

import signal

from tests.harness import TelegramUser
from tests.test_buying_e2e import ALICE, add_channel, buttons, db, to

KEYS = {str(d): d for d in range(10)} | {".": 10, "⌫": 11, "C": 12, "✅": 13, "✖": 14}


def open_keypad(emulator, user: TelegramUser, key: int) -> int:
    """Send the deep link; return the keypad message's id."""
    def is_keypad(params: dict) -> bool:
        return to(user.user_id)(params) and "Donate to" in params["text"]

    before = len([c for c in emulator.calls("sendMessage") if is_keypad(c["params"])])
    assert user.send(f"/start don_{key}") == 200
    (call,) = emulator.wait_calls("sendMessage", before + 1, where=is_keypad)[-1:]
    assert [b["callback_data"] for b in buttons(call["params"])][:3] == ["kp:1", "kp:2", "kp:3"]
    return call["message_id"]


def type_keys(emulator, user: TelegramUser, message_id: int, keys: str) -> str:
    """Press each key and return the amount shown after the last edit."""
    for key in keys:
        before = len(emulator.calls("answerCallbackQuery"))
        assert user.press(f"kp:{KEYS[key]}", message_id=message_id) == 200
        assert len(emulator.wait_calls("answerCallbackQuery", before + 1)) == before + 1
    return shown(emulator)


def shown(emulator) -> str:
    edits = [c for c in emulator.calls("editMessageText") if "<code>$ " in c["params"].get("text", "")]
    return edits[-1]["params"]["text"].split("<code>$ ")[1].split("</code>")[0] if edits else ""


def toasts(emulator) -> list[str]:
    return [c["params"].get("text") for c in emulator.calls("answerCallbackQuery") if c["params"].get("text")]


def test_typing_editing_and_confirming_a_donation(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE)
    pad = open_keypad(emulator, alice, key)
    assert type_keys(emulator, alice, pad, "12.50⌫9") == "12.59"
    assert type_keys(emulator, alice, pad, "7") == "12.59"  # a third decimal is ignored
    assert "At most two decimals" in toasts(emulator)[-1]
    assert type_keys(emulator, alice, pad, "✅") == "12.59"
    pay = emulator.wait_calls("editMessageText", where=lambda p: any("url" in b for b in buttons(p)))[-1]["params"]
    assert "$12.59" in pay["text"] and buttons(pay)[0]["text"] == "Pay $12.59"
    (invoice,) = emulator.invoices().values()
    assert invoice["price_amount"] == "12.59"
    assert db(config_files, "SELECT kind, price::text, tier_id FROM orders") == [("donation", "12.59", None)]
    assert db(config_files, "SELECT count(*) FROM keypad_sessions") == [(0,)]
    # The donation is paid like a subscription: the owner hears of it, nobody gets a join link.
    order_id = next(iter(emulator.invoices()))
    assert emulator.send_ipn(order_id, "finished")["status"] == 200
    owner = emulator.wait_calls("sendMessage", where=lambda p: "donation" in p["text"] and "$12.59" in p["text"])
    assert owner and emulator.calls("createChatInviteLink") == []


def test_limits_are_checked_on_confirm_and_digits_are_bounded(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE)
    pad = open_keypad(emulator, alice, key)
    assert type_keys(emulator, alice, pad, "4.98") == "4.98"
    type_keys(emulator, alice, pad, "✅")
    assert toasts(emulator)[-1] == "The minimum donation is $4.99."
    assert db(config_files, "SELECT count(*) FROM orders") == [(0,)]
    assert type_keys(emulator, alice, pad, "C99999") == "9999"  # a fifth integer digit is ignored: 10000 cannot be typed
    assert type_keys(emulator, alice, pad, ".999") == "9999.99"
    type_keys(emulator, alice, pad, "✅")
    assert emulator.wait_calls("editMessageText", where=lambda p: "Pay $9,999.99" in str(p.get("reply_markup")))


def test_cancel_and_stale_keypads(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE)
    first = open_keypad(emulator, alice, key)
    second = open_keypad(emulator, alice, key)  # a new keypad replaces the old one
    type_keys(emulator, alice, first, "5")
    assert toasts(emulator)[-1] == "This keypad is no longer active."
    type_keys(emulator, alice, second, "5✖")
    assert emulator.wait_calls("editMessageText", where=lambda p: "Donation cancelled" in p.get("text", ""))
    assert db(config_files, "SELECT count(*) FROM keypad_sessions") == [(0,)]


def test_an_idle_keypad_expires_even_across_a_restart(config_files, start_daemon, emulator):
    config_files.settings = {"donations": {"keypad_timeout_seconds": 10}, "subscriptions": {"sweep_interval_seconds": 1}}
    config_files.write()
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE)
    pad = open_keypad(emulator, alice, key)
    type_keys(emulator, alice, pad, "7")
    daemon.send(signal.SIGTERM)
    assert daemon.process.wait(20) == 0
    start_daemon(config_files)
    expired = emulator.wait_calls("editMessageText", timeout=25, where=lambda p: "keypad expired" in p.get("text", ""))
    assert len(expired) == 1 and int(expired[0]["params"]["message_id"]) == pad


def test_a_graceful_restart_mid_conversation_continues(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    alice = TelegramUser(daemon, ALICE)
    pad = open_keypad(emulator, alice, key)
    assert type_keys(emulator, alice, pad, "12") == "12"
    daemon.send(signal.SIGTERM)
    assert daemon.process.wait(20) == 0
    restarted = start_daemon(config_files)
    alice = TelegramUser(restarted, ALICE)
    assert type_keys(emulator, alice, pad, ".5") == "12.5"
    type_keys(emulator, alice, pad, "✅")
    assert emulator.wait_calls("editMessageText", where=lambda p: "Pay $12.50" in str(p.get("reply_markup")))

"""The donation keypad's rules and callback data, without a daemon."""

from __future__ import annotations

from decimal import Decimal

import pytest

from telepayd.handlers import keypad
from telepayd.handlers.callbacks import ACTIONS, MAX_BYTES, Button, decode, encode
from telepayd.handlers.keypad import BACKSPACE, CANCEL, CLEAR, CONFIRM, POINT


def typed(keys: str) -> str:
    codes = {str(d): d for d in range(10)} | {".": POINT, "<": BACKSPACE, "C": CLEAR}
    amount = ""
    for key in keys:
        amount = keypad.press(amount, codes[key])
    return amount


@pytest.mark.parametrize("keys, shown", [
    ("12.50", "12.50"), ("12.509", "12.50"), ("99999", "9999"), ("0", "0"), ("05", "5"), ("00", "0"),
    (".", "0."), ("..5", "0.5"), ("1.2.3", "1.23"), ("12<", "1"), ("<<", ""), ("12C3", "3"), ("1.<5", "15"),
])
def test_typing_rules(keys, shown):
    assert typed(keys) == shown


@pytest.mark.parametrize("key", [CONFIRM, CANCEL, 99, -1])
def test_keys_that_do_not_edit_leave_the_amount(key):
    assert keypad.press("12.5", key) == "12.5"


@pytest.mark.parametrize("amount, money", [("12.5", Decimal("12.50")), ("7.", Decimal("7.00")), ("", None), (".", None), ("0", Decimal("0.00"))])
def test_value(amount, money):
    assert keypad.value(amount) == money


@pytest.mark.parametrize("amount, ok", [
    (Decimal("4.98"), False), (Decimal("4.99"), True), (Decimal("9999.99"), True), (Decimal("10000"), False),
    (Decimal("5.001"), False), (Decimal("5"), True),
])
def test_the_server_checks_range_and_decimals(amount, ok):
    assert keypad.acceptable(amount, Decimal("4.99"), Decimal("9999.99")) is ok


def test_every_action_round_trips_within_telegrams_64_bytes():
    for action, count in ACTIONS.items():
        args = tuple(10**17 + n for n in range(count))
        data = encode(action, *args)
        assert len(data.encode()) <= MAX_BYTES
        assert decode(data) == Button(action, args)


@pytest.mark.parametrize("data", [
    None, "", "ch", "ch:", "ch:1:2", "tier:1", "kp:²", "ch:٣", "ch:-1", "CH:1", "ch:1 ", "drop table;", "x" * 65,
    "ch:" + "9" * 19, "unknown:1", "ch:1\n",
])
def test_anything_we_did_not_produce_decodes_to_none(data):
    assert decode(data) is None

"""The donation keypad's arithmetic, kept pure: what a key does to the typed amount."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_INTEGER_DIGITS = 4
MAX_DECIMALS = 2

POINT, BACKSPACE, CLEAR, CONFIRM, CANCEL = 10, 11, 12, 13, 14
KEY_LABELS = {POINT: ".", BACKSPACE: "⌫", CLEAR: "C", CONFIRM: "✅", CANCEL: "✖"}


def press(amount: str, key: int) -> str:
    """The amount after an editing key (digits, point, backspace, clear); a key that would break a rule
    (a third decimal, a fifth integer digit, a second point) leaves it unchanged."""
    if 0 <= key <= 9:
        whole, point, decimals = amount.partition(".")
        if point:
            return amount + str(key) if len(decimals) < MAX_DECIMALS else amount
        if whole == "0":
            return str(key)
        return amount + str(key) if len(whole) < MAX_INTEGER_DIGITS else amount
    if key == POINT:
        return amount if "." in amount else (amount or "0") + "."
    if key == BACKSPACE:
        return amount[:-1]
    if key == CLEAR:
        return ""
    return amount


def value(amount: str) -> Decimal | None:
    """The typed amount as money, or None when nothing usable was typed."""
    try:
        parsed = Decimal(amount.rstrip(".") or "x")
    except InvalidOperation:
        return None
    return parsed.quantize(Decimal("0.01")) if parsed.is_finite() else None


def acceptable(amount: Decimal, minimum: Decimal, maximum: Decimal) -> bool:
    """Server-side check, whatever the keypad allowed: range and at most two decimals."""
    return minimum <= amount <= maximum and amount.as_tuple().exponent >= -MAX_DECIMALS

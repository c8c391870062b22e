"""Whole numbers typed by people and programs: ASCII digits only.

``str.isdigit()`` and ``int()`` accept far more than ``0-9`` (``"²"``, Arabic-Indic ``"٣"``, ``"1_000"``,
surrounding spaces), and ``int("²")`` raises after ``isdigit()`` said yes. Deep links, callback data, IPN
ids and command-line ids go through here instead.
"""

from __future__ import annotations

import argparse
import re

_UNSIGNED = re.compile(r"[0-9]{1,19}")
_SIGNED = re.compile(r"-?[0-9]{1,19}")


def ascii_int(text: object, *, signed: bool = False) -> int | None:
    """``text`` as an int when it is 1-19 ASCII digits (with a leading ``-`` if ``signed``), else None."""
    if not isinstance(text, str):
        return None
    match = (_SIGNED if signed else _UNSIGNED).fullmatch(text)
    return int(text) if match else None


# The largest id PostgreSQL's bigint holds (Telegram's ids, outbox ids).
MAX_ID = 2**63 - 1


def argument(signed: bool = False, *, maximum: int = MAX_ID):
    """An argparse ``type=`` that accepts ASCII digits only, up to ``maximum``, with a clear message otherwise."""

    def parse(text: str) -> int:
        value = ascii_int(text, signed=signed)
        if value is None and text.lstrip("-").isascii() and text.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"{text} has more digits than the largest accepted here ({maximum})")
        if value is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number written with the digits 0-9")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is more than {maximum}, the largest accepted here")
        return value

    parse.__name__ = "whole number"
    return parse

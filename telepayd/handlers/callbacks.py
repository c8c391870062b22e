"""callback_data: short, typed, validated when it comes back (a client can send anything)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BYTES = 64
# action -> number of integer arguments
ACTIONS = {"list": 1, "ch": 1, "tier": 2, "link": 1, "kp": 1, "paid": 0,
           # Stars: pay a plan with crypto / Stars; a donation of N cents with crypto / Stars; a renewal off / on.
           "np": 2, "xtr": 2, "dnp": 2, "dxtr": 2, "rnoff": 1, "rnon": 1,
           # Growth: take a channel's free trial; pick a language (its index in languages.AVAILABLE); owner's numbers.
           "trial": 1, "lang": 1, "stats": 1}
_PATTERN = re.compile(r"([a-z]{1,8})((?::[0-9]{1,18})*)")


@dataclass(frozen=True)
class Button:
    action: str
    args: tuple[int, ...]


def encode(action: str, *args: int) -> str:
    assert ACTIONS.get(action) == len(args), (action, args)
    data = ":".join([action, *(str(a) for a in args)])
    assert len(data.encode()) <= MAX_BYTES
    return data


def decode(data: str | None) -> Button | None:
    """The button, or None for anything we did not produce (stale, forged, from an older version)."""
    if not data or len(data) > MAX_BYTES:
        return None
    match = _PATTERN.fullmatch(data)
    if not match:
        return None
    action = match[1]
    args = tuple(int(a) for a in match[2].split(":")[1:])
    if ACTIONS.get(action) != len(args):
        return None
    return Button(action, args)

"""Access codes as people type them: generated from an alphabet without look-alikes, normalized when typed back.

Pure (standard library only). A code is stored upper case, ``[A-Z0-9]{1,40}`` (the ``access_codes`` check):
an optional operator's prefix (``SPRING``) followed by random characters from ``ALPHABET``.

``ALPHABET`` has 31 characters: the digits 2-9 and the letters A-Z without I, L and O, so that nobody
reads 0 for O or 1 for I or L off a screen or a flyer. Each random character carries log2(31) = 4.95 bits;
the default 10 characters carry 49.5 bits, and no code is generated with fewer than ``MIN_BITS`` (40) random
bits (``MIN_LENGTH`` = 9 characters), whatever the prefix. Guessing is bounded further by ``uses`` and by the
bot's rate limits; 2^40 is about 10^12 tries per code.
"""

from __future__ import annotations

import math
import re
import secrets

# No 0 O 1 I L: each looks like another character.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LOOK_ALIKES = frozenset("0O1IL")
BITS_PER_CHARACTER = math.log2(len(ALPHABET))  # 4.954...
MIN_BITS = 40
MIN_LENGTH = math.ceil(MIN_BITS / BITS_PER_CHARACTER)  # 9
DEFAULT_LENGTH = 10  # 49.5 bits
MAX_CODE_LENGTH = 40  # the access_codes check: ^[A-Z0-9]{1,40}$
MAX_PREFIX_LENGTH = 12

_CODE = re.compile(r"[A-Z0-9]{1,40}")
_PREFIX = re.compile(r"[2-9A-HJKMNP-Z]{0,12}")  # the ALPHABET: a prefix read off a flyer has no look-alikes either
# What people put between the groups of a code they copy or type: spaces of any kind and dashes (the ASCII one
# and the typographic ones a phone keyboard may substitute).
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")

assert not LOOK_ALIKES & set(ALPHABET) and len(set(ALPHABET)) == len(ALPHABET)
assert DEFAULT_LENGTH * BITS_PER_CHARACTER >= MIN_BITS


def random_bits(length: int) -> float:
    """How many random bits ``length`` characters from ``ALPHABET`` carry."""
    return length * BITS_PER_CHARACTER


def parse_prefix(text: str) -> str:
    """An operator's prefix: upper-cased, of the characters of ``ALPHABET`` only (no 0, O, 1, I, L), at most
    12 ("" for none). Raises ValueError with a message for the operator."""
    value = text.strip()
    if not value.isascii() or not _PREFIX.fullmatch(value := value.upper()):  # "ı".upper() is "I"
        raise ValueError(f"prefix {text!r}: use at most {MAX_PREFIX_LENGTH} of {ALPHABET} (no 0, O, 1, I or L: "
                         "they are misread), like SUMMER")
    return value


def generate(prefix: str = "", length: int = DEFAULT_LENGTH) -> str:
    """``prefix`` (see ``parse_prefix``) followed by ``length`` random characters of ``ALPHABET`` from
    ``secrets``. ``length`` must give at least ``MIN_BITS`` random bits, and the code at most 40 characters."""
    head = parse_prefix(prefix)
    if length < MIN_LENGTH:
        raise ValueError(f"length {length}: at least {MIN_LENGTH} random characters ({MIN_BITS} bits) are needed")
    if len(head) + length > MAX_CODE_LENGTH:
        raise ValueError(f"a prefix of {len(head)} and {length} random characters exceed {MAX_CODE_LENGTH} characters")
    return head + "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize(text: str) -> str | None:
    """A code as typed (any case, with spaces or dashes between groups, surrounding blanks) as it is stored,
    or None when it cannot be a code: anything but ASCII letters and digits, empty, or over 40 characters."""
    if not isinstance(text, str):
        return None
    value = _SEPARATORS.sub("", text.strip())
    # Checked before upper(): "ı".upper() is "I" and "ﬀ".upper() is "FF".
    if not value.isascii():
        return None
    value = value.upper()
    return value if _CODE.fullmatch(value) else None

"""The ``X-Telegram-Bot-Api-Secret-Token`` check: constant time, against every accepted token."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import SignatureError

SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def verify_secret_token(offered: str | None, tokens: Sequence[bytes]) -> None:
    """Raise ``SignatureError`` unless ``offered`` equals one of ``tokens``."""
    if not offered:
        raise SignatureError("missing_secret_token", f"Missing header: {SECRET_TOKEN_HEADER}.")
    offered_bytes = offered.encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(offered_bytes, token)
    if not matched:
        raise SignatureError("bad_secret_token", "The secret token matches no accepted token.")

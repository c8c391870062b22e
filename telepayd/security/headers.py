"""Response security headers and request ids."""

from __future__ import annotations

import re
import secrets

SECURITY_HEADERS: dict[str, str] = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(offered: str | None, correlation: str | None = None) -> str:
    """The caller's ``X-Request-ID`` (or ``X-Correlation-ID``) when well-formed, else a fresh id."""
    for candidate in (offered, correlation):
        if candidate and _REQUEST_ID_PATTERN.fullmatch(candidate):
            return candidate
    return secrets.token_hex(12)

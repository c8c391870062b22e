"""Rejections raised by the security core, each carrying a machine-readable ``reason``."""

from __future__ import annotations


class SecurityError(Exception):
    """A request failed a security check; ``reason`` is the code shown to the caller."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class SignatureError(SecurityError):
    """A signature (Standard Webhooks, NowPayments IPN, Telegram token) did not verify."""


class ForwardedForError(SecurityError):
    """An ``X-Forwarded-For`` header from a trusted proxy could not be parsed."""

    def __init__(self, detail: str) -> None:
        super().__init__("malformed_forwarded_for", detail)

"""Standard Webhooks v1 (https://www.standardwebhooks.com): sign and verify.

The signed bytes are ``webhook-id.webhook-timestamp.body`` over the raw body, HMAC-SHA256 with the key
decoded from ``whsec_<base64>``. The ``webhook-signature`` header is a space-separated list of
``v1,<base64>`` entries; entries of other versions are skipped. Every accepted secret is tried, so keys
can be rotated with an overlap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import SignatureError

SECRET_PREFIX = "whsec_"
MAX_ID_LENGTH = 255
_MAX_SIGNATURES = 16


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key of a ``whsec_<base64>`` secret; raise ``ValueError`` when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error:
        raise ValueError("the part after 'whsec_' is not valid base64") from None
    if len(key) < 16:
        raise ValueError("the key is shorter than 16 bytes (24 base64 characters)")
    return key


def generate_secret() -> str:
    """Return a new random ``whsec_`` secret with a 32-byte key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def generate_message_id() -> str:
    """Return a new random webhook-id (``msg_`` + 27 URL-safe characters)."""
    return "msg_" + secrets.token_urlsafe(20)


def _is_valid_id(message_id: str) -> bool:
    """1-255 printable ASCII characters without spaces (so it is safe in logs and as a key)."""
    return (
        len(message_id) <= MAX_ID_LENGTH
        and message_id.isascii()
        and message_id.isprintable()
        and " " not in message_id
    )


def _signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> bytes:
    signed = b"%s.%s.%s" % (message_id.encode("ascii"), timestamp.encode("ascii"), body)
    return hmac.digest(key, signed, "sha256")


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The three Standard Webhooks headers of one signed message."""

    webhook_id: str
    webhook_timestamp: str
    webhook_signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "webhook-id": self.webhook_id,
            "webhook-timestamp": self.webhook_timestamp,
            "webhook-signature": self.webhook_signature,
        }


def sign(
    secret: str, body: bytes, *, message_id: str | None = None, timestamp: int | None = None
) -> SignedHeaders:
    """Sign ``body`` with one ``whsec_`` secret and return the headers to send with it."""
    message_id = message_id or generate_message_id()
    if not message_id or not _is_valid_id(message_id):
        raise ValueError("a webhook-id is 1-255 printable ASCII characters without spaces")
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = _signature(decode_secret(secret), message_id, stamp, body)
    return SignedHeaders(message_id, stamp, "v1," + base64.b64encode(digest).decode("ascii"))


class WebhookVerifier:
    """Verifies Standard Webhooks signatures against every accepted key."""

    def __init__(self, keys: Sequence[bytes], *, tolerance_seconds: float = 300.0) -> None:
        self._keys = tuple(keys)
        self.tolerance_seconds = tolerance_seconds

    @classmethod
    def from_secrets(cls, secrets_: Sequence[str], *, tolerance_seconds: float = 300.0) -> WebhookVerifier:
        return cls([decode_secret(s) for s in secrets_], tolerance_seconds=tolerance_seconds)

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
        """Return the verified webhook-id, or raise ``SignatureError`` with the reason."""
        message_id = headers.get("webhook-id")
        timestamp = headers.get("webhook-timestamp")
        signature_header = headers.get("webhook-signature")
        if not (message_id and timestamp and signature_header):
            missing = [
                name
                for name, value in (
                    ("webhook-id", message_id),
                    ("webhook-timestamp", timestamp),
                    ("webhook-signature", signature_header),
                )
                if not value
            ]
            raise SignatureError("missing_signature_headers", f"Missing header(s): {', '.join(missing)}.")
        if not _is_valid_id(message_id):
            raise SignatureError(
                "malformed_webhook_id", "webhook-id must be 1-255 printable ASCII characters without spaces."
            )
        if not (len(timestamp) <= 12 and timestamp.isascii() and timestamp.isdigit()):
            raise SignatureError("malformed_timestamp", "webhook-timestamp must be whole seconds since the epoch.")
        age = (time.time() if now is None else now) - int(timestamp)
        if age > self.tolerance_seconds:
            raise SignatureError("timestamp_too_old", "webhook-timestamp is outside the accepted tolerance.")
        if age < -self.tolerance_seconds:
            raise SignatureError("timestamp_in_future", "webhook-timestamp is outside the accepted tolerance.")
        offered = self._parse_signatures(signature_header)
        signed = b"%s.%s.%s" % (message_id.encode("ascii"), timestamp.encode("ascii"), body)
        matched = False
        for key in self._keys:
            expected = hmac.digest(key, signed, "sha256")
            for candidate in offered:
                matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureError("no_matching_signature", "No signature matches an accepted secret.")
        return message_id

    @staticmethod
    def _parse_signatures(header: str) -> list[bytes]:
        """Return the decoded ``v1`` signatures; raise when there is none that decodes."""
        entries = header.split()
        if len(entries) > _MAX_SIGNATURES:
            raise SignatureError(
                "malformed_signature", f"webhook-signature carries more than {_MAX_SIGNATURES} signatures."
            )
        decoded: list[bytes] = []
        saw_v1 = False
        for entry in entries:
            version, comma, value = entry.partition(",")
            if not comma or version != "v1":
                continue
            saw_v1 = True
            try:
                raw = binascii.a2b_base64(value, strict_mode=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) == hashlib.sha256().digest_size:
                decoded.append(raw)
        if not decoded:
            reason = "malformed_signature" if saw_v1 else "no_v1_signature"
            detail = (
                "webhook-signature has no v1 signature that is valid base64 of 32 bytes."
                if saw_v1
                else "webhook-signature has no 'v1,<base64>' entry."
            )
            raise SignatureError(reason, detail)
        return decoded

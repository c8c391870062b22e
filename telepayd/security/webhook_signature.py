"""Standard Webhooks v1 (https://www.standardwebhooks.com): sign and verify.

The signed bytes are ``webhook-id.webhook-timestamp.body`` over the raw body, HMAC-SHA256 with the key
decoded from ``whsec_<base64>``. The ``webhook-signature`` header is a space-separated list of
``v1,<base64>`` entries; entries of other versions are skipped. Every accepted secret is tried, so keys
can be rotated with an overlap.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import webhook_signer
from .errors import SignatureError
from .webhook_signer import MAX_ID_LENGTH, decode_secret, generate_secret, is_valid_id

__all__ = ["MAX_ID_LENGTH", "SignedHeaders", "WebhookVerifier", "decode_secret", "generate_secret", "sign"]

_MAX_SIGNATURES = 16
_SIGNATURE_BYTES = 32


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
    headers = webhook_signer.sign(secret, body, message_id=message_id, timestamp=timestamp)
    return SignedHeaders(headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"])


class _HmacSha256:
    """HMAC-SHA256 under one key, keyed once: ``hmac.new`` when the secret is loaded, ``copy()`` per message
    (setting the key up is most of the cost of a short message, and this runs on every webhook request)."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, content: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(content)
        return mac.digest()


class WebhookVerifier:
    """Verifies Standard Webhooks signatures against every accepted key."""

    def __init__(self, keys: Sequence[bytes], *, tolerance_seconds: float = 300.0) -> None:
        self._macs = tuple(_HmacSha256(key) for key in keys)
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
        if not is_valid_id(message_id):
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
        content = webhook_signer.signed_content(message_id, timestamp, body)
        entries = signature_header.split()
        if len(entries) > _MAX_SIGNATURES:
            raise SignatureError(
                "malformed_signature", f"webhook-signature carries more than {_MAX_SIGNATURES} signatures."
            )
        # Compare the encoded forms, as the reference libraries do: no decoding on the way to a match.
        # compare_digest takes ASCII text only; other entries cannot match and are diagnosed below.
        for mac in self._macs:
            expected = webhook_signer.signature_entry(mac.digest(content))
            for entry in entries:
                if entry.isascii() and hmac.compare_digest(entry, expected):
                    return message_id
        self._diagnose(entries)
        raise SignatureError("no_matching_signature", "No signature matches an accepted secret.")

    @staticmethod
    def _diagnose(entries: list[str]) -> None:
        """After a failed match: raise when no entry is a well-formed ``v1`` signature (the sender's bug)."""
        saw_v1 = False
        for entry in entries:
            version, comma, value = entry.partition(",")
            if not comma or version != "v1":
                continue
            saw_v1 = True
            try:
                if len(binascii.a2b_base64(value, strict_mode=True)) == _SIGNATURE_BYTES:
                    return
            except (binascii.Error, ValueError):
                continue
        if saw_v1:
            raise SignatureError(
                "malformed_signature", "webhook-signature has no v1 signature that is valid base64 of 32 bytes."
            )
        raise SignatureError("no_v1_signature", "webhook-signature has no 'v1,<base64>' entry.")

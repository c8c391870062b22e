"""Standard Webhooks v1 signing, in one standard-library file a caller can vendor as it is.

    from webhook_signer import sign
    headers = sign("whsec_...", body_bytes)          # webhook-id, webhook-timestamp, webhook-signature
    requests.post(url, data=body_bytes, headers={**headers, "Content-Type": "application/json"})

The signed bytes are ``webhook-id.webhook-timestamp.body``, HMAC-SHA256 with the key decoded from
``whsec_<base64>`` (https://www.standardwebhooks.com). Reuse the same webhook-id when retrying a message:
the receiver then acknowledges it as a duplicate instead of acting twice.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
MAX_ID_LENGTH = 255


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


def is_valid_id(message_id: str) -> bool:
    """1-255 printable ASCII characters without spaces (so it is safe in logs and as a key)."""
    return (
        0 < len(message_id) <= MAX_ID_LENGTH
        and message_id.isascii()
        and message_id.isprintable()
        and " " not in message_id
    )


def signed_content(message_id: str, timestamp: str, body: bytes) -> bytes:
    """The bytes a signature covers: ``message_id.timestamp.body``."""
    return b"%s.%s.%s" % (message_id.encode("ascii"), timestamp.encode("ascii"), body)


def signature(key: bytes, content: bytes) -> bytes:
    """The raw HMAC-SHA256 of ``content`` (see ``signed_content``)."""
    return hmac.digest(key, content, "sha256")


def signature_entry(digest: bytes) -> str:
    """The ``v1,<base64>`` entry of the webhook-signature header for one raw signature."""
    return "v1," + binascii.b2a_base64(digest, newline=False).decode("ascii")


def sign(secret: str, body: bytes, *, message_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    """Sign ``body`` with one ``whsec_`` secret; return the three headers to send with it."""
    message_id = message_id or generate_message_id()
    if not is_valid_id(message_id):
        raise ValueError("a webhook-id is 1-255 printable ASCII characters without spaces")
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = signature(decode_secret(secret), signed_content(message_id, stamp, body))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signature_entry(digest),
    }

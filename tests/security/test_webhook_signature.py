"""Standard Webhooks v1 sign/verify, checked against the official library and every malformed header."""

from __future__ import annotations

import base64
import hmac
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from telepayd.security.errors import SignatureError
from telepayd.security.webhook_signature import (
    WebhookVerifier,
    _HmacSha256,
    decode_secret,
    generate_secret,
    sign,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000
BODY = b'{"open_channel_id":"-100","payment_type":"donation","payment_data":{}}'


def verifier(*secrets: str, tolerance: float = 300) -> WebhookVerifier:
    return WebhookVerifier.from_secrets(list(secrets), tolerance_seconds=tolerance)


def reason(headers: dict[str, str], body: bytes = BODY, *, secrets: tuple[str, ...] = (SECRET,), now: float = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        verifier(*secrets).verify(headers, body, now=now)
    return caught.value.reason


def test_signature_matches_the_official_library():
    ours = sign(SECRET, BODY, message_id="msg_1", timestamp=NOW)
    theirs = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(NOW, tz=timezone.utc), BODY.decode())
    assert ours.webhook_signature == theirs


def test_official_library_verifies_our_signature():
    headers = sign(SECRET, BODY, message_id="msg_2").as_dict()
    Webhook(SECRET).verify(BODY.decode(), headers)  # raises on failure


def test_verify_returns_the_webhook_id():
    headers = sign(SECRET, BODY, message_id="msg_3", timestamp=NOW).as_dict()
    assert verifier(SECRET).verify(headers, BODY, now=NOW) == "msg_3"


def test_any_accepted_secret_verifies_during_rotation():
    new = generate_secret()
    headers = sign(new, BODY, timestamp=NOW).as_dict()
    assert verifier(SECRET, new).verify(headers, BODY, now=NOW)
    assert reason(headers) == "no_matching_signature"


def test_one_matching_signature_among_several_is_enough():
    good = sign(SECRET, BODY, message_id="m", timestamp=NOW)
    other = sign(generate_secret(), BODY, message_id="m", timestamp=NOW)
    headers = good.as_dict()
    headers["webhook-signature"] = f"v1a,abcd {other.webhook_signature} {good.webhook_signature}"
    assert verifier(SECRET).verify(headers, BODY, now=NOW) == "m"


@pytest.mark.parametrize("key_length", [1, 16, 32, 63, 64, 65, 200])
def test_prepared_hmac_equals_the_standard_library_for_every_key_length(key_length):
    key = bytes(range(7, 7 + key_length % 249)).ljust(key_length, b"k")
    mac = _HmacSha256(key)
    for content in (b"", b"x", BODY, BODY * 50):
        assert mac.digest(content) == hmac.digest(key, content, "sha256")
    assert mac.digest(BODY) == mac.digest(BODY)  # the prepared states are copied, never consumed


@pytest.mark.parametrize(
    "signature_header, expected",
    [("v1,\u00e9t\u00e9", "malformed_signature"), ("v\u00b9,abc", "no_v1_signature"), ("\u00fc", "no_v1_signature")],
)
def test_non_ascii_signature_headers_get_a_reason_not_a_type_error(signature_header, expected):
    headers = {**sign(SECRET, BODY, timestamp=NOW).as_dict(), "webhook-signature": signature_header}
    assert reason(headers) == expected


def test_a_valid_signature_next_to_a_non_ascii_entry_is_still_found():
    good = sign(SECRET, BODY, message_id="m", timestamp=NOW)
    headers = {**good.as_dict(), "webhook-signature": f"v1,\u00e9 {good.webhook_signature}"}
    assert verifier(SECRET).verify(headers, BODY, now=NOW) == "m"


def test_tampered_body_is_rejected():
    headers = sign(SECRET, BODY, timestamp=NOW).as_dict()
    assert reason(headers, BODY.replace(b"donation", b"subscription")) == "no_matching_signature"


def test_tampered_id_or_timestamp_is_rejected():
    headers = sign(SECRET, BODY, message_id="msg_a", timestamp=NOW).as_dict()
    assert reason({**headers, "webhook-id": "msg_b"}) == "no_matching_signature"
    assert reason({**headers, "webhook-timestamp": str(NOW + 1)}) == "no_matching_signature"


@pytest.mark.parametrize("offset, expected", [(-301, "timestamp_too_old"), (301, "timestamp_in_future")])
def test_timestamps_outside_tolerance_are_rejected_both_ways(offset, expected):
    headers = sign(SECRET, BODY, timestamp=NOW + offset).as_dict()
    assert reason(headers) == expected


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamps_at_the_tolerance_edge_are_accepted(offset):
    headers = sign(SECRET, BODY, timestamp=NOW + offset).as_dict()
    assert verifier(SECRET).verify(headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing):
    headers = sign(SECRET, BODY, timestamp=NOW).as_dict()
    del headers[missing]
    assert reason(headers) == "missing_signature_headers"


@pytest.mark.parametrize(
    "header, value, expected",
    [
        ("webhook-timestamp", "soon", "malformed_timestamp"),
        ("webhook-timestamp", "-5", "malformed_timestamp"),
        ("webhook-timestamp", "1e9", "malformed_timestamp"),
        ("webhook-timestamp", "9" * 40, "malformed_timestamp"),
        ("webhook-signature", "v1,not base64!!", "malformed_signature"),
        ("webhook-signature", "v1," + base64.b64encode(b"short").decode(), "malformed_signature"),
        ("webhook-signature", "v2,abc", "no_v1_signature"),
        ("webhook-signature", "garbage", "no_v1_signature"),
        ("webhook-signature", " ".join(["v1,AAAA"] * 17), "malformed_signature"),
        ("webhook-id", "has space", "malformed_webhook_id"),
        ("webhook-id", "x" * 256, "malformed_webhook_id"),
    ],
)
def test_malformed_headers_raise_typed_errors(header, value, expected):
    headers = sign(SECRET, BODY, timestamp=NOW).as_dict()
    headers[header] = value
    assert reason(headers) == expected


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_???", "whsec_c2hvcnQ="])
def test_unusable_secrets_are_refused(secret):
    with pytest.raises(ValueError):
        decode_secret(secret)

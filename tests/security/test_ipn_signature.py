"""NowPayments IPN signatures: every shared vector, plus the rules the vectors rest on."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from telepayd.security.errors import SignatureError
from telepayd.security.ipn_signature import signed_texts, verify_ipn
from telepayd.security.strict_json import JSONBodyError

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "nowpayments-ipn.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_shared_vectors(vector):
    body = vector["body"].encode()
    secret = vector["ipn_secret"].encode()
    documented, fully_sorted = signed_texts(body)
    if vector["expect"] == "valid":
        assert vector["signed_text"] == (documented if vector["form"] == "documented" else fully_sorted)
        verify_ipn(body, vector["x-nowpayments-sig"], [secret])
        verify_ipn(body, vector["x-nowpayments-sig"].upper(), [b"old-secret", secret])
    else:
        with pytest.raises(SignatureError):
            verify_ipn(body, vector["x-nowpayments-sig"], [secret])


def _sig(text: str, secret: bytes = b"s") -> str:
    return hmac.new(secret, text.encode(), hashlib.sha512).hexdigest()


def test_numbers_are_kept_as_written():
    body = b'{"b":1.10,"a":1e-7,"c":100000000000000000000001}'
    documented, _ = signed_texts(body)
    assert documented == '{"a":1e-7,"b":1.10,"c":100000000000000000000001}'


def test_non_ascii_is_not_escaped_and_strings_escape_like_javascript():
    documented, _ = signed_texts('{"d":"Prämie ✓","e":"tab\\there \\"q\\" \\u0001"}'.encode())
    assert documented == '{"d":"Prämie ✓","e":"tab\\there \\"q\\" \\u0001"}'


def test_documented_form_filters_nested_keys_in_arrays_too():
    documented, fully_sorted = signed_texts(b'{"b":[{"a":1,"z":2}],"a":0}')
    assert documented == '{"a":0,"b":[{"a":1}]}'
    assert fully_sorted == '{"a":0,"b":[{"a":1,"z":2}]}'


def test_wrong_secret_missing_and_malformed_signatures():
    body = b'{"order_id":"x","payment_status":"finished"}'
    good = _sig(signed_texts(body)[0])
    verify_ipn(body, good, [b"s"])
    for signature, expected in ((None, "missing_signature_headers"), ("zz" * 64, "malformed_signature"), ("ab", "malformed_signature")):
        with pytest.raises(SignatureError) as caught:
            verify_ipn(body, signature, [b"s"])
        assert caught.value.reason == expected
    with pytest.raises(SignatureError):
        verify_ipn(body, good, [b"other"])


@pytest.mark.parametrize("body", [b"[1]", b"{", b'{"a":NaN}', b"\xff", b"[" * 100000 + b"]" * 100000])
def test_bodies_that_are_not_json_objects_raise_json_errors(body):
    with pytest.raises(JSONBodyError):
        verify_ipn(body, "00" * 64, [b"s"])

"""Strict JSON parsing, Telegram secret tokens and request ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from telepayd.security.errors import SignatureError
from telepayd.security.headers import request_id
from telepayd.security.strict_json import JSONBodyError, parse_json_object
from telepayd.security.telegram_token import verify_secret_token


def test_amounts_are_decimals():
    assert parse_json_object(b'{"amount": 9.99}') == {"amount": Decimal("9.99")}


@pytest.mark.parametrize(
    "body",
    [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b"\xc3\x28", b"[]", b"", b"{", b"[" * 50000, b'{"a":' + b"9" * 5000 + b"}"],
)
def test_unacceptable_bodies_raise_one_error_type(body):
    with pytest.raises(JSONBodyError):
        parse_json_object(body)


def test_a_byte_order_mark_is_named_and_the_same_body_without_it_parses():
    with pytest.raises(JSONBodyError, match="byte order mark"):
        parse_json_object("\ufeff{}".encode())
    assert parse_json_object(b"{}") == {} and parse_json_object(b'{"a": 1.5}', decimals=False) == {"a": 1.5}


def test_secret_token_any_line_matches_and_others_fail():
    verify_secret_token("new", [b"old", b"new"])
    for offered in (None, "", "nope", "olé"):
        with pytest.raises(SignatureError):
            verify_secret_token(offered, [b"old", b"new"])


def test_request_id_keeps_a_well_formed_caller_id():
    assert request_id("abc-123_X.y") == "abc-123_X.y"
    assert request_id(None, "corr-1") == "corr-1"
    generated = request_id("bad id with spaces", "x" * 65)
    assert generated not in ("bad id with spaces",) and len(generated) == 24

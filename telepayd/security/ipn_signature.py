"""NowPayments IPN signatures: ``x-nowpayments-sig`` is hex HMAC-SHA512 over the re-serialised body.

NowPayments signs ``JSON.stringify(params, Object.keys(params).sort())``: the top-level keys sorted, and,
because an array replacer is a whitelist applied at every depth, nested objects keep only the keys that are
also top-level keys (in the top level's sorted order). Some senders sign the fully sorted form instead;
both are accepted. The text is compact, non-ASCII is not escaped, and numbers are written exactly as they
appear in the raw body (Python's float formatting differs from JavaScript's, so nothing is re-formatted).
Values nested inside objects are not covered by the documented form: callers must decide nothing on them.

Anyone can post a body here, and it must be parsed before its signature can be checked, so the work done
without a secret is bounded: a body over ``IPN_SHAPE`` (a real IPN has about 20 keys and one small nested
object) is refused before any serialisation or hashing, and the serialisation is linear in the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import SignatureError
from .strict_json import JSONBodyError, Shape, check_document, reject_constant

SIGNATURE_HEADER = "x-nowpayments-sig"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Ten times what NowPayments sends, and small enough that serialising and hashing it costs next to nothing.
IPN_SHAPE = Shape(max_depth=8, max_keys=300, max_containers=60, max_items=300)


class _RawNumber(str):
    """A JSON number kept as the text it was written with."""


def _parse_raw(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(
            body.decode("utf-8"),
            parse_float=_RawNumber,
            parse_int=_RawNumber,
            parse_constant=reject_constant,
        )
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise JSONBodyError("The IPN body is not a valid JSON document.") from None
    if not isinstance(value, dict):
        raise JSONBodyError("The IPN body must be a JSON object.")
    check_document(value, IPN_SHAPE)
    return value


def _js_sort_key(key: str) -> bytes:
    """JavaScript's default sort compares UTF-16 code units."""
    return key.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str], allowed: dict[str, int] | None) -> None:
    """Serialise like ``JSON.stringify``; ``allowed`` maps the replacer's keys to their places, or is ``None``
    to sort every object's keys."""
    if isinstance(value, _RawNumber):
        out.append(value)
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, allowed)
        out.append("]")
    else:
        keys: Iterable[str] = (
            sorted(value, key=_js_sort_key) if allowed is None
            else sorted((k for k in value if k in allowed), key=allowed.__getitem__)
        )
        out.append("{")
        for index, key in enumerate(keys):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out, allowed)
        out.append("}")


def signed_texts(body: bytes) -> tuple[str, str]:
    """Return the documented (JavaScript replacer) form and the fully sorted form of an IPN body."""
    params = _parse_raw(body)
    top_keys = {key: place for place, key in enumerate(sorted(params, key=_js_sort_key))}
    documented: list[str] = []
    _write(params, documented, top_keys)
    fully_sorted: list[str] = []
    _write(params, fully_sorted, None)
    return "".join(documented), "".join(fully_sorted)


def verify_ipn(body: bytes, signature: str | None, secrets: Sequence[bytes]) -> None:
    """Raise ``SignatureError`` unless ``signature`` signs ``body`` under one of ``secrets``.

    Raises ``JSONBodyError`` first when the body is not JSON: it must be parsed before it can be checked.
    """
    texts = signed_texts(body)
    if not signature:
        raise SignatureError("missing_signature_headers", f"Missing header: {SIGNATURE_HEADER}.")
    signature = signature.strip()
    if len(signature) != 128 or not _HEX_DIGITS.issuperset(signature):
        raise SignatureError("malformed_signature", f"{SIGNATURE_HEADER} must be 128 hex digits.")
    offered = bytes.fromhex(signature)
    matched = False
    for secret in secrets:
        for text in texts:
            expected = hmac.new(secret, text.encode("utf-8"), hashlib.sha512).digest()
            matched |= hmac.compare_digest(expected, offered)
    if not matched:
        raise SignatureError("no_matching_signature", "The IPN signature matches no accepted secret.")

"""Property: no request, however malformed, gets a 500 or a traceback from the running daemon."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from telepayd.security.ipn_signature import signed_texts
from telepayd.security.strict_json import JSONBodyError
from telepayd.security.webhook_signature import sign

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=80)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
NOTIFICATION_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "open_channel_id": st.one_of(st.text(max_size=140), st.integers(), st.none()),
        "payment_type": st.one_of(st.text(max_size=20), st.integers()),
        "payment_data": st.one_of(JSON_VALUES, st.dictionaries(
            st.sampled_from(["user_id", "username", "amount", "currency", "tier", "duration_days", "x"]), JSON_VALUES
        )),
        "open_channel_ids": st.one_of(st.lists(st.text(max_size=5), max_size=3), JSON_VALUES),
    },
)
VALID_NOTIFICATIONS = st.fixed_dictionaries(
    {
        "open_channel_id": st.text(min_size=1, max_size=20),
        "payment_type": st.sampled_from(["subscription", "donation", "tip"]),
        "payment_data": st.fixed_dictionaries({}, optional={"amount": st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str), "user_id": st.integers()}),
    }
)


def _json_as_written(fields: dict) -> str:
    """A flat JSON object whose strings are written as given, so that an escape such as \\ud800 stays one."""
    return "{" + ",".join(f'"{k}":"{v}"' if isinstance(v, str) else f'"{k}":{json.dumps(v)}' for k, v in fields.items()) + "}"


# Text that is not text (unpaired surrogates, as JSON escapes) and digits that are not ASCII.
HOSTILE_TEXT = st.sampled_from(["\\ud800", "\\udfff", "x\\udbff", "\\ud83d\\ude00", "²", "٣٣", "𝟗", "1_000", " 7"])
HOSTILE_IPNS = st.one_of(
    st.integers(1, 6000).map(lambda n: json.dumps({f"k{i}": 1 for i in range(n)})),  # many keys
    st.integers(1, 3000).map(lambda n: json.dumps({f"k{i}": {"k0": 1, "k1": 2} for i in range(n)})),  # many objects
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),  # deep
    st.integers(1, 10000).map(lambda n: json.dumps({"a": list(range(n))})),  # long arrays
    st.fixed_dictionaries({"payment_id": HOSTILE_TEXT, "payment_status": st.sampled_from(["finished", "\\ud800"]),
                           "order_id": HOSTILE_TEXT, "price_amount": st.sampled_from(["9.99", "٩.٩٩", 9.99])}).map(_json_as_written),
).map(lambda text: text.encode()[:65536])
BODIES = st.one_of(
    VALID_NOTIFICATIONS.map(lambda d: json.dumps(d).encode()),
    HOSTILE_IPNS,
    st.lists(HOSTILE_TEXT, min_size=1, max_size=3).map(lambda items: ('{"open_channel_ids":["' + '","'.join(items) + '"]}').encode()),
    HOSTILE_TEXT.map(lambda t: ('{"open_channel_id":"' + t + '","payment_type":"x","payment_data":{"user_id":"' + t + '"}}').encode()),
    st.binary(max_size=300),
    NOTIFICATION_LIKE.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 20000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.sampled_from([b'{"a": NaN}', b'{"a": 1e999999}', b"\xff\xfe{}", b'{"open_channel_id": "\\ud800"}', b"{}" * 40000]),
)


@st.composite
def any_requests(draw) -> bytes:
    """Any method and path, random or half-right signature headers, hostile header values and bodies."""
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    path = draw(st.sampled_from(["/webhooks/notification", "/webhooks/broadcast", "/webhooks/nowpayments", "/telegram",
                                 "/status", "/ready", "/health", "/x", "/webhooks/"]))
    body = draw(BODIES)
    headers: dict[str, bytes] = {}
    if draw(st.booleans()):
        headers.update(_signature_headers(draw, body))
    if draw(st.booleans()):
        headers["x-nowpayments-sig"] = draw(st.sampled_from([_ipn_signature(body), "0" * 128, "zz"])).encode()
    if draw(st.booleans()):
        headers["X-Telegram-Bot-Api-Secret-Token"] = draw(st.sampled_from([b"tg-secret-token-1", b"wrong"]))
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "X-Forwarded-For", "X-Request-ID", "Content-Type"):
        if draw(st.integers(0, 3)) == 0:
            headers[name] = draw(HEADER_TEXT).encode("latin-1")
    headers.setdefault("Content-Type", draw(st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"text/plain"])))
    return _raw(method, path, headers, body)


@st.composite
def signed_requests(draw) -> bytes:
    """Correctly signed POSTs, so that hostile bodies reach JSON parsing, the schema and the database."""
    path = draw(st.sampled_from(["/webhooks/notification", "/webhooks/broadcast"]))
    body = draw(BODIES)
    headers = {"Content-Type": b"application/json", **_signature_headers(draw, body, secret=SECRETS[0])}
    return _raw("POST", path, headers, body)


def _ipn_signature(body: bytes) -> str:
    """The IPN signature of ``body`` when it is a JSON object NowPayments could have signed, else junk."""
    try:
        documented, _ = signed_texts(body)
    except (JSONBodyError, UnicodeError):
        return "1" * 128
    return hmac.new(b"ipn-secret-1", documented.encode("utf-8", "surrogatepass"), hashlib.sha512).hexdigest()


@st.composite
def signed_ipns(draw) -> bytes:
    """Correctly signed IPN bodies of hostile shapes and contents, so they reach parsing and the money rules."""
    body = draw(BODIES)
    return _raw("POST", "/webhooks/nowpayments", {"Content-Type": b"application/json",
                                                  "x-nowpayments-sig": _ipn_signature(body).encode()}, body)


@st.composite
def telegram_updates(draw) -> bytes:
    """Updates with the right secret token and hostile content (deep links, callback data, ids)."""
    text = draw(st.sampled_from(["/start sub_", "/start don_", "/start ", "/status", ""])) + draw(HOSTILE_TEXT)
    data = draw(st.sampled_from(["tier:", "ch:", "kp:", "link:", "list:"])) + draw(HOSTILE_TEXT)
    user = {"id": draw(st.integers(1, 2**40)), "is_bot": False, "first_name": "x"}
    update = draw(st.sampled_from([
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": text, "from": user, "chat": {"id": user["id"], "type": "private"}}},
        {"update_id": 2, "callback_query": {"id": "q", "from": user, "chat_instance": "c", "data": data}},
        {"update_id": draw(st.sampled_from(["²", 3, None])), "message": {}},
    ]))
    body = json.dumps(update, ensure_ascii=False).replace("\\\\u", "\\u").encode()
    return _raw("POST", "/telegram", {"Content-Type": b"application/json", "X-Telegram-Bot-Api-Secret-Token": b"tg-secret-token-1"}, body)


def _signature_headers(draw, body: bytes, *, secret: str | None = None) -> dict[str, bytes]:
    message_id = draw(st.text("abcdefgh", min_size=1, max_size=6))
    signed = sign(secret or draw(st.sampled_from(SECRETS)), body, message_id=message_id)
    return {k: v.encode() for k, v in signed.as_dict().items()}


def _raw(method: str, path: str, headers: dict[str, bytes], body: bytes) -> bytes:
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: localhost", b"Connection: close", b"Content-Length: %d" % len(body)]
    head += [name.encode() + b": " + value for name, value in headers.items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


SECRETS: list[str] = []


def exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(port: int, raw: bytes) -> int:
    answer = exchange(port, raw)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(status_line.split()[1])
    assert status < 500, answer[:500]
    assert b"Traceback" not in answer and b'File "/' not in answer
    return status


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def test_malformed_requests_never_get_a_500(config_files, start_daemon):
    config_files.settings = {"server": {"trusted_proxies": ["127.0.0.1/32"]},
                             "nowpayments.rate_limit": {"per_minute": 1_000_000, "burst": 1_000_000},
                             "telegram.rate_limit": {"per_minute": 1_000_000, "burst": 1_000_000}}
    config_files.write()
    daemon = start_daemon(config_files)
    SECRETS[:] = [config_files.webhook_secrets[0], "whsec_" + "A" * 32]
    seen: set[int] = set()

    def signed_example(body: dict, secret: str | None = None) -> bytes:
        raw_body = json.dumps(body).encode()
        headers = {"Content-Type": b"application/json",
                   **{k: v.encode() for k, v in sign(secret or SECRETS[0], raw_body).as_dict().items()}}
        return _raw("POST", "/webhooks/notification", headers, raw_body)

    # A request signed with a secret the daemon does not hold reaches the signature layer (401) on every run:
    # the random requests reached it on most runs only.
    @PROPERTY_SETTINGS
    @example(signed_example({"open_channel_id": "-100", "payment_type": "donation"}, secret="whsec_" + "B" * 32))
    @given(any_requests())
    def anything(raw: bytes) -> None:
        seen.add(_status(config_files.port, raw))

    # Explicit examples make sure the storage (202) and schema (422) layers are reached on every run.
    @PROPERTY_SETTINGS
    @example(signed_example({"open_channel_id": "-100", "payment_type": "donation", "payment_data": {"amount": "5"}}))
    @example(signed_example({"open_channel_id": "-100", "payment_type": "donation", "payment_data": []}))
    @given(signed_requests())
    def signed(raw: bytes) -> None:
        seen.add(_status(config_files.port, raw))

    @PROPERTY_SETTINGS
    @given(signed_ipns())
    def ipns(raw: bytes) -> None:
        seen.add(_status(config_files.port, raw))

    @PROPERTY_SETTINGS
    @given(telegram_updates())
    def updates(raw: bytes) -> None:
        seen.add(_status(config_files.port, raw))

    anything()
    signed()
    ipns()
    updates()
    assert daemon.process.poll() is None
    assert "Traceback" not in daemon.log()
    # The generators reached every layer: routing, signatures, JSON, schema and storage.
    assert {200, 202, 400, 401, 404, 405, 422}.issubset(seen), seen


def test_huge_headers_and_broken_framing_get_a_400_not_a_500(config_files, start_daemon):
    start_daemon(config_files)
    huge = b"POST /webhooks/notification HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + b"1" * 20000 + b"\r\nContent-Length: 2\r\n\r\n{}"
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(500)) + b"\r\n"
    broken = b"POST /webhooks/notification HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    for raw in (huge, many, broken):
        answer = exchange(config_files.port, raw)
        status = int(answer.split(b"\r\n", 1)[0].split()[1])
        assert 400 <= status < 500, answer[:200]
        assert b"Traceback" not in answer

"""Property: no request, however malformed, gets a 500 or a traceback from the running daemon."""

from __future__ import annotations

import json
import socket

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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
BODIES = st.one_of(
    VALID_NOTIFICATIONS.map(lambda d: json.dumps(d).encode()),
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
    path = draw(st.sampled_from(["/webhooks/notification", "/webhooks/broadcast", "/status", "/ready", "/health", "/x", "/webhooks/"]))
    body = draw(BODIES)
    headers: dict[str, bytes] = {}
    if draw(st.booleans()):
        headers.update(_signature_headers(draw, body))
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
    config_files.settings = {"server": {"trusted_proxies": ["127.0.0.1/32"]}}
    config_files.write()
    daemon = start_daemon(config_files)
    SECRETS[:] = [config_files.webhook_secrets[0], "whsec_" + "A" * 32]
    seen: set[int] = set()

    @PROPERTY_SETTINGS
    @given(any_requests())
    def anything(raw: bytes) -> None:
        seen.add(_status(config_files.port, raw))

    def signed_example(body: dict) -> bytes:
        raw_body = json.dumps(body).encode()
        headers = {"Content-Type": b"application/json",
                   **{k: v.encode() for k, v in sign(SECRETS[0], raw_body).as_dict().items()}}
        return _raw("POST", "/webhooks/notification", headers, raw_body)

    # Explicit examples make sure the storage (202) and schema (422) layers are reached on every run.
    @PROPERTY_SETTINGS
    @example(signed_example({"open_channel_id": "-100", "payment_type": "donation", "payment_data": {"amount": "5"}}))
    @example(signed_example({"open_channel_id": "-100", "payment_type": "donation", "payment_data": []}))
    @given(signed_requests())
    def signed(raw: bytes) -> None:
        seen.add(_status(config_files.port, raw))

    anything()
    signed()
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

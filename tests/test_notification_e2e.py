"""Signed notifications through the running daemon: accepted, stored once, rejected when forged."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import aiohttp
import psycopg
from standardwebhooks.webhooks import Webhook

from telepayd.security.webhook_signature import sign
from tests.harness import http_post

NOTIFICATION = {
    "open_channel_id": "-1003268562225",
    "payment_type": "subscription",
    "payment_data": {"user_id": 6271402111, "username": "alice", "amount": 9.99, "currency": "usd", "tier": 1, "duration_days": 30},
}


def _count(dsn: str, table: str = "notifications") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_request_signed_by_standardwebhooks_library_is_accepted_and_stored(config_files, start_daemon):
    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION)
    now = datetime.now(tz=timezone.utc)
    signature = Webhook(config_files.webhook_secrets[0]).sign("msg_lib_1", now, body)
    headers = {
        "webhook-id": "msg_lib_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(daemon.base_url + "/webhooks/notification", data=body, headers=headers) as response:
            assert response.status == 202, await response.text()
            assert await response.json() == {"status": "accepted", "id": "msg_lib_1"}
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Request-ID"]
    with psycopg.connect(config_files.dsn) as conn:
        row = conn.execute(
            "SELECT open_channel_id, payment_type, payment_data->>'amount', payment_data->'user_id' FROM notifications"
        ).fetchone()
    assert row == ("-1003268562225", "subscription", "9.99", 6271402111)


async def test_replayed_webhook_id_is_duplicate_and_writes_nothing(config_files, start_daemon):
    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION).encode()
    headers = sign(config_files.webhook_secrets[0], body, message_id="msg_replay").as_dict()
    headers["content-type"] = "application/json"
    async with aiohttp.ClientSession() as session:
        url = daemon.base_url + "/webhooks/notification"
        async with session.post(url, data=body, headers=headers) as first:
            assert first.status == 202
        # The same id again, even with another (validly signed) body, has no second effect.
        other = json.dumps({**NOTIFICATION, "payment_type": "donation"}).encode()
        other_headers = sign(config_files.webhook_secrets[0], other, message_id="msg_replay").as_dict()
        other_headers["content-type"] = "application/json"
        for data, hdrs in ((body, headers), (other, other_headers)):
            async with session.post(url, data=data, headers=hdrs) as again:
                assert again.status == 200
                assert await again.json() == {"status": "duplicate", "id": "msg_replay"}
    assert _count(config_files.dsn) == 1
    with psycopg.connect(config_files.dsn) as conn:
        assert conn.execute("SELECT payment_type FROM notifications").fetchone()[0] == "subscription"


async def _post(daemon, body: bytes, headers: dict[str, str], path: str = "/webhooks/notification"):
    async with aiohttp.ClientSession() as session:
        async with session.post(daemon.base_url + path, data=body, headers=headers) as response:
            return response.status, await response.json(), response.headers


def _signed(secret: str, body: bytes, **kwargs) -> dict[str, str]:
    headers = sign(secret, body, **kwargs).as_dict()
    headers["content-type"] = "application/json"
    return headers


async def test_forged_requests_are_rejected_with_401_and_the_reason(config_files, start_daemon):
    import time

    from telepayd.security.webhook_signature import generate_secret

    daemon = start_daemon(config_files)
    secret = config_files.webhook_secrets[0]
    body = json.dumps(NOTIFICATION).encode()
    cases = {
        "tampered body": (body.replace(b"alice", b"mallory"), _signed(secret, body), "no_matching_signature"),
        "stale timestamp": (body, _signed(secret, body, timestamp=int(time.time()) - 301), "timestamp_too_old"),
        "future timestamp": (body, _signed(secret, body, timestamp=int(time.time()) + 301), "timestamp_in_future"),
        "wrong secret": (body, _signed(generate_secret(), body), "no_matching_signature"),
        "missing headers": (body, {"content-type": "application/json"}, "missing_signature_headers"),
        "bad base64": (body, {**_signed(secret, body), "webhook-signature": "v1,@@@"}, "malformed_signature"),
        "text timestamp": (body, {**_signed(secret, body), "webhook-timestamp": "noon"}, "malformed_timestamp"),
    }
    for name, (data, headers, reason) in cases.items():
        status, answer, response_headers = await _post(daemon, data, headers)
        assert (name, status, answer["error"]) == (name, 401, reason)
        assert answer["detail"] and "Traceback" not in answer["detail"]
        assert response_headers["Content-Security-Policy"] == "default-src 'none'"
    assert _count(config_files.dsn) == 0


async def test_order_of_checks_size_type_json_schema(config_files, start_daemon):
    config_files.settings = {"server": {"max_body_bytes": 2048}}
    config_files.write()
    daemon = start_daemon(config_files)
    secret = config_files.webhook_secrets[0]
    big = b'{"pad":"' + b"x" * 3000 + b'"}'
    status, answer, _ = await _post(daemon, big, {"content-type": "application/json"})  # unsigned: size first
    assert (status, answer["error"]) == (413, "body_too_large")
    body = json.dumps(NOTIFICATION).encode()
    status, answer, _ = await _post(daemon, body, {**_signed(secret, body), "content-type": "text/plain"})
    assert (status, answer["error"]) == (415, "unsupported_media_type")
    status, answer, _ = await _post(daemon, b"{nope", _signed(secret, b"{nope"))
    assert (status, answer["error"]) == (400, "invalid_json")
    wrong = json.dumps({**NOTIFICATION, "payment_data": []}).encode()
    status, answer, _ = await _post(daemon, wrong, _signed(secret, wrong))
    assert (status, answer["error"]) == (422, "invalid_field") and "payment_data" in answer["detail"]
    nul = json.dumps({**NOTIFICATION, "payment_type": "a\u0000b"}).encode()
    status, answer, _ = await _post(daemon, nul, _signed(secret, nul))
    assert (status, answer["error"]) == (422, "invalid_field")
    assert _count(config_files.dsn) == 0


async def test_chunked_body_over_the_limit_is_413(config_files, start_daemon):
    config_files.settings = {"server": {"max_body_bytes": 2048}}
    config_files.write()
    daemon = start_daemon(config_files)

    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    async with aiohttp.ClientSession() as session:
        async with session.post(
            daemon.base_url + "/webhooks/notification", data=chunks(), headers={"content-type": "application/json"}
        ) as response:
            assert response.status == 413
            assert (await response.json())["error"] == "body_too_large"


async def test_rate_limit_answers_429_with_retry_after(config_files, start_daemon):
    config_files.settings = {"webhooks.rate_limit": {"per_minute": 6, "burst": 2, "max_clients": 10}}
    config_files.write()
    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION).encode()
    statuses = []
    for n in range(3):
        status, answer, headers = await _post(daemon, body, _signed(config_files.webhook_secrets[0], body, message_id=f"m{n}"))
        statuses.append(status)
    assert statuses == [202, 202, 429]
    assert answer["error"] == "rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= 10


async def test_allowlist_and_forged_forwarded_for(config_files, start_daemon):
    # The caller allowlist holds only 203.0.113.5; the test client is 127.0.0.1, which is not a trusted proxy.
    config_files.settings = {"webhooks": {"allowed_ips": ["203.0.113.5/32"]}}
    config_files.write()
    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION).encode()
    headers = _signed(config_files.webhook_secrets[0], body)
    status, answer, _ = await _post(daemon, body, headers)
    assert (status, answer["error"]) == (403, "forbidden")
    # Claiming to be the allowed address through X-Forwarded-For changes nothing.
    status, answer, _ = await _post(daemon, body, {**headers, "X-Forwarded-For": "203.0.113.5"})
    assert (status, answer["error"]) == (403, "forbidden")
    assert _count(config_files.dsn) == 0


async def test_forwarded_for_is_honoured_only_from_a_trusted_proxy(config_files, start_daemon):
    config_files.settings = {
        "server": {"trusted_proxies": ["127.0.0.1/32"]},
        "webhooks": {"allowed_ips": ["203.0.113.5/32"]},
    }
    config_files.write()
    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION).encode()
    secret = config_files.webhook_secrets[0]
    # The proxy appends the real client on the right; a forged entry on the left is never read.
    status, _, _ = await _post(daemon, body, {**_signed(secret, body), "X-Forwarded-For": "6.6.6.6, 203.0.113.5"})
    assert status == 202
    status, answer, _ = await _post(daemon, body, {**_signed(secret, body), "X-Forwarded-For": "203.0.113.5, 6.6.6.6"})
    assert (status, answer["error"]) == (403, "forbidden")
    status, answer, _ = await _post(daemon, body, {**_signed(secret, body), "X-Forwarded-For": "not-an-ip"})
    assert (status, answer["error"]) == (400, "malformed_forwarded_for")


async def test_broadcast_job_is_stored_once(config_files, start_daemon):
    daemon = start_daemon(config_files)
    secret = config_files.webhook_secrets[0]
    for body, message_id in ((b"{}", "b1"), (b'{"open_channel_ids":["-1001","-1002","-1001"]}', "b2")):
        status, answer, _ = await _post(daemon, body, _signed(secret, body, message_id=message_id), "/webhooks/broadcast")
        assert (status, answer) == (202, {"status": "accepted", "id": message_id})
    status, answer, _ = await _post(daemon, b"{}", _signed(secret, b"{}", message_id="b1"), "/webhooks/broadcast")
    assert (status, answer["status"]) == (200, "duplicate")
    bad = b'{"open_channel_ids":"-1001"}'
    status, answer, _ = await _post(daemon, bad, _signed(secret, bad), "/webhooks/broadcast")
    assert (status, answer["error"]) == (422, "invalid_field")
    with psycopg.connect(config_files.dsn) as conn:
        rows = conn.execute("SELECT webhook_id, open_channel_ids FROM broadcast_jobs ORDER BY id").fetchall()
    assert rows == [("b1", None), ("b2", ["-1001", "-1002"])]


async def test_concurrent_requests_share_commits_and_each_is_stored_once(config_files, start_daemon):
    import asyncio

    daemon = start_daemon(config_files)
    secret = config_files.webhook_secrets[0]
    body = json.dumps(NOTIFICATION).encode()
    async with aiohttp.ClientSession() as session:

        async def post(n: int) -> int:
            headers = _signed(secret, body, message_id=f"c{n % 150}")
            async with session.post(daemon.base_url + "/webhooks/notification", data=body, headers=headers) as r:
                return r.status

        statuses = await asyncio.gather(*(post(n) for n in range(300)))
        async with session.get(daemon.base_url + "/status") as response:
            status = await response.json()
    assert sorted(statuses).count(202) == 150 and statuses.count(200) == 150
    assert _count(config_files.dsn) == 150
    assert status["ingest"]["messages"] == 300
    assert status["ingest"]["batches"] < 300  # some requests shared a transaction


async def test_a_flood_of_forged_requests_does_not_flood_the_log(config_files, start_daemon):
    import asyncio

    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION).encode()
    headers = {**sign("whsec_" + "A" * 32, body).as_dict(), "content-type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def forged() -> int:
            async with session.post(daemon.base_url + "/webhooks/notification", data=body, headers=headers) as r:
                return r.status

        assert set(await asyncio.gather(*(forged() for _ in range(300)))) == {401}
        async with session.get(daemon.base_url + "/status") as response:
            assert (await response.json())["rejections"]["no_matching_signature"] == 300
    lines = [line for line in daemon.log().splitlines() if "no_matching_signature" in line]
    assert 15 <= len(lines) <= 25  # the burst, then about one a second


def test_a_commit_that_does_not_come_in_time_is_a_503_and_the_retry_stores_it_once(config_files, start_daemon):
    """The ingest's own timeout ([database] timeout_seconds): a table locked by someone else holds the commit;
    the sender gets 503 in time, retries with the same webhook-id once the lock is gone, and the message is
    stored once (by the first attempt, which went through once unblocked, or by the retry)."""
    config_files.settings["database"] = {"timeout_seconds": 1}
    config_files.write()
    daemon = start_daemon(config_files)
    body = json.dumps(NOTIFICATION).encode()
    headers = _signed(config_files.webhook_secrets[0], body, message_id="msg_locked_1")
    with psycopg.connect(config_files.dsn) as locker:
        locker.execute("LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        status, answer = http_post(daemon.base_url + "/webhooks/notification", body, headers)
        waited = time.monotonic() - started
        assert status == 503 and json.loads(answer)["error"] == "database_unavailable", (status, answer)
        assert 0.9 <= waited < 3, waited
    # The lock is gone (the connection closed): the retry is answered, and one notification is stored.
    status, answer = http_post(daemon.base_url + "/webhooks/notification", body, headers)
    assert status in (200, 202), (status, answer)
    assert _count(config_files.dsn) == 1
    assert http_post(daemon.base_url + "/webhooks/notification", body, headers)[0] == 200
    assert "Traceback" not in daemon.log()

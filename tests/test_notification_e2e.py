"""Signed notifications through the running daemon: accepted, stored once, rejected when forged."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import aiohttp
import psycopg
from standardwebhooks.webhooks import Webhook

from telepayd.security.webhook_signature import sign

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

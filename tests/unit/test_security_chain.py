"""The security chain in process (aiohttp_client): the order of the checks for each kind of caller, and
what every answer carries. The views are stand-ins: what is tested is what runs before them."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from telepayd.app_keys import runtime_key
from telepayd.config import load
from telepayd.guard import Caller, add_routes
from telepayd.runtime import Runtime
from telepayd.security.headers import SECURITY_HEADERS
from telepayd.security.webhook_signature import sign
from tools.local_config import TELEGRAM_SECRET_TOKEN, ConfigFiles

ALLOWED, STRANGER = "10.0.0.5", "192.0.2.1"


async def reached(request: web.Request) -> web.Response:
    return web.json_response({"reached": request.path})


@pytest.fixture
async def client(tmp_path, aiohttp_client):
    files = ConfigFiles(tmp_path, "postgresql://nobody@127.0.0.1/none", settings={
        "server": {"trusted_proxies": ["127.0.0.1/32"], "max_body_bytes": 1024, "status_allowed_ips": [f"{ALLOWED}/32"]},
        "webhooks": {"allowed_ips": ["10.0.0.0/8"]},
        "webhooks.rate_limit": {"per_minute": 1, "burst": 3, "max_clients": 100},
        "telegram.rate_limit": {"per_minute": 1, "burst": 2},
        "nowpayments.rate_limit": {"per_minute": 1, "burst": 2},
    })
    config = load(files.write())
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[runtime_key] = Runtime(config)
    add_routes(app, [
        ("GET", "/health", "health", Caller.ANYONE, reached),
        ("GET", "/status", "status", Caller.OPERATOR, reached),
        ("POST", "/webhooks/notification", "notification", Caller.CLOUD_RUN, reached),
        ("POST", "/webhooks/nowpayments", "nowpayments", Caller.NOWPAYMENTS, reached),
        ("POST", "/telegram", "telegram", Caller.TELEGRAM, reached),
    ])
    test_client = await aiohttp_client(app)
    test_client.secret = files.webhook_secrets[0]
    return test_client


async def post(client, path: str, *, client_ip: str, body: bytes = b"{}", content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> tuple[int, dict]:
    response = await client.post(path, data=body, headers={"X-Forwarded-For": client_ip, "Content-Type": content_type, **(headers or {})})
    return response.status, await response.json()


async def test_cloud_run_checks_run_in_order(client):
    big = b"{" + b" " * 2000 + b"}"
    # Each request fails every check from the named one on; the first failing check answers.
    assert (await post(client, "/webhooks/notification", client_ip="not-an-ip", body=big, content_type="text/plain"))[0] == 400
    assert (await post(client, "/webhooks/notification", client_ip=STRANGER, body=big, content_type="text/plain"))[1]["error"] == "forbidden"
    assert (await post(client, "/webhooks/notification", client_ip=ALLOWED, body=big, content_type="text/plain"))[0] == 413
    assert (await post(client, "/webhooks/notification", client_ip=ALLOWED, content_type="text/plain"))[0] == 415
    assert (await post(client, "/webhooks/notification", client_ip=ALLOWED))[1]["error"] == "missing_signature_headers"
    # The burst of 3 is spent: now the rate limit answers before the body is even looked at.
    status, answer = await post(client, "/webhooks/notification", client_ip=ALLOWED, body=big, content_type="text/plain")
    assert status == 429 and answer["error"] == "rate_limited"
    # Another address has its own bucket, and a good request reaches the view.
    headers = sign(client.secret, b"{}").as_dict()
    assert await post(client, "/webhooks/notification", client_ip="10.0.0.6", headers=headers) == (200, {"reached": "/webhooks/notification"})


async def test_nowpayments_and_telegram_have_their_own_buckets_before_their_checks(client):
    for path in ("/webhooks/nowpayments", "/telegram"):
        answers = [await post(client, path, client_ip=STRANGER, content_type="text/plain") for _ in range(3)]
        assert [status for status, _ in answers] == [415, 415, 429], path
    assert (await post(client, "/telegram", client_ip="192.0.2.9"))[1]["error"] == "missing_secret_token"
    good = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET_TOKEN}
    assert (await post(client, "/telegram", client_ip="192.0.2.9", headers=good))[0] == 200
    assert (await post(client, "/webhooks/nowpayments", client_ip="192.0.2.10"))[0] == 200  # the view checks the signature


async def test_operator_routes_and_unknown_paths(client):
    assert (await client.get("/status", headers={"X-Forwarded-For": STRANGER})).status == 403
    assert (await client.get("/status", headers={"X-Forwarded-For": ALLOWED})).status == 200
    missing = await client.get("/nothing")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    wrong = await client.delete("/webhooks/notification")
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST" and (await wrong.json())["error"] == "method_not_allowed"


async def test_every_answer_carries_the_security_headers_and_a_request_id(client):
    for response in (await client.get("/health"), await client.get("/nothing"),
                     await client.post("/webhooks/notification", data=b"{}", headers={"X-Request-ID": "caller-id.1"})):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        assert response.headers["X-Request-ID"]
        json.loads(await response.text())
    assert response.headers["X-Request-ID"] == "caller-id.1"

"""A no-op POST route served plain or behind telepayd's security chain (for ``bench.http``)."""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from telepayd.app_keys import runtime_key
from telepayd.config import load
from telepayd.guard import Caller, add_routes
from telepayd.runtime import Runtime
from telepayd.security.webhook_signature import WebhookVerifier


async def noop(request: web.Request) -> web.Response:
    """Reads the body and answers, like a handler that stores nothing."""
    await request.read()
    return web.json_response({"status": "ok"})


def build(mode: str, config_path: Path) -> web.Application:
    if mode == "plain":
        app = web.Application()
        app.router.add_post("/noop", noop)
        return app
    config = load(config_path)
    if mode == "signature-only":
        # The floor: the plain route plus nothing but the Standard Webhooks check, which no chain can skip.
        verifier = WebhookVerifier.from_secrets(config.webhooks.secrets)

        async def signature_only(request: web.Request) -> web.Response:
            verifier.verify(request.headers, await request.read())
            return await noop(request)

        app = web.Application()
        app.router.add_post("/noop", signature_only)
        return app
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[runtime_key] = Runtime(config)
    # "answers": request id, security headers, counters and JSON errors only (what every route gets);
    # "secured": the whole Cloud Run chain: client address, allowlist, rate limit, body size, content
    # type and the Standard Webhooks signature on top.
    caller = Caller.ANYONE if mode == "answers" else Caller.CLOUD_RUN
    add_routes(app, [("POST", "/noop", "noop", caller, noop)])
    return app


if __name__ == "__main__":
    mode, port, config_path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    web.run_app(build(mode, config_path), host="127.0.0.1", port=port, access_log=None, print=None)

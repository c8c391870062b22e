"""Both emulators in one process: ``python -m tests.emulators.server PORT``.

Control endpoints under ``/_emulator/`` let tests read recorded calls, inject failures and send IPNs;
``POST /_emulator/reset`` forgets everything.
"""

from __future__ import annotations

import sys
import warnings

from aiohttp import web

from tests.emulators import nowpayments_api, telegram_api


async def reset(request: web.Request) -> web.Response:
    request.app["telegram"].__init__()
    request.app["nowpayments"].__init__()
    return web.json_response({"ok": True})


def build() -> web.Application:
    warnings.simplefilter("ignore", web.NotAppKeyWarning)  # a test tool: string keys keep it short
    app = web.Application()
    telegram_api.add_routes(app)
    nowpayments_api.add_routes(app)
    app.router.add_post("/_emulator/reset", reset)
    return app


if __name__ == "__main__":
    web.run_app(build(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)

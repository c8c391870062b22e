"""The HTTP routes. Domain errors become HTTP answers here, at the view boundary."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from . import __version__
from psycopg_pool import PoolTimeout

from .app_keys import (
    body_key, bot_key, committer_key, database_key, exporter_key, outbox_key, runtime_key, supervisor_key, sweeper_key, webhook_id_key,
)
from .bot import BotBusy
from .errors import StoreUnavailable
from .http_errors import RETRY_AFTER_SECONDS, ApiError, database_unavailable
from .ingest import UnstorableMessage
from .metrics import CONTENT_TYPE
from .payments import InvalidIpn, apply_ipn, parse_ipn
from .security.errors import SignatureError
from .security.ipn_signature import SIGNATURE_HEADER, verify_ipn
from .security.strict_json import JSONBodyError, parse_json_object
from .store.pool import UNAVAILABLE_ERRORS
from .store.webhook_messages import Incoming, IncomingBroadcast, IncomingNotification
from .webhook_schemas import validate_broadcast, validate_notification

logger = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    """Liveness: the process runs."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when the database answers, the bot is initialised and no background task is down; else
    503 naming (only naming) what is down."""
    database, bot = request.app[database_key], request.app[bot_key]
    problems = list(request.app[supervisor_key].down)
    if not await database.ping():
        problems.append("database")
    if not bot.ready:
        problems.append("telegram")
    if not problems:
        return web.json_response({"status": "ready"})
    # The reasons stay in /status and the logs: anyone may probe /ready.
    return web.json_response(
        {
            "status": "unavailable",
            "error": "not_ready",
            "detail": f"Not ready: {', '.join(sorted(problems))} down; see /status or the logs.",
            "down": sorted(problems),
        },
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def status(request: web.Request) -> web.Response:
    """Operator's view: version, uptime, counters, pool stats."""
    runtime = request.app[runtime_key]
    database = request.app[database_key]
    committer = request.app[committer_key]
    metrics = runtime.metrics
    # The database's figures as /metrics read them last (at most every 5 s whoever asks, in the background:
    # polling /status neither counts nor waits for a count of big tables); null while the database is down.
    figures = await request.app[exporter_key].latest_figures()
    outbox_depth = sum(figures.outbox_pending.values()) if figures else None
    anomaly_counts = dict(sorted(figures.anomalies.items())) if figures else None
    requests: dict[str, dict[str, int]] = {}
    for (route, code), count in sorted(metrics.requests.items()):
        requests.setdefault(route, {})[str(code)] = count
    return web.json_response(
        {
            "version": __version__,
            "uptime_seconds": round(metrics.uptime_seconds(), 1),
            "database": {"ready": database.schema_ready and not database.problem, "problem": database.problem},
            "requests": requests,
            "rejections": dict(sorted(metrics.rejections.items())),
            "ingest": {"queued": committer.depth, "batches": committer.batches, "messages": committer.messages},
            "pool": database.pool.get_stats(),
            "telegram": {"ready": request.app[bot_key].ready, "problem": request.app[bot_key].problem},
            "outbox": {"pending": outbox_depth, "leader": request.app[outbox_key].leader,
                       "sent": request.app[outbox_key].sent, "failed": request.app[outbox_key].failed},
            "anomalies": anomaly_counts,
            "reloads": {"ok": metrics.reloads, "failed": metrics.failed_reloads, "last_error": runtime.last_reload_error},
            "tasks": {"down": request.app[supervisor_key].down, "restarts": request.app[supervisor_key].restarts},
            "errors": dict(sorted(metrics.errors.items())),
            "bot_pool": database.bot_pool.get_stats(),
            "restart_needed_for": runtime.restart_pending,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format (telepayd/metrics.py); 404 when ``[server] metrics = false``."""
    # Both: the setting now, and what the daemon started with (it counts only then; a reload to true
    # needs a restart, and says so).
    runtime = request.app[runtime_key]
    if not runtime.config.server.metrics or not runtime.metrics.instruments.enabled:
        raise ApiError(404, "metrics_off", "Metrics are switched off ([server] metrics = false).")
    body = await request.app[exporter_key].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        return parse_json_object(request[body_key])
    except JSONBodyError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None


async def _store(request: web.Request, message: Incoming, kind: str) -> web.Response:
    try:
        fresh = await request.app[committer_key].submit(message)
    except StoreUnavailable as exc:
        logger.warning("could not store %s: %s", message.webhook_id, exc)
        raise database_unavailable() from None
    except UnstorableMessage:
        raise ApiError(422, "unstorable_body", "The database refused the body's content.") from None
    request.app[runtime_key].metrics.instruments.webhook_message(kind.split()[0], fresh)
    if fresh:
        logger.info("stored %s %s", kind, message.webhook_id)
        request.app[outbox_key].wake(urgent=False)  # an owner's notification: in turn
        return _stored_answer(202, "accepted", message.webhook_id)
    logger.info("duplicate %s %s acknowledged, nothing written", kind, message.webhook_id)
    return _stored_answer(200, "duplicate", message.webhook_id)


def _stored_answer(code: int, status: str, webhook_id: str) -> web.Response:
    """``{"status": status, "id": webhook_id}`` exactly as ``web.json_response`` writes it, in half its time
    (it is every signed webhook's answer)."""
    body = f'{{"status": "{status}", "id": {json.dumps(webhook_id)}}}'.encode()
    return web.Response(body=body, status=code, content_type="application/json", charset="utf-8")


async def post_notification(request: web.Request) -> web.Response:
    """A payment notification for a channel owner, stored before the 202."""
    document = _json_body(request)
    validate_notification(document, request[body_key])
    body_text = request[body_key].decode("utf-8")
    return await _store(request, IncomingNotification(request[webhook_id_key], body_text), "notification")


async def post_broadcast(request: web.Request) -> web.Response:
    """A broadcast trigger (all channels, or the listed ones), stored as a job before the 202."""
    channels = validate_broadcast(_json_body(request))
    response = await _store(request, IncomingBroadcast(request[webhook_id_key], channels), "broadcast job")
    request.app[sweeper_key].nudge()
    return response


async def post_nowpayments(request: web.Request) -> web.Response:
    """A NowPayments IPN: parsed (400), signature-checked (401), stored and applied in one transaction (200)."""
    body = request[body_key]
    runtime = request.app[runtime_key]
    try:
        verify_ipn(body, request.headers.get(SIGNATURE_HEADER), runtime.guards.ipn_secrets)
        ipn = parse_ipn(parse_json_object(body))
    except JSONBodyError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    except SignatureError as exc:
        raise ApiError(401, exc.reason, exc.detail) from None
    except InvalidIpn as exc:
        raise ApiError(422, "invalid_field", str(exc)) from None
    pool = request.app[database_key].pool
    started = time.perf_counter()
    try:
        async with pool.connection(timeout=2.5) as conn:  # NowPayments wants an answer within 3 s
            async with conn.transaction():
                outcome = await apply_ipn(conn, ipn, body.decode("utf-8"), runtime.config)
    except (PoolTimeout, *UNAVAILABLE_ERRORS) as exc:
        logger.warning("IPN %s/%s not applied, database unavailable: %s", ipn.payment_id, ipn.payment_status, exc)
        raise database_unavailable() from None
    runtime.metrics.instruments.ipn(ipn.payment_status, outcome, time.perf_counter() - started)
    logger.info("IPN payment %s order %s status %s: %s", ipn.payment_id, ipn.order_id, ipn.payment_status, outcome)
    request.app[outbox_key].wake()
    return web.json_response({"status": "ok", "outcome": outcome})


async def post_telegram(request: web.Request) -> web.Response:
    """A Telegram update: queued in memory for the bot (chat, not money), 200 once queued."""
    bot = request.app[bot_key]
    if not bot.ready:
        raise ApiError(503, "bot_unavailable", "The bot is not initialised yet; retry later.",
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    try:
        await bot.feed(parse_json_object(request[body_key], decimals=False))
    except BotBusy:
        raise ApiError(503, "bot_busy", "Too many updates are waiting; deliver this one again later.",
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    except JSONBodyError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_update", str(exc)) from None
    return web.json_response({"status": "queued"})

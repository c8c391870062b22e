"""The HTTP routes. Domain errors become HTTP answers here, at the view boundary."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from . import __version__
from .app_keys import body_key, committer_key, database_key, runtime_key, webhook_id_key
from .errors import StoreUnavailable
from .http_errors import RETRY_AFTER_SECONDS, ApiError, database_unavailable
from .ingest import UnstorableMessage
from .security.strict_json import JSONBodyError, parse_json_object
from .store.webhook_messages import Incoming, IncomingBroadcast, IncomingNotification
from .webhook_schemas import validate_broadcast, validate_notification

logger = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    """Liveness: the process runs."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when the database answers, else 503 naming what is down."""
    database = request.app[database_key]
    if await database.ping():
        return web.json_response({"status": "ready"})
    return web.json_response(
        {
            "status": "unavailable",
            "error": "not_ready",
            "detail": f"database: {database.problem}.",
            "down": ["database"],
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
            "reloads": {"ok": metrics.reloads, "failed": metrics.failed_reloads, "last_error": runtime.last_reload_error},
            "restart_needed_for": runtime.restart_pending,
        }
    )


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
    if fresh:
        logger.info("stored %s %s", kind, message.webhook_id)
        return web.json_response({"status": "accepted", "id": message.webhook_id}, status=202)
    logger.info("duplicate %s %s acknowledged, nothing written", kind, message.webhook_id)
    return web.json_response({"status": "duplicate", "id": message.webhook_id}, status=200)


async def post_notification(request: web.Request) -> web.Response:
    """A payment notification for a channel owner, stored before the 202."""
    document = _json_body(request)
    validate_notification(document)
    body_text = request[body_key].decode("utf-8")
    return await _store(request, IncomingNotification(request[webhook_id_key], body_text), "notification")


async def post_broadcast(request: web.Request) -> web.Response:
    """A broadcast trigger (all channels, or the listed ones), stored as a job before the 202."""
    channels = validate_broadcast(_json_body(request))
    return await _store(request, IncomingBroadcast(request[webhook_id_key], channels), "broadcast job")

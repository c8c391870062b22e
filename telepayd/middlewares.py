"""aiohttp glue between requests and the stdlib security core, in the order of DESIGN.md:

context (request id, headers, errors) → allowlist (403) → rate limit (429) → body size (413) →
content type (415) → signature (401); the views then parse JSON (400) and check the schema (422).
Which checks a route gets depends on who calls it (``ROUTE_CALLERS``); public routes get none.
"""

from __future__ import annotations

import enum
import logging
import math

from aiohttp import web
from aiohttp.typedefs import Handler

from .app_keys import body_key, client_key, request_id_key, runtime_key, webhook_id_key
from .http_errors import ApiError
from .logs import request_id_var
from .security.client_address import Networks, client_address, rate_limit_key
from .security.errors import SecurityError
from .security.headers import SECURITY_HEADERS, request_id

logger = logging.getLogger(__name__)


class Caller(enum.Enum):
    """Who may call a route, which decides the checks it gets."""

    OPERATOR = "operator"  # status_allowed_ips
    CLOUD_RUN = "cloud_run"  # webhooks.allowed_ips, rate limit, Standard Webhooks signature


ROUTE_CALLERS: dict[str, Caller] = {
    "status": Caller.OPERATOR,
    "notification": Caller.CLOUD_RUN,
    "broadcast": Caller.CLOUD_RUN,
}


def _caller(request: web.Request) -> Caller | None:
    return ROUTE_CALLERS.get(request.match_info.route.name or "")


def _route_label(request: web.Request) -> str:
    return request.match_info.route.name or "unmatched"


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, security headers, JSON errors and counters for every answer; never a traceback."""
    rid = request_id(request.headers.get("X-Request-ID"), request.headers.get("X-Correlation-ID"))
    token = request_id_var.set(rid)
    request[request_id_key] = rid
    runtime = request.app[runtime_key]
    try:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
            runtime.metrics.rejections[exc.error] += 1
            level = logging.WARNING if exc.status in (401, 403) else logging.INFO
            logger.log(level, "%s %s -> %d %s (%s)", request.method, request.path, exc.status, exc.error,
                       request.get(client_key, request.remote))
        except web.HTTPException as exc:
            # The router's 404/405 and aiohttp's own 413 become our JSON errors.
            error = _HTTP_ERROR_CODES.get(exc.status, "http_error")
            response = web.json_response({"error": error, "detail": exc.reason + "."}, status=exc.status)
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            runtime.metrics.rejections[error] += 1
        except Exception:
            logger.exception("unhandled error on %s %s", request.method, request.path)
            response = web.json_response(
                {"error": "internal_error", "detail": f"An internal error occurred; quote request id {rid}."}, status=500
            )
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Request-ID"] = rid
        runtime.metrics.requests[(_route_label(request), response.status)] += 1
        return response
    finally:
        request_id_var.reset(token)


_HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _require_allowed(client: object, allowed: Networks, who: str) -> None:
    if client not in allowed:
        raise ApiError(403, "forbidden", f"This address is not allowed to call {who}.")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Client address through trusted proxies only, then the caller's allowlist and rate limit."""
    caller = _caller(request)
    if caller is None:
        return await handler(request)
    guards = request.app[runtime_key].guards
    try:
        client = client_address(
            _socket_peer(request), request.headers.getall("X-Forwarded-For", []), guards.trusted_proxies
        )
    except SecurityError as exc:
        raise ApiError(400, exc.reason, exc.detail) from None
    request[client_key] = client
    if caller is Caller.OPERATOR:
        _require_allowed(client, guards.status_allowed_ips, "this route")
    else:
        _require_allowed(client, guards.webhook_allowed_ips, "the webhooks")
        wait = guards.webhook_limiter.acquire(rate_limit_key(client))
        if wait:
            raise ApiError(
                429, "rate_limited", "Too many requests; retry after the delay in Retry-After.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    return await handler(request)


def _socket_peer(request: web.Request) -> str | None:
    """The TCP peer's address, or None on a unix socket (where the peer is the local proxy)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return None


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed routes: bounded body (413) and JSON content type (415), read once for the signature."""
    if _caller(request) is not Caller.CLOUD_RUN:
        return await handler(request)
    limit = request.app[runtime_key].config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.") from None
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "The body must be sent as Content-Type: application/json.")
    request[body_key] = body
    return await handler(request)


@web.middleware
async def signature_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed routes: Standard Webhooks v1 against every accepted secret (401 with the reason)."""
    if _caller(request) is not Caller.CLOUD_RUN:
        return await handler(request)
    verifier = request.app[runtime_key].guards.webhook_verifier
    try:
        request[webhook_id_key] = verifier.verify(request.headers, request[body_key])
    except SecurityError as exc:
        raise ApiError(401, exc.reason, exc.detail) from None
    return await handler(request)


MIDDLEWARES = (context_middleware, access_middleware, body_middleware, signature_middleware)

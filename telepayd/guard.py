"""The security chain between aiohttp and the views, composed per route when the route is registered.

Every answer gets a request id, the security headers and JSON errors, and never a traceback. Routes called
by someone in particular then get, in the order of docs/DESIGN.md: client address through trusted proxies only
(400) → allowlist (403) → rate limit (429) → body size (413) → content type (415) → signature (401); the
views parse JSON (400) and check the schema (422). Each caller has one check function, picked when the
route is registered, so a request runs its chain top to bottom without asking who it is for.

Why not aiohttp middlewares: an application with even one pass-through middleware serves a no-op route
about 13% slower than one without (measured with ``bench/``), which alone would eat most of the chain's
budget (0.85 of a bare route's throughput). Wrapping each route's view costs next to nothing and keeps the
same order; the catch-all route gives unknown paths and methods the same JSON answers."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import math
import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .app_keys import body_key, client_key, runtime_key, webhook_id_key
from .http_errors import ApiError
from .logs import request_id_var
from .runtime import Guards, Metrics, Runtime
from .security.client_address import IPAddress, Networks, client_address, rate_limit_key
from .security.errors import SecurityError
from .security.headers import SECURITY_HEADERS, request_id
from .security.rate_limit import RateLimiter
from .security.telegram_token import SECRET_TOKEN_HEADER, verify_secret_token

logger = logging.getLogger(__name__)

View = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Caller(enum.Enum):
    """Who may call a route, which decides the checks it gets."""

    ANYONE = "anyone"  # health and readiness probes
    OPERATOR = "operator"  # status_allowed_ips
    CLOUD_RUN = "cloud_run"  # webhooks.allowed_ips, rate limit, body, Standard Webhooks signature
    TELEGRAM = "telegram"  # optional telegram.allowed_ips, body, secret token
    NOWPAYMENTS = "nowpayments"  # optional nowpayments.allowed_ips, body (the view checks the signature)


_JSON_TYPES = frozenset({"application/json"})
_SECURITY_HEADERS = CIMultiDict(SECURITY_HEADERS)  # extends a response's headers faster than a dict
# Request ids for callers that send none: unique per process, cheap (no system call per request).
_id_prefix = os.urandom(4).hex()
_id_counter = itertools.count(1)


def _new_request_id(headers: CIMultiDictProxy[str]) -> str:
    offered = headers.get("X-Request-ID")
    correlation = headers.get("X-Correlation-ID") if offered is None else None
    if offered or correlation:
        return request_id(offered, correlation)
    return f"{_id_prefix}{next(_id_counter):08x}"


def guarded(caller: Caller, label: str, view: View, runtime: Runtime) -> View:
    """Wrap ``view`` in the checks for ``caller``; ``label`` names the route in ``/status``."""
    check = _CHECKS[caller]
    metrics = runtime.metrics

    async def handle(request: web.Request) -> web.StreamResponse:
        rid = _new_request_id(request.headers)
        token = request_id_var.set(rid)
        try:
            try:
                if check is not None:
                    await check(request, runtime.guards, runtime.config.server.max_body_bytes)
                response = await view(request)
            except ApiError as exc:
                response = _rejected(request, exc, metrics)
            except web.HTTPException as exc:
                response = _http_error(exc, metrics)
            except ConnectionResetError:
                # The client went away mid-request: nothing wrong on our side, and nobody to read the answer.
                logger.debug("client left during %s %s", request.method, request.path)
                metrics.rejections["client_closed"] += 1
                response = web.json_response({"error": "client_closed", "detail": "The client closed the connection."}, status=400)
            except Exception as exc:
                runtime.metrics.log_error(logger, f"{request.method} {label}", exc, then=f"request id {rid}")
                response = web.json_response(
                    {"error": "internal_error", "detail": f"An internal error occurred; quote request id {rid}."},
                    status=500,
                )
            headers = response.headers
            headers.extend(_SECURITY_HEADERS)
            headers["X-Request-ID"] = rid
            metrics.requests[(label, response.status)] += 1
            return response
        finally:
            request_id_var.reset(token)

    handle.__name__ = handle.__qualname__ = f"guarded_{view.__name__}"
    handle.__doc__ = view.__doc__
    return handle


# One check function per caller, chosen when the route is registered (no branching per request).
Check = Callable[[web.Request, Guards, int], Awaitable[None]]


async def _check_operator(request: web.Request, guards: Guards, max_body_bytes: int) -> None:
    _require_allowed(_client(request, guards.trusted_proxies), guards.status_allowed_ips, "this route")


async def _check_cloud_run(request: web.Request, guards: Guards, max_body_bytes: int) -> None:
    client = _client(request, guards.trusted_proxies)
    _require_allowed(client, guards.webhook_allowed_ips, "the webhooks")
    _require_within_rate(client, guards.webhook_limiter)
    body = await _read_body(request, max_body_bytes)
    try:
        request[webhook_id_key] = guards.webhook_verifier.verify(request.headers, body)
    except SecurityError as exc:
        raise ApiError(401, exc.reason, exc.detail) from None


async def _check_telegram(request: web.Request, guards: Guards, max_body_bytes: int) -> None:
    client = _client(request, guards.trusted_proxies)
    if guards.telegram_allowed_ips:  # optional: an empty list means no IP check here
        _require_allowed(client, guards.telegram_allowed_ips, "this route")
    _require_within_rate(client, guards.telegram_limiter)
    await _read_body(request, max_body_bytes)
    try:
        verify_secret_token(request.headers.get(SECRET_TOKEN_HEADER), guards.telegram_tokens)
    except SecurityError as exc:
        raise ApiError(401, exc.reason, exc.detail) from None


async def _check_nowpayments(request: web.Request, guards: Guards, max_body_bytes: int) -> None:
    client = _client(request, guards.trusted_proxies)
    if guards.nowpayments_allowed_ips:  # optional: the IPN signature (checked by the view) authenticates
        _require_allowed(client, guards.nowpayments_allowed_ips, "this route")
    _require_within_rate(client, guards.nowpayments_limiter)
    await _read_body(request, max_body_bytes)


_CHECKS: dict[Caller, Check | None] = {
    Caller.ANYONE: None,
    Caller.OPERATOR: _check_operator,
    Caller.CLOUD_RUN: _check_cloud_run,
    Caller.TELEGRAM: _check_telegram,
    Caller.NOWPAYMENTS: _check_nowpayments,
}


def _client(request: web.Request, trusted_proxies: Networks) -> IPAddress:
    # On a unix socket aiohttp has no peer address (empty): the peer is then the local proxy.
    peer = request.remote or None
    try:
        client = client_address(peer, request.headers.getall("X-Forwarded-For", ()), trusted_proxies)
    except SecurityError as exc:
        raise ApiError(400, exc.reason, exc.detail) from None
    request[client_key] = client
    return client


def _require_allowed(client: object, allowed: Networks, who: str) -> None:
    if client not in allowed:
        raise ApiError(403, "forbidden", f"This address is not allowed to call {who}.")


def _require_within_rate(client: IPAddress, limiter: RateLimiter) -> None:
    wait = limiter.acquire(rate_limit_key(client))
    if wait:
        raise ApiError(
            429, "rate_limited", "Too many requests; retry after the delay in Retry-After.",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.")
    seconds = request.app[runtime_key].config.server.body_timeout_seconds
    try:
        if request.content.is_eof():  # the whole body is here already (the usual case): no timer needed
            body = await request.read()  # bounded by the application's client_max_size (= limit)
        else:
            async with asyncio.timeout(seconds):  # a client trickling its body holds no connection for long
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.") from None
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"The body did not arrive within {seconds:g} seconds.") from None
    content_type = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise ApiError(415, "unsupported_media_type", "The body must be sent as Content-Type: application/json.")
    request[body_key] = body
    return body


def _rejected(request: web.Request, exc: ApiError, metrics: Metrics) -> web.Response:
    metrics.rejections[exc.error] += 1
    left_out = metrics.rejection_log.take(exc.error)
    if left_out is not None:
        level = logging.WARNING if exc.status in (401, 403) else logging.INFO
        more = f"; {left_out} more like it not logged (see /status)" if left_out else ""
        logger.log(level, "%s %s -> %d %s (client %s)%s", request.method, request.path, exc.status, exc.error,
                   request.get(client_key, request.remote), more)
    return exc.response()


_HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _http_error(exc: web.HTTPException, metrics: Metrics) -> web.Response:
    error = _HTTP_ERROR_CODES.get(exc.status, "http_error")
    metrics.rejections[error] += 1
    response = web.json_response({"error": error, "detail": f"{exc.reason}."}, status=exc.status)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def add_routes(app: web.Application, routes: list[tuple[str, str, str, Caller, View]]) -> None:
    """Register ``(method, path, label, caller, view)`` routes, then the catch-all for 404 and 405."""
    runtime = app[runtime_key]
    allowed: dict[str, set[str]] = {}
    for method, path, label, caller, view in routes:
        handler = guarded(caller, label, view, runtime)
        app.router.add_route(method, path, handler, name=label)
        allowed.setdefault(path, set()).add(method)
        if method == "GET":
            app.router.add_route("HEAD", path, handler)
            allowed[path].add("HEAD")

    async def not_routed(request: web.Request) -> web.Response:
        """No route: 405 naming the allowed methods for a known path, else 404."""
        methods = allowed.get(request.path)
        if methods:
            raise web.HTTPMethodNotAllowed(request.method, sorted(methods))
        raise web.HTTPNotFound()

    app.router.add_route("*", "/{tail:.*}", guarded(Caller.ANYONE, "unrouted", not_routed, runtime), name="unrouted")

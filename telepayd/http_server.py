"""The HTTP server with a guard on its connections: how many may be open, how long request headers may take.

aiohttp closes a connection left idle for ``keepalive_timeout``, but has no deadline for reading request
headers and no bound on connections: a thousand clients trickling bytes used up the file descriptors and
``/health`` stopped answering. Here a connection must deliver complete request headers within ``[server]
header_timeout_seconds`` of opening, or of sending the first byte of its next request when kept alive; a
connection beyond ``[server] max_connections`` is closed as soon as it is accepted. (The deadline for the
body, 408, is in ``guard._read_body``.) The limits are read per connection, so a reload applies them to new
connections.

What this relies on in aiohttp (pinned by tests/test_slow_clients.py): ``AppRunner._make_server()`` builds
the ``web.Server`` its sites call as their protocol factory; a ``RequestHandler`` calls its server's
``request_factory`` when it starts on a request, and ``log_access()`` once it has answered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .runtime import Runtime

logger = logging.getLogger(__name__)

TOO_MANY_CONNECTIONS = "too_many_connections"  # reasons counted in GET /status "rejections"
TOO_MANY_FROM_ADDRESS = "too_many_connections_from_address"
HEADER_TIMEOUT = "header_timeout"
# Descriptors beyond the HTTP connections: the database pool, outgoing HTTPS, the journal, the listener.
OTHER_DESCRIPTORS = 256


class GuardedAppRunner(web.AppRunner):
    """An ``AppRunner`` whose sites (TCP or unix socket) serve through a ``GuardedServer``."""

    __slots__ = ("_runtime",)

    def __init__(self, app: web.Application, runtime: Runtime, *, shutdown_timeout: float) -> None:
        super().__init__(app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout)
        self._runtime = runtime

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the application, then makes aiohttp's own server
        _warn_if_few_descriptors(self._runtime.config.server.max_connections)
        return GuardedServer(plain.request_handler, plain.request_factory, self._runtime)


class GuardedServer(web.Server):
    """The protocol factory: a ``GuardedConnection`` per connection while fewer than the limit are open."""

    def __init__(self, handler: Any, request_factory: Any, runtime: Runtime) -> None:
        self._app_request_factory = request_factory
        super().__init__(handler, request_factory=self._start_request)
        self._runtime = runtime
        self.open_connections = 0
        self._by_address: Counter[str] = Counter()  # open connections per peer address (not the proxies')

    def __call__(self) -> asyncio.Protocol:
        settings = self._runtime.config.server
        if self.open_connections >= settings.max_connections:
            self._count(TOO_MANY_CONNECTIONS, logging.WARNING, "refused a connection: %d are open, the [server] "
                        "max_connections limit", self.open_connections)
            return _Refused()
        self.open_connections += 1
        return GuardedConnection(
            self, loop=asyncio.get_running_loop(), access_log=None,
            keepalive_timeout=settings.keepalive_timeout_seconds, header_timeout=settings.header_timeout_seconds,
        )

    def _start_request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        protocol.request_started()
        return self._app_request_factory(message, payload, protocol, writer, task)

    def connection_closed(self, address: str | None) -> None:
        self.open_connections -= 1
        if address is not None:
            left = self._by_address[address] - 1
            if left > 0:
                self._by_address[address] = left
            else:
                del self._by_address[address]

    def admit(self, peer: object) -> str | None | bool:
        """Whether a new connection from ``peer`` fits its address's share: the address to count it under
        (None for the trusted proxies and the unix socket, which are not limited), or False when it does not."""
        if not isinstance(peer, tuple) or not peer:
            return None
        address = str(peer[0])
        guards = self._runtime.guards
        try:
            if ipaddress.ip_address(address) in guards.trusted_proxies:
                return None
        except ValueError:
            return None
        limit = self._runtime.config.server.max_connections_per_address
        if self._by_address[address] >= limit:
            self._count(TOO_MANY_FROM_ADDRESS, logging.WARNING, "refused a connection from %s: it holds %d, the "
                        "[server] max_connections_per_address limit", address, self._by_address[address])
            return False
        self._by_address[address] += 1
        return address

    def headers_too_slow(self, peer: object, seconds: float) -> None:
        client = peer[0] if isinstance(peer, tuple) else "the unix socket"
        self._count(HEADER_TIMEOUT, logging.INFO, "closed a connection from %s: no complete request headers "
                    "within %g s", client, seconds)

    def _count(self, reason: str, level: int, message: str, *args: object) -> None:
        """Count in GET /status; log within the rejection log budget, saying how many lines were left out."""
        metrics = self._runtime.metrics
        metrics.rejections[reason] += 1
        left_out = metrics.rejection_log.take(reason)
        if left_out is not None:
            more = f"; {left_out} more like it not logged (see /status)" if left_out else ""
            logger.log(level, message + "%s", *args, more)


class GuardedConnection(RequestHandler):
    """aiohttp's connection handler with a deadline for request headers.

    The deadline costs next to nothing per request: starting or stopping it only sets ``_header_deadline``;
    one timer per connection wakes up at most once per ``header_timeout`` and looks at it."""

    __slots__ = ("_guard", "_header_timeout", "_header_deadline", "_header_timer", "_between_requests", "_address")

    def __init__(self, guard: GuardedServer, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(guard, **kwargs)
        self._guard = guard
        self._header_timeout = header_timeout
        self._header_deadline: float | None = None  # when the headers being waited for must be complete
        self._header_timer: asyncio.TimerHandle | None = None
        self._between_requests = True  # no request is being handled: bytes that arrive are headers
        self._address: str | None = None  # counted against its address's share while open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        admitted = self._guard.admit(transport.get_extra_info("peername"))
        if admitted is False:
            self.force_close()
            transport.close()
            return
        self._address = admitted
        self._start_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._between_requests and self._header_deadline is None:
            self._start_header_deadline()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)

    def request_started(self) -> None:
        """Complete headers arrived and their request is being handled (called by the request factory)."""
        self._between_requests = False
        self._header_deadline = None

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, time: float | None) -> None:
        """The request was answered (aiohttp calls this at the end of every answer, access log or not; a
        plain method, cheaper to hook than the coroutine ``finish_response`` around it)."""
        self._between_requests = True
        super().log_access(request, response, time)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._guard.connection_closed(self._address)
        self._address = None
        super().connection_lost(exc)

    def _start_header_deadline(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_deadline = loop.time() + self._header_timeout
        if self._header_timer is None:
            self._header_timer = loop.call_at(self._header_deadline, self._check_header_deadline)

    def _check_header_deadline(self) -> None:
        self._header_timer = None
        deadline = self._header_deadline
        if deadline is None or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:  # met, then a later deadline started: wait for that one
            self._header_timer = loop.call_at(deadline, self._check_header_deadline)
            return
        self._guard.headers_too_slow(self.peername, self._header_timeout)
        self.force_close()


def _warn_if_few_descriptors(max_connections: int) -> None:
    """Say so at start when the process would run out of file descriptors before ``max_connections``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_connections + OTHER_DESCRIPTORS:
        logger.warning("only %d file descriptors are allowed (LimitNOFILE= in the unit, ulimit -n) for [server] "
                       "max_connections = %d plus %d others: raise the limit or lower max_connections",
                       soft, max_connections, OTHER_DESCRIPTORS)


class _Refused(asyncio.Protocol):
    """A connection beyond ``max_connections``: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()

"""Slow and half-open clients against the real daemon: deadlines for headers, bodies and idle connections, and
a bound on open connections that keeps ``/health`` answering."""

from __future__ import annotations

import contextlib
import inspect
import json
import resource
import signal
import socket
import time
import urllib.request

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from telepayd.http_server import GuardedAppRunner, GuardedConnection, GuardedServer, _warn_if_few_descriptors

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def get_status(port: int, path: str = "/health") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read()


def status_once_the_closes_are_seen(port: int, timeout: float = 5.0) -> tuple[int, bytes]:
    """``GET /status`` as soon as the daemon has seen the test's connections close (it takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get_status(port, "/status")
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def read_response(conn: socket.socket) -> tuple[int, bytes]:
    """One HTTP response (status and body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return int(head.split()[1]), body


def closed_within(conn: socket.socket, seconds: float) -> float | None:
    """Seconds until the daemon closed ``conn`` (what it sends is read and dropped), or None if still open."""
    start = time.monotonic()
    while (left := start + seconds - time.monotonic()) > 0:
        conn.settimeout(left)
        try:
            if not conn.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def trickle(conn: socket.socket, byte: bytes, at_most: float) -> tuple[float, bytes]:
    """Send ``byte`` every 0.2 s until the daemon answers or closes; return the seconds taken and the answer."""
    start = time.monotonic()
    while time.monotonic() - start < at_most:
        try:
            conn.sendall(byte)
            conn.settimeout(0.2)
            answer = conn.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, b""
        return time.monotonic() - start, answer
    raise AssertionError(f"still open after {at_most} s of trickling")


def test_a_client_trickling_headers_is_closed_after_header_timeout(config_files, start_daemon):
    config_files.settings = {"server": {"header_timeout_seconds": 1}}  # keep-alive stays at its 15 s default
    config_files.write()
    daemon = start_daemon(config_files)
    port = config_files.port

    with connect(port) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        assert get_status(port)[0] == 200  # the daemon answers others meanwhile
        seconds, answer = trickle(slow, b"X-Slow: y\r\n", at_most=8)
    assert answer == b"" and 0.5 <= seconds <= 3

    # On a kept-alive connection: idle longer than header_timeout is fine (keep-alive's business), but the
    # next request's headers must arrive within header_timeout of its first byte.
    with connect(port) as kept:
        kept.sendall(HEALTH)
        assert read_response(kept)[0] == 200
        time.sleep(1.5)
        kept.sendall(HEALTH)
        assert read_response(kept)[0] == 200
        kept.sendall(b"GET /health HTTP/1.1\r\n")
        seconds, answer = trickle(kept, b"X-Slow: y\r\n", at_most=8)
    assert answer == b"" and seconds <= 3

    status = json.loads(get_status(port, "/status")[1])
    assert status["rejections"]["header_timeout"] == 2
    assert "no complete request headers within 1 s" in daemon.log()


def test_a_client_trickling_its_body_gets_a_408(config_files, start_daemon):
    config_files.settings = {"server": {"body_timeout_seconds": 1}}
    config_files.write()
    start_daemon(config_files)
    with connect(config_files.port) as conn:
        conn.sendall(b"POST /webhooks/nowpayments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        seconds, answer = trickle(conn, b" ", at_most=8)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert 0.5 <= seconds <= 3
    assert json.loads(body) == {"error": "request_timeout", "detail": "The body did not arrive within 1 seconds."}


def test_connections_beyond_max_connections_are_closed_at_once(config_files, start_daemon):
    config_files.settings = {"server": {"max_connections": 16, "header_timeout_seconds": 60, "keepalive_timeout_seconds": 60}}
    config_files.write()
    daemon = start_daemon(config_files)
    port = config_files.port
    with contextlib.ExitStack() as sockets:
        held = [sockets.enter_context(connect(port)) for _ in range(16)]
        for conn in held:  # each accepted and kept alive
            conn.sendall(HEALTH)
            assert read_response(conn)[0] == 200
        extra = [sockets.enter_context(connect(port)) for _ in range(40)]
        assert all(closed_within(conn, 3) is not None for conn in extra)
        held[0].sendall(HEALTH)  # the ones within the bound still work
        assert read_response(held[0])[0] == 200
    status, body = status_once_the_closes_are_seen(port)
    assert status == 200 and get_status(port)[0] == 200
    assert json.loads(body)["rejections"]["too_many_connections"] >= 40
    logged = daemon.log().count("refused a connection: 16 are open")
    assert 1 <= logged < 40  # within the log budget, not one line per connection
    assert "more like it not logged" in daemon.log() or logged <= 21


def test_one_address_cannot_take_every_connection(config_files, start_daemon):
    config_files.settings = {"server": {"max_connections": 64, "max_connections_per_address": 5,
                                        "header_timeout_seconds": 60, "keepalive_timeout_seconds": 60}}
    config_files.write()
    start_daemon(config_files)
    port = config_files.port
    with contextlib.ExitStack() as sockets:
        held = [sockets.enter_context(connect(port)) for _ in range(5)]
        for conn in held:
            conn.sendall(HEALTH)
            assert read_response(conn)[0] == 200
        extra = [sockets.enter_context(connect(port)) for _ in range(10)]
        assert all(closed_within(conn, 3) is not None for conn in extra)  # this address has its share
        other = sockets.enter_context(socket.socket())
        other.settimeout(10)
        other.bind(("127.0.0.2", 0))  # another address is still served
        other.connect(("127.0.0.1", port))
        other.sendall(HEALTH)
        assert read_response(other)[0] == 200
        held[0].sendall(HEALTH)
        assert read_response(held[0])[0] == 200
    status, body = status_once_the_closes_are_seen(port)  # this address is served again
    assert json.loads(body)["rejections"]["too_many_connections_from_address"] >= 10


def test_an_idle_kept_alive_connection_is_closed_after_keepalive_timeout(config_files, start_daemon):
    config_files.settings = {"server": {"keepalive_timeout_seconds": 1}}
    config_files.write()
    daemon = start_daemon(config_files)
    with connect(config_files.port) as conn:
        conn.sendall(HEALTH)
        assert read_response(conn)[0] == 200
        seconds = closed_within(conn, 6)
    assert seconds is not None and seconds <= 3

    # A reload applies a new keep-alive timeout to new connections.
    config_files.settings = {"server": {"keepalive_timeout_seconds": 4}}
    config_files.write()
    mark = len(daemon.notify.messages)
    daemon.send(signal.SIGHUP)
    daemon.notify.wait_for("READY=1", start=mark)
    with connect(config_files.port) as conn:
        conn.sendall(HEALTH)
        assert read_response(conn)[0] == 200
        assert closed_within(conn, 2) is None
        assert closed_within(conn, 6) is not None


def test_the_aiohttp_hooks_the_connection_guard_relies_on():
    """telepayd/http_server.py overrides these; an aiohttp upgrade that changes them must fail here first."""
    overridden = {
        GuardedAppRunner: (web.AppRunner, ["_make_server"]),
        GuardedServer: (web.Server, ["__call__"]),
        GuardedConnection: (RequestHandler, ["connection_made", "data_received", "log_access", "connection_lost"]),
    }
    for subclass, (base, names) in overridden.items():
        for name in names:
            ours, theirs = inspect.signature(getattr(subclass, name)), inspect.signature(getattr(base, name))
            assert list(ours.parameters) == list(theirs.parameters), (subclass, name)
    assert {"request_factory", "loop"} <= set(inspect.signature(web.Server.__init__).parameters)
    assert {"keepalive_timeout", "access_log", "loop"} <= set(inspect.signature(RequestHandler.__init__).parameters)
    # A request starts through the server's request factory; every answer ends in log_access().
    assert "self._request_factory(" in inspect.getsource(RequestHandler.start)
    assert "self.finish_response(" in inspect.getsource(RequestHandler._handle_request)
    assert inspect.getsource(RequestHandler.finish_response).count("self.log_access(") == 2


def test_a_descriptor_limit_below_max_connections_is_warned_about(caplog):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    _warn_if_few_descriptors(soft)
    assert f"only {soft} file descriptors are allowed" in caplog.text
    caplog.clear()
    _warn_if_few_descriptors(16)
    assert caplog.text == ""

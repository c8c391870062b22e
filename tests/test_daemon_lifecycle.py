"""The daemon as systemd sees it: READY, reload on SIGHUP, graceful stop, degraded start, schema guard."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import aiohttp
import psycopg

from telepayd.security.webhook_signature import generate_secret, sign
from tests.harness import ConfigFiles
from tools.local_postgres import LocalPostgres

BODY = json.dumps({"open_channel_id": "-100", "payment_type": "donation", "payment_data": {"amount": "5.00"}}).encode()


def signed(secret: str, message_id: str | None = None) -> dict[str, str]:
    headers = sign(secret, BODY, message_id=message_id).as_dict()
    headers["content-type"] = "application/json"
    return headers


async def post(daemon, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(daemon.base_url + "/webhooks/notification", data=BODY, headers=headers) as response:
            return response.status, await response.json()


async def get(daemon, path: str) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(daemon.base_url + path) as response:
            return response.status, await response.json(), dict(response.headers)


async def test_notify_sequence_and_secret_rotation_through_sighup(config_files, start_daemon):
    daemon = start_daemon(config_files)
    old = config_files.webhook_secrets[0]
    new = generate_secret()
    assert (await post(daemon, signed(new)))[0] == 401

    # Rotation with overlap: both secrets accepted after the reload, without a restart.
    config_files.webhook_secrets = [new, old]
    config_files.write()
    daemon.send(signal.SIGHUP)
    reloading = daemon.notify.wait_for("RELOADING=1")
    assert "MONOTONIC_USEC=" in reloading
    daemon.notify.wait_for("READY=1", start=daemon.notify.messages.index(reloading))
    assert (await post(daemon, signed(new)))[0] == 202
    assert (await post(daemon, signed(old)))[0] == 202

    # The old secret retired.
    config_files.webhook_secrets = [new]
    config_files.write()
    daemon.send(signal.SIGHUP)
    mark = len(daemon.notify.messages)
    daemon.notify.wait_for("RELOADING=1", start=mark)
    daemon.notify.wait_for("READY=1", start=mark)
    assert (await post(daemon, signed(old)))[0] == 401
    assert (await post(daemon, signed(new)))[0] == 202

    pid = daemon.process.pid
    assert daemon.stop() == 0
    assert any("STOPPING=1" in m for m in daemon.notify.messages)
    kinds = [m.split("\n")[0].split("=")[0] for m in daemon.notify.messages]
    assert kinds[:3] == ["READY", "RELOADING", "READY"]
    assert kinds[-1] == "STOPPING"
    assert pid


async def test_invalid_reload_keeps_the_old_config_and_says_so(config_files, start_daemon):
    daemon = start_daemon(config_files)
    secret = config_files.webhook_secrets[0]
    config_files.secret_file("webhook-secrets").write_text("garbage\n")
    mark = len(daemon.notify.messages)
    daemon.send(signal.SIGHUP)
    ready = daemon.notify.wait_for("READY=1", start=mark)
    assert "last reload failed, previous config kept" in ready
    assert (await post(daemon, signed(secret)))[0] == 202
    status, body, _ = await get(daemon, "/status")
    assert body["reloads"]["failed"] == 1
    assert "webhook-secrets" in daemon.log() and "Traceback" not in daemon.log()


async def test_restart_only_settings_are_reported_on_reload(config_files, start_daemon):
    daemon = start_daemon(config_files)
    config_files.settings = {"database": {"max_size": 7}}
    config_files.write()
    mark = len(daemon.notify.messages)
    daemon.send(signal.SIGHUP)
    ready = daemon.notify.wait_for("READY=1", start=mark)
    assert "restart needed for: [database]" in ready


async def test_either_event_loop_serves_reloads_and_stops(config_files, start_daemon):
    """``[server] event_loop``: uvloop by default, the standard library's loop when asked. Either stores a
    notification, reloads on SIGHUP (where a change of loop is reported as needing a restart) and stops
    cleanly; the start line names the loop it runs on."""
    secret = config_files.webhook_secrets[0]
    for loop, other in (("uvloop", "asyncio"), ("asyncio", "uvloop")):
        config_files.settings = {"server": {"event_loop": loop}} if loop == "asyncio" else {}
        config_files.write()
        daemon = start_daemon(config_files)
        assert f"{loop} event loop" in daemon.log()
        assert (await post(daemon, signed(secret, f"on-{loop}")))[0] == 202
        config_files.settings = {"server": {"event_loop": other}}
        config_files.write()
        mark = len(daemon.notify.messages)
        daemon.send(signal.SIGHUP)
        assert "restart needed for: [server] event_loop" in daemon.notify.wait_for("READY=1", start=mark)
        assert (await post(daemon, signed(secret, f"on-{loop}")))[0] == 200  # a duplicate, on the same loop
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.log()


def test_without_uvloop_the_daemon_says_so_and_takes_the_standard_loop(monkeypatch, caplog):
    """The pyz run from inside its zip cannot import uvloop (a compiled module): the standard loop, and a line."""
    from telepayd import daemon

    monkeypatch.setitem(sys.modules, "uvloop", None)  # what a failed import looks like to ``import uvloop``
    assert daemon._loop_factory("uvloop") is None
    assert "cannot be imported here" in caplog.text and "standard library's event loop" in caplog.text
    assert daemon._loop_factory("asyncio") is None
    monkeypatch.delitem(sys.modules, "uvloop")
    import uvloop

    assert daemon._loop_factory("uvloop") is uvloop.new_event_loop


async def test_sigterm_finishes_in_flight_requests(config_files, start_daemon):
    daemon = start_daemon(config_files)
    secret = config_files.webhook_secrets[0]
    tasks = [asyncio.create_task(post(daemon, signed(secret, f"inflight-{n}"))) for n in range(50)]
    await asyncio.sleep(0.05)
    daemon.send(signal.SIGTERM)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    answered = [r for r in results if isinstance(r, tuple)]
    assert daemon.process.wait(20) == 0
    # Every request the daemon answered 202 is stored; none got a 5xx.
    assert all(status in (202, 503) for status, _ in answered) and all(status != 500 for status, _ in answered)
    with psycopg.connect(config_files.dsn) as conn:
        stored = {row[0] for row in conn.execute("SELECT webhook_id FROM notifications")}
    assert {f"inflight-{n}" for n, r in enumerate(results) if isinstance(r, tuple) and r[0] == 202} <= stored


async def test_health_ready_status_and_json_errors(config_files, start_daemon):
    daemon = start_daemon(config_files)
    assert (await get(daemon, "/health"))[:2] == (200, {"status": "ok"})
    assert (await get(daemon, "/ready"))[:2] == (200, {"status": "ready"})
    status, body, headers = await get(daemon, "/status")
    assert status == 200 and body["version"] and body["database"]["ready"] is True
    assert headers["Cache-Control"] == "no-store"
    status, body, headers = await get(daemon, "/nope")
    assert (status, body["error"]) == (404, "not_found") and headers["X-Frame-Options"] == "DENY"
    status, body, _ = await get(daemon, "/webhooks/notification")
    assert (status, body["error"]) == (405, "method_not_allowed")
    async with aiohttp.ClientSession() as session:
        async with session.get(daemon.base_url + "/health", headers={"X-Request-ID": "trace-42"}) as response:
            assert response.headers["X-Request-ID"] == "trace-42"


async def test_status_is_only_for_allowed_addresses(config_files, start_daemon):
    config_files.settings = {"server": {"status_allowed_ips": ["10.9.9.9/32"]}}
    config_files.write()
    daemon = start_daemon(config_files)
    status, body, _ = await get(daemon, "/status")
    assert (status, body["error"]) == (403, "forbidden")


async def test_database_down_at_start_runs_degraded_and_recovers(tmp_path, start_daemon, emulator):
    cluster = LocalPostgres()  # not started yet: its port refuses connections
    try:
        files = ConfigFiles(tmp_path, cluster.dsn(), settings={"database": {"timeout_seconds": 1}}, api_base=emulator.base_url)
        files.write()
        daemon = start_daemon(files)
        assert "degraded" in daemon.notify.messages[0]
        status, body, headers = await get(daemon, "/ready")
        assert (status, body["down"]) == (503, ["database"]) and headers["Retry-After"]
        status, body = await post(daemon, signed(files.webhook_secrets[0], "early"))
        assert (status, body["error"]) == (503, "database_unavailable")

        cluster.start()
        for _ in range(100):
            if (await get(daemon, "/ready"))[0] == 200:
                break
            await asyncio.sleep(0.2)
        assert (await get(daemon, "/ready"))[0] == 200
        assert (await post(daemon, signed(files.webhook_secrets[0], "early")))[0] == 202

        # Down again while running, then back: 503 meanwhile, recovery without a restart.
        cluster.stop()
        status, body = await post(daemon, signed(files.webhook_secrets[0], "during"))
        assert status == 503 and body["error"] == "database_unavailable"
        for _ in range(20):  # /ready shares one database ping a second among its callers
            if (await get(daemon, "/ready"))[0] == 503:
                break
            await asyncio.sleep(0.2)
        assert (await get(daemon, "/ready"))[0] == 503
        cluster.restart_server()
        for _ in range(100):
            status, _ = await post(daemon, signed(files.webhook_secrets[0], "after"))
            if status == 202:
                break
            await asyncio.sleep(0.2)
        assert status == 202
        assert "Traceback" not in daemon.log()
        assert daemon.stop() == 0
    finally:
        cluster.remove()


async def test_schema_newer_than_the_code_is_refused(config_files, start_daemon):
    with psycopg.connect(config_files.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    daemon = start_daemon(config_files, wait=False)
    assert daemon.process.wait(20) == 76
    assert "newer than this telepayd knows" in daemon.log()
    assert "Traceback" not in daemon.log()


def test_migrate_command_applies_then_has_nothing_to_do(config_files):
    command = [sys.executable, "-m", "telepayd", "migrate", "-c", str(config_files.path)]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0 and "applied 0001_webhooks" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 0 and "nothing to do" in second.stdout


async def test_watchdog_pings_when_systemd_asks(config_files, start_daemon):
    daemon = start_daemon(config_files, env={"WATCHDOG_USEC": "400000"})
    daemon.notify.wait_for("WATCHDOG=1", 5)
    mark = len(daemon.notify.messages)
    daemon.notify.wait_for("WATCHDOG=1", 5, start=mark)


async def test_unix_socket_listener(tmp_path, database_dsn, start_daemon, emulator):
    socket_path = tmp_path / "telepayd.sock"
    files = ConfigFiles(tmp_path, database_dsn, settings={"server": {"unix_socket": str(socket_path)}}, api_base=emulator.base_url)
    files.write()
    start_daemon(files)
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        # No X-Forwarded-For on a unix socket: the client is 127.0.0.1, which the allowlist admits.
        async with session.post("http://local/webhooks/notification", data=BODY, headers=signed(files.webhook_secrets[0])) as response:
            assert response.status == 202
        async with session.get("http://local/health") as response:
            assert response.status == 200


def test_a_taken_port_fails_at_once_before_anything_starts(config_files, start_daemon, emulator):
    import socket
    import time

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", config_files.port))
        taken.listen()
        started = time.monotonic()
        daemon = start_daemon(config_files, wait=False)
        assert daemon.process.wait(20) == 1
        elapsed = time.monotonic() - started
    assert "cannot listen on 127.0.0.1" in daemon.log() and "Address already in use" in daemon.log()
    assert "Traceback" not in daemon.log()
    # Nothing was started before the bind: no migration ran, Telegram was never called.
    with psycopg.connect(config_files.dsn) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    assert emulator.calls("getMe") == []
    assert elapsed < 10, elapsed  # not the 20 s wait for READY of before (a bound, not a benchmark)


def test_a_notify_reader_that_falls_behind_never_stops_the_daemon(config_files, start_daemon):
    """systemd (or anyone) not reading NOTIFY_SOCKET: the daemon keeps serving and still stops on SIGTERM."""
    import time
    import urllib.request

    daemon = start_daemon(config_files, env={"WATCHDOG_USEC": "20000"})  # WATCHDOG=1 every 10 ms, never read
    time.sleep(1.0)  # far more than the kernel queues for an unread datagram socket (10)
    with urllib.request.urlopen(daemon.base_url + "/health", timeout=5) as response:
        assert response.status == 200
    started = time.monotonic()
    assert daemon.stop(timeout=15) == 0
    assert time.monotonic() - started < 15

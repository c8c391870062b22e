"""The one main: start, serve, reload on SIGHUP, stop on SIGTERM/SIGINT.

Start-up order: config (already loaded by the CLI) → pool and schema (degraded if the database is down) →
listening socket → background tasks → ``READY=1``. Shut-down order, each step bounded: ``STOPPING=1`` →
stop accepting and finish in-flight requests (``SHUTDOWN_TIMEOUT_SECONDS``) → flush the group committer →
close the pool. Signal handlers only set events; tasks do the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable

from aiohttp import web
from telegram.error import TelegramError

from . import __version__, logs
from .app import create_app
from .app_keys import bot_key, database_key, supervisor_key
from .bot import register_webhook
from .config import Config, load
from .errors import EXIT_FAILURE, EXIT_SCHEMA_TOO_NEW, ConfigError, SchemaTooNew
from .http_server import GuardedAppRunner
from .runtime import Runtime
from .systemd import Notifier, watchdog_interval_seconds

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 10.0
# Below the unit's TimeoutStopSec (30 s): in-flight requests, the group commit and the pools each have less.
STOP_DEADLINE_SECONDS = 25.0
STATUS_REFRESH_SECONDS = 5.0


def status_line(runtime: Runtime, app: web.Application) -> str:
    """The one-line ``STATUS=`` text: ready or what is degraded, and anything awaiting a restart."""
    database, bot = app[database_key], app[bot_key]
    down = []
    if not database.schema_ready or database.problem:
        down.append(f"database {database.problem}")
    if not bot.ready:
        down.append(f"telegram {bot.problem}")
    down.extend(f"task {name} restarting after {why}" for name, why in app[supervisor_key].down.items())
    parts = [f"degraded: {', '.join(down)}" if down else "ready"]
    if runtime.last_reload_error:
        parts.append(f"last reload failed, previous config kept: {runtime.last_reload_error}")
    if runtime.restart_pending:
        parts.append(f"restart needed for: {', '.join(runtime.restart_pending)}")
    return "; ".join(parts)


async def _reload_on_signal(runtime: Runtime, app: web.Application, event: asyncio.Event, notifier: Notifier) -> None:
    while True:
        await event.wait()
        event.clear()
        notifier.reloading()
        path = runtime.config.path
        try:
            new = load(path)
        except ConfigError as exc:
            for problem in exc.problems:
                logger.error("reload refused: %s", problem)
            runtime.metrics.failed_reloads += 1
            runtime.last_reload_error = f"{len(exc.problems)} problem(s), first: {exc.problems[0]}"
            logger.error("reload failed; the previous configuration stays in force")
        else:
            restart = runtime.config.restart_needed_for(new)
            token_changed = runtime.config.telegram.webhook_secrets[:1] != new.telegram.webhook_secrets[:1]
            runtime.swap(new)
            if token_changed and new.telegram.mode == "webhook":
                await _register_webhook(app, new)
            logs.set_level(new.logging.level)
            runtime.metrics.reloads += 1
            runtime.last_reload_error = ""
            runtime.restart_pending = sorted(set(runtime.restart_pending) | set(restart))
            if restart:
                logger.warning("reloaded %s; these changes need a restart: %s", path, ", ".join(restart))
            else:
                logger.info("reloaded %s", path)
        notifier.ready(status_line(runtime, app))


async def _register_webhook(app: web.Application, config: Config) -> None:
    """A new first Telegram secret token: tell Telegram (the old one stays accepted while it is in the file)."""
    bot = app[bot_key]
    if not bot.ready:
        logger.warning("the Telegram secret token changed but the bot is not ready; run 'telepayd set-webhook' later")
        return
    try:
        await register_webhook(bot.application.bot, config.telegram)
    except TelegramError as exc:
        logger.error("setWebhook with the new secret token failed: %s; run 'telepayd set-webhook'", exc)
    else:
        logger.info("setWebhook called with the new first secret token")


async def _watchdog(notifier: Notifier, interval: float) -> None:
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


async def _refresh_status(runtime: Runtime, app: web.Application, notifier: Notifier) -> None:
    last = ""
    while True:
        await asyncio.sleep(STATUS_REFRESH_SECONDS)
        line = status_line(runtime, app)
        if line != last:
            notifier.status(line)
            last = line


def _listen(config: Config) -> socket.socket:
    """Bind the listening socket (TCP, or a unix socket the proxy reaches through the group); ``OSError``
    when that is impossible. Done first, so that a taken port fails in a moment, before anything starts."""
    if config.server.unix_socket:
        path = config.server.unix_socket
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # left by a daemon that did not stop cleanly
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o660)
        except OSError:
            sock.close()
            raise
        return sock
    family, kind, proto, _, address = socket.getaddrinfo(
        config.server.host, config.server.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def run(config: Config) -> int:
    """Run the daemon on the event loop ``[server] event_loop`` names; return the exit code."""
    with asyncio.Runner(loop_factory=_loop_factory(config.server.event_loop)) as runner:
        return runner.run(serve(config))


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for and importable (not from inside the zipped pyz), else the standard one."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError as exc:
        logger.warning("[server] event_loop is uvloop, which cannot be imported here (%s): running on the "
                       "standard library's event loop", exc)
        return None
    return uvloop.new_event_loop


def _loop_name() -> str:
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


async def serve(config: Config) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit code."""
    runtime = Runtime(config)
    notifier = Notifier()
    loop = asyncio.get_running_loop()
    reload_requested = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, runtime.request_stop)
    loop.add_signal_handler(signal.SIGINT, runtime.request_stop)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)

    try:
        sock = _listen(config)
    except OSError as exc:
        logger.critical("cannot listen on %s: %s (another telepayd running? or set [server] %s)", _where(config),
                        exc.strerror or exc, "unix_socket" if config.server.unix_socket else "host and port")
        return EXIT_FAILURE
    app = create_app(runtime)
    # The site serves through the connection guard: header deadline, connection bound.
    runner = GuardedAppRunner(app, runtime, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    try:
        await runner.setup()
    except SchemaTooNew as exc:
        logger.critical("%s", exc)
        sock.close()
        return EXIT_SCHEMA_TOO_NEW
    site = web.SockSite(runner, sock)
    await site.start()

    tasks = [
        asyncio.create_task(_reload_on_signal(runtime, app, reload_requested, notifier), name="reload"),
        asyncio.create_task(_refresh_status(runtime, app, notifier), name="status"),
    ]
    interval = watchdog_interval_seconds()
    if interval:
        tasks.append(asyncio.create_task(_watchdog(notifier, interval), name="watchdog"))
    for task in tasks:
        task.add_done_callback(runtime.on_background_task_done)

    logger.info("telepayd %s listening on %s, %s event loop (%s)", __version__, _where(config), _loop_name(),
                status_line(runtime, app))
    notifier.ready(status_line(runtime, app))
    await runtime.stop_requested.wait()

    logger.info("stopping: finishing in-flight requests")
    notifier.stopping()
    _exit_if_stuck(STOP_DEADLINE_SECONDS)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    logger.info("stopped")
    return runtime.exit_code


def _exit_if_stuck(seconds: float) -> None:
    """The last resort behind the bounded steps of a stop: if the process still runs ``seconds`` from now
    (a task that ignores cancellation, a thread that never returns), it exits, saying so, before systemd's
    ``TimeoutStopSec`` would kill it without a word. A thread, so that it works even if the loop is stuck."""

    loop = asyncio.get_running_loop()

    def give_up() -> None:
        logger.critical("the stop did not finish within %.0f s; exiting now. What was still running:", seconds)
        with contextlib.suppress(RuntimeError):  # the loop's task set may change under this thread
            for task in list(asyncio.all_tasks(loop)):
                logger.critical("task %s: %s", task.get_name(), " -> ".join(_awaiting(task.get_coro())))
        faulthandler.dump_traceback(all_threads=True)  # to stderr: where each thread is
        os._exit(EXIT_FAILURE)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


def _awaiting(coro: object) -> list[str]:
    """Where a coroutine waits, outermost first (``file:line in function`` down the chain of awaits)."""
    places = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            places.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return places


def _where(config: Config) -> str:
    if config.server.unix_socket:
        return f"unix:{config.server.unix_socket}"
    return f"{config.server.host}:{config.server.port}"

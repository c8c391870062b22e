"""``create_app()``: the whole web application, routes in one place, one ``cleanup_ctx`` per resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import views
from .app_keys import (
    bot_key, committer_key, database_key, exporter_key, nowpayments_key, outbox_key, runtime_key, supervisor_key, sweeper_key,
)
from .bot import TelegramBot
from .database import Database
from .handlers.commands import BotDeps
from .nowpayments import NowPaymentsClient
from .metrics import Exporter
from .outbox import OutboxWorker
from .reconcile import ReconcileSweep
from .stars_sweep import StarsSweep
from .errors import StoreUnavailable
from .ingest import GroupCommitter
from .guard import Caller, add_routes
from .runtime import Runtime
from .supervisor import Supervisor
from .sweeper import Sweeper

logger = logging.getLogger(__name__)

FIRST_CONNECT_SECONDS = 3.0
WORKERS_STOP_SECONDS = 5.0


async def _finish_preparing(database: Database, first: asyncio.Task[None]) -> None:
    """The first attempt to its end (a migration still running), then retries until the database is ready."""
    try:
        await first
    except StoreUnavailable:
        await database.keep_preparing()
    else:
        logger.info("database ready")


def setup_routes(app: web.Application) -> None:
    add_routes(app, [
        ("GET", "/health", "health", Caller.ANYONE, views.health),
        ("GET", "/ready", "ready", Caller.ANYONE, views.ready),
        ("GET", "/status", "status", Caller.OPERATOR, views.status),
        ("GET", "/metrics", "metrics", Caller.OPERATOR, views.metrics),
        ("POST", "/webhooks/notification", "notification", Caller.CLOUD_RUN, views.post_notification),
        ("POST", "/webhooks/broadcast", "broadcast", Caller.CLOUD_RUN, views.post_broadcast),
        ("POST", "/webhooks/nowpayments", "nowpayments", Caller.NOWPAYMENTS, views.post_nowpayments),
        ("POST", app[runtime_key].config.telegram.webhook_path, "telegram", Caller.TELEGRAM, views.post_telegram),
    ])


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the pool and the group committer; prepare the schema, or keep trying in the background."""
    runtime = app[runtime_key]
    database = Database(runtime.config.database)
    await database.open()
    # The first attempt gets FIRST_CONNECT_SECONDS before the daemon goes on degraded; it is not cancelled
    # then (a migration on a big table takes longer, and started again it would take as long again).
    first = asyncio.create_task(database.prepare(), name="database-first-prepare")
    try:
        async with asyncio.timeout(FIRST_CONNECT_SECONDS):
            await asyncio.shield(first)
        logger.info("database ready")
        preparing = None
    except (StoreUnavailable, TimeoutError):
        logger.warning("database not ready at start (%s); running degraded until it is", database.problem)
        preparing = asyncio.create_task(_finish_preparing(database, first), name="database-prepare")
        preparing.add_done_callback(runtime.on_background_task_done)
    except BaseException:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await database.close()
        raise
    committer = GroupCommitter(database.pool, timeout=runtime.config.database.timeout_seconds,
                               on_error=lambda where, exc: runtime.metrics.log_error(logger, where, exc),
                               on_batch=runtime.metrics.instruments.ingest)
    committer.start(app[supervisor_key])
    app[database_key] = database
    app[committer_key] = committer
    yield
    await committer.stop()
    if preparing is not None:
        preparing.cancel()
        await asyncio.gather(preparing, return_exceptions=True)
    await database.close()


async def nowpayments_ctx(app: web.Application) -> AsyncIterator[None]:
    """The NowPayments API client (one HTTP session for the daemon's life)."""
    runtime = app[runtime_key]
    nowpayments = NowPaymentsClient(lambda: runtime.config.nowpayments)
    await nowpayments.start()
    app[nowpayments_key] = nowpayments
    try:
        yield
    finally:
        await nowpayments.close()


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Telegram bot, initialised in the background, and the outbox worker it wakes (started by
    ``workers_ctx``: it delivers only once the bot is initialised and the schema is in place)."""
    runtime = app[runtime_key]
    database = app[database_key]
    bot: TelegramBot | None = None
    outbox = OutboxWorker(
        database.pool,
        lambda: bot.application.bot if bot is not None and bot.ready and database.schema_ready else None,
        lambda: runtime.config.outbox,
        on_error=lambda where, exc: runtime.metrics.log_error(logger, where, exc),
        instruments=runtime.metrics.instruments,
        default_language=lambda: runtime.config.bot.default_language,
    )
    bot = TelegramBot(runtime.config.telegram, BotDeps(runtime, database, app[nowpayments_key], outbox.wake))
    bot.start().add_done_callback(runtime.on_background_task_done)
    app[bot_key] = bot
    app[outbox_key] = outbox
    try:
        # READY=1 should tell the truth: give the first getMe a moment, then go on degraded if it failed.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CONNECT_SECONDS):
                await bot.first_attempt_done.wait()
        yield
    finally:
        await bot.stop()


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox worker, the sweeper, the reconcile sweep and the Stars transactions sweep, supervised (stopped first, before the bot and the database)."""
    runtime = app[runtime_key]
    database = app[database_key]
    outbox = app[outbox_key]
    sweeper = Sweeper(database.pool, lambda: runtime.config, ready=lambda: database.schema_ready, wake_outbox=outbox.wake,
                      on_error=lambda where, exc: runtime.metrics.log_error(logger, where, exc))
    app[sweeper_key] = sweeper
    reconcile = ReconcileSweep(database.pool, app[nowpayments_key], lambda: runtime.config,
                               ready=lambda: database.schema_ready, wake_outbox=outbox.wake,
                               on_outcome=runtime.metrics.instruments.count_reconciled,
                               on_error=lambda where, exc: runtime.metrics.log_error(logger, where, exc))
    bot = app[bot_key]
    stars_sweep = StarsSweep(database.pool, lambda: bot.application.bot if bot.ready else None, lambda: runtime.config,
                             ready=lambda: database.schema_ready, wake_outbox=outbox.wake,
                             on_outcome=runtime.metrics.instruments.stars_payment,
                             on_error=lambda where, exc: runtime.metrics.log_error(logger, where, exc))
    supervisor = app[supervisor_key]
    workers = [supervisor.start("outbox", outbox.run), supervisor.start("sweeper", sweeper.run),
               supervisor.start("reconcile", reconcile.run), supervisor.start("stars", stars_sweep.run)]
    try:
        yield
    finally:
        for task in workers:
            task.cancel()
        _, running = await asyncio.wait(workers, timeout=WORKERS_STOP_SECONDS)
        if running:  # a task that will not stop must not hold up the stop (the deadline would end it anyway)
            logger.warning("stopping: %s did not stop within %.0f s", ", ".join(t.get_name() for t in running), WORKERS_STOP_SECONDS)


def create_app(runtime: Runtime) -> web.Application:
    """Build the application for ``runtime`` (the daemon's, or a test's)."""
    app = web.Application(client_max_size=runtime.config.server.max_body_bytes)
    app[runtime_key] = runtime
    app[supervisor_key] = Supervisor(runtime)
    app[exporter_key] = Exporter(app)
    setup_routes(app)
    # One resource each, started in this order and stopped in the reverse one; a resource that fails to
    # start stops only those started before it.
    app.cleanup_ctx.extend([database_ctx, nowpayments_ctx, bot_ctx, workers_ctx])
    return app

"""``create_app()``: the whole web application, routes in one place, resources in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import views
from .app_keys import (
    bot_key, committer_key, database_key, nowpayments_key, outbox_key, runtime_key, supervisor_key, sweeper_key,
)
from .bot import TelegramBot
from .database import Database
from .handlers.commands import BotDeps
from .nowpayments import NowPaymentsClient
from .outbox import OutboxWorker
from .errors import StoreUnavailable
from .ingest import GroupCommitter
from .guard import Caller, add_routes
from .runtime import Runtime
from .supervisor import Supervisor
from .sweeper import Sweeper

logger = logging.getLogger(__name__)

FIRST_CONNECT_SECONDS = 3.0


def setup_routes(app: web.Application) -> None:
    add_routes(app, [
        ("GET", "/health", "health", Caller.ANYONE, views.health),
        ("GET", "/ready", "ready", Caller.ANYONE, views.ready),
        ("GET", "/status", "status", Caller.OPERATOR, views.status),
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
    try:
        await asyncio.wait_for(database.prepare(), FIRST_CONNECT_SECONDS)
        logger.info("database ready")
        preparing = None
    except (StoreUnavailable, TimeoutError):
        logger.warning("database not ready at start (%s); running degraded until it is", database.problem)
        preparing = asyncio.create_task(database.keep_preparing(), name="database-prepare")
        preparing.add_done_callback(runtime.on_background_task_done)
    except BaseException:
        await database.close()
        raise
    committer = GroupCommitter(database.pool, timeout=runtime.config.database.timeout_seconds,
                               on_error=lambda where, exc: runtime.metrics.log_error(logger, where, exc))
    committer.start(app[supervisor_key])
    app[database_key] = database
    app[committer_key] = committer
    yield
    await committer.stop()
    if preparing is not None:
        preparing.cancel()
        await asyncio.gather(preparing, return_exceptions=True)
    await database.close()


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """The NowPayments client, the Telegram bot (started in the background), the outbox and the sweeper."""
    runtime = app[runtime_key]
    database = app[database_key]
    nowpayments = NowPaymentsClient(lambda: runtime.config.nowpayments)
    await nowpayments.start()
    bot: TelegramBot | None = None
    # The outbox delivers only once the bot is initialised and the schema is in place.
    def on_error(where: str, exc: BaseException) -> None:
        runtime.metrics.log_error(logger, where, exc)

    outbox = OutboxWorker(
        database.pool,
        lambda: bot.application.bot if bot is not None and bot.ready and database.schema_ready else None,
        lambda: runtime.config.outbox,
        on_error=on_error,
    )
    bot = TelegramBot(runtime.config.telegram, BotDeps(runtime, database, nowpayments, outbox.wake))
    bot.start().add_done_callback(runtime.on_background_task_done)
    # READY=1 should tell the truth: give the first getMe a moment, then go on degraded if it failed.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(bot.first_attempt_done.wait(), FIRST_CONNECT_SECONDS)
    sweeper = Sweeper(database.pool, lambda: runtime.config, ready=lambda: database.schema_ready, wake_outbox=outbox.wake,
                      on_error=on_error)
    supervisor = app[supervisor_key]
    workers = [supervisor.start("outbox", outbox.run), supervisor.start("sweeper", sweeper.run)]
    app[nowpayments_key] = nowpayments
    app[bot_key] = bot
    app[outbox_key] = outbox
    app[sweeper_key] = sweeper
    try:
        yield
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)  # a crash was logged when it happened
        try:
            await bot.stop()
        finally:
            await nowpayments.close()


def create_app(runtime: Runtime) -> web.Application:
    """Build the application for ``runtime`` (the daemon's, or a test's)."""
    app = web.Application(client_max_size=runtime.config.server.max_body_bytes)
    app[runtime_key] = runtime
    app[supervisor_key] = Supervisor(runtime)
    setup_routes(app)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(bot_ctx)
    return app

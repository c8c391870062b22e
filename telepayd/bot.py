"""python-telegram-bot inside the daemon's own event loop.

Webhook mode: ``Application`` built with ``updater(None)``; ``POST /telegram`` puts updates on its queue.
Polling mode (development, one daemon only): PTB's updater polls. Telegram unreachable at start does not
stop the daemon: initialisation is retried with backoff while ``/ready`` says the bot is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application
from telegram.request import HTTPXRequest

from . import languages
from .backoff import Backoff
from .config import TelegramConfig
from .handlers.commands import BotDeps, Handlers

logger = logging.getLogger(__name__)

# successful_payment and refunded_payment come as messages; pre_checkout_query must be asked for.
ALLOWED_UPDATES = ["message", "callback_query", "chat_join_request", "chat_member", "my_chat_member", "pre_checkout_query"]
MAX_BACKOFF_SECONDS = 60.0
# Updates handled at once (each takes a bot pool connection for a moment, and Telegram calls), and updates
# waiting to be: beyond that the webhook answers 503 and Telegram delivers the update again later.
CONCURRENT_UPDATES = 64
MAX_QUEUED_UPDATES = 2000
STOP_SECONDS = 5.0  # for the updates being handled when the daemon stops


class BotBusy(Exception):
    """Too many updates are waiting: Telegram should deliver this one again later."""


class CountingRequest(HTTPXRequest):
    """PTB's HTTP transport, telling ``on_answer(method, code)`` of every Bot API call: code None for a
    success, else the HTTP code (400 or more) or 'network': the Telegram errors and state of /metrics,
    whichever part of the daemon called."""

    def __init__(self, on_answer: Callable[[str, str | None], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_answer = on_answer

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        try:
            code, payload = await super().do_request(url, method, *args, **kwargs)
        except TelegramError:
            self._on_answer(api_method, "network")
            raise
        self._on_answer(api_method, str(code) if code >= 400 else None)
        return code, payload


def build_application(config: TelegramConfig, on_answer: Callable[[str, str | None], None] | None = None) -> Application:
    builder = Application.builder().token(config.token).base_url(config.api_base_url).concurrent_updates(CONCURRENT_UPDATES)
    if on_answer is not None:  # the pool size PTB's builder would give its own transport
        builder = builder.request(CountingRequest(on_answer, connection_pool_size=256))
    if config.mode == "webhook":
        builder = builder.updater(None)
    return builder.build()


async def register_webhook(bot: Bot, config: TelegramConfig) -> None:
    """``setWebhook`` with the URL, the first secret token and the update types the bot handles."""
    await bot.set_webhook(config.webhook_url, secret_token=config.webhook_secrets[0], allowed_updates=ALLOWED_UPDATES)


class TelegramBot:
    """The PTB application and its lifecycle; ``ready`` once Telegram answered ``getMe``."""

    def __init__(self, config: TelegramConfig, deps: BotDeps) -> None:
        self.config = config
        self._default_language = lambda: deps.runtime.config.bot.default_language
        self.application = build_application(config, deps.runtime.metrics.instruments.telegram_answer)
        Handlers(deps).register(self.application)
        self.ready = False
        self.problem = "starting"
        self.first_attempt_done = asyncio.Event()
        self._starting: asyncio.Task[None] | None = None

    @property
    def bot(self):
        return self.application.bot

    def start(self) -> asyncio.Task[None]:
        self._starting = asyncio.create_task(self._start_with_retries(), name="telegram-start")
        return self._starting

    async def _start_with_retries(self) -> None:
        try:
            await self._initialize_with_retries()
        finally:
            self.first_attempt_done.set()

    async def _initialize_with_retries(self) -> None:
        backoff = Backoff(first=1.0, most=MAX_BACKOFF_SECONDS)
        while True:
            try:
                await self.application.initialize()
                break
            except InvalidToken:
                self.problem = "Telegram refused the bot token"
                logger.critical("Telegram refused the bot token; fix [telegram] token_file and restart")
                return
            except TelegramError as exc:
                delay = backoff.next()
                self.problem = f"Telegram unreachable ({exc})"
                logger.warning("Telegram not reachable at start (%s); retrying in %.0f s", exc, delay)
                self.first_attempt_done.set()
                await asyncio.sleep(delay)
        await self.application.start()
        if self.config.mode == "polling" and self.application.updater is not None:
            await self.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        self.ready = True
        self.problem = ""
        logger.info("Telegram bot @%s ready (%s mode)", self.application.bot.username, self.config.mode)
        await register_menus(self.application.bot, self._default_language())

    async def feed(self, data: dict[str, Any]) -> None:
        """Queue one update from the webhook; raises ``ValueError`` when it is not an Update and ``BotBusy``
        when too many are waiting already."""
        if self.application.update_queue.qsize() >= MAX_QUEUED_UPDATES:
            raise BotBusy()
        update_id = data.get("update_id")
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            raise ValueError("an update needs an integer update_id")
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # PTB raises whatever the data provokes (KeyError, OverflowError for a date...)
            raise ValueError(f"not a Telegram update ({exc.__class__.__name__})") from None
        if update is None:
            raise ValueError("not a Telegram update")
        await self.application.update_queue.put(update)

    async def stop(self) -> None:
        """Stop taking updates, let the ones being handled finish (within ``STOP_SECONDS``), then shut PTB
        down. Updates still waiting are dropped: they are chat, not money, and PTB would otherwise handle
        every one of them first (with Telegram slow, longer than systemd waits)."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self.ready:
            self.ready = False
            if self.application.updater is not None and self.application.updater.running:
                await self.application.updater.stop()
            dropped = 0
            while not self.application.update_queue.empty():
                self.application.update_queue.get_nowait()
                dropped += 1
            if dropped:
                logger.info("stopping: %d queued Telegram update(s) dropped (Telegram does not resend them)", dropped)
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await self.application.stop()
            except TimeoutError:
                logger.warning("stopping: updates still being handled after %.0f s were cut short", STOP_SECONDS)
        with contextlib.suppress(Exception):
            await self.application.shutdown()


async def register_menus(bot: Bot, default_language: str) -> None:
    """The command menu and the bot's description in each language (``language_code``), and in the default
    language for everyone else. Best effort: a failure is logged, the bot works without them."""
    try:
        for code in (None, *languages.AVAILABLE):
            texts = languages.texts_in(code or default_language)
            commands = [BotCommand(command, description) for command, description in texts.COMMANDS.items()]
            await bot.set_my_commands(commands, language_code=code)
            await bot.set_my_description(texts.BOT_DESCRIPTION, language_code=code)
    except TelegramError as exc:
        logger.warning("the command menus were not registered (%s); the bot works without them", exc)
        return
    logger.info("command menus registered in %s", ", ".join(languages.AVAILABLE))

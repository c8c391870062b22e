"""One update of a user at a time, in the language of that user: the gate every conversational handler
goes through (``@one_at_a_time``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from .. import languages
from .speaking import speak, texts

logger = logging.getLogger(__name__)

class UserGate:
    """One update of a user at a time, in the order they came, with at most ``waiting`` more queued behind
    it; beyond that an update is turned away. A flood from one user then costs one handler at a time."""

    def __init__(self, waiting: int) -> None:
        self._waiting = waiting
        self._admitted: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def enter(self, user_id: int) -> AsyncIterator[bool]:
        """Yield True once it is this update's turn, or False at once when too many are queued."""
        admitted = self._admitted.get(user_id, 0)
        if admitted > self._waiting:
            yield False
            return
        self._admitted[user_id] = admitted + 1
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        try:
            async with lock:
                yield True
        finally:
            left = self._admitted[user_id] - 1
            if left:
                self._admitted[user_id] = left
            else:
                del self._admitted[user_id]
                del self._locks[user_id]

    def __len__(self) -> int:
        return len(self._admitted)


def one_at_a_time(handler: Callable[[Any, Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]):
    """Run ``handler`` through the user's gate (updates without a user go straight through), speaking the
    user's language."""

    @functools.wraps(handler)
    async def gated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        if user is None:
            speak(languages.texts_in(self._languages.default))
            await handler(self, update, context)
            return
        async with self._gate.enter(user.id) as admitted:
            if admitted:
                speak(await self._languages.texts_for(user))
                await handler(self, update, context)
                return
        logger.debug("update %s of user %s turned away: too many of theirs queued", update.update_id, user.id)
        speak(self._languages.texts_known(user))
        if update.callback_query is not None:
            with contextlib.suppress(TelegramError):
                await update.callback_query.answer(texts.TOO_FAST)

    return gated

"""The language of the update being handled.

python-telegram-bot handles updates concurrently, each in a task of its own, so the language is kept in a
``ContextVar`` (one value per task), never installed globally: the gate that admits an update
(``gate.one_at_a_time``, and the payment handlers that bypass it) sets it first, and every
``texts.X`` in the handlers then reads that update's language through the ``texts`` proxy below."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar

from telegram import User

from .. import languages
from ..store import users
from ..texts import ENGLISH, Texts

logger = logging.getLogger(__name__)

_current: ContextVar[Texts] = ContextVar("telepayd_texts", default=ENGLISH)


def speak(chosen: Texts) -> None:
    """Speak ``chosen`` for the rest of this update (this task)."""
    _current.set(chosen)


def current() -> Texts:
    return _current.get()


class _CurrentTexts:
    """``texts.START``: the START of the current update's language."""

    def __getattr__(self, name: str):
        return getattr(_current.get(), name)


texts = _CurrentTexts()


# A user's /language choice is read again after this long: a choice made through another daemon on the same
# database reaches this one within it.
REREAD_SECONDS = 60.0


class UserLanguages:
    """Which language to speak to a user: their /language choice (read from the database, kept here for
    ``REREAD_SECONDS``, bounded), else Telegram's language_code for them, else the default. The language
    Telegram gives is written down when it changes, so that messages sent without an update (a grant after
    an IPN, a reminder) speak it too."""

    def __init__(self, pool, default: Callable[[], str], capacity: int = 100_000) -> None:
        self._pool = pool
        self._default = default  # [bot] default_language, as reloaded
        self._capacity = capacity
        # user id -> (chosen language or None, the Telegram language last written down, when read: monotonic)
        self._known: OrderedDict[int, tuple[str | None, str | None, float]] = OrderedDict()

    async def texts_for(self, user: User | None) -> Texts:
        if user is None:
            return languages.texts_in(self.default)
        telegram = languages.base_subtag(user.language_code)
        known = self._known.get(user.id)
        if known is None or known[1] != telegram or time.monotonic() - known[2] > REREAD_SECONDS:
            try:
                async with self._pool.connection() as conn:
                    return await self.texts_with(conn, user)
            except Exception as exc:  # the update goes on in Telegram's language; the handler meets the database itself
                logger.info("language of user %s not read (%s); speaking Telegram's", user.id, type(exc).__name__)
                return languages.texts_for(known[0] if known else None, telegram, self.default)
        self._known.move_to_end(user.id)
        return languages.texts_for(known[0], telegram, self.default)

    async def texts_with(self, conn, user: User) -> Texts:
        """Read the user's choice on ``conn`` (writing down Telegram's language for them when it changed)."""
        telegram = languages.base_subtag(user.language_code)
        chosen = await users.seen(conn, user.id, telegram)
        self._remember(user.id, (chosen, telegram, time.monotonic()))
        return languages.texts_for(chosen, telegram, self.default)

    def texts_known(self, user: User) -> Texts:
        """Without a database read: what this daemon knows already (a pre-checkout's first answers)."""
        known = self._known.get(user.id)
        return languages.texts_for(known[0] if known else None, languages.base_subtag(user.language_code), self.default)

    async def choose(self, user: User, language: str) -> Texts:
        async with self._pool.connection() as conn:
            await users.choose(conn, user.id, language)
        self._remember(user.id, (language, languages.base_subtag(user.language_code), time.monotonic()))
        return languages.texts_in(language)

    @property
    def default(self) -> str:
        return self._default()

    def _remember(self, user_id: int, known: tuple[str | None, str | None, float]) -> None:
        self._known[user_id] = known
        self._known.move_to_end(user_id)
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

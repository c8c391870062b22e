"""The languages telepayd speaks: English (the source) and the catalogs in telepayd/locale, compiled
``.mo`` files read with the standard library's ``gettext`` (from the package, the zipapp or the .deb:
through ``importlib.resources``, so a zipped package works too).

Whose language: a user's choice (/language), else the base subtag of the ``language_code`` Telegram sends
with their updates, else ``[bot] default_language``."""

from __future__ import annotations

import functools
import gettext
import io
import re
from importlib import resources

from psycopg import AsyncConnection

from .store import users
from .texts import ENGLISH, Texts

DOMAIN = "telepayd"
# Each language's name in itself, for the /language keyboard; the catalogs shipped are exactly these.
NAMES = {"en": "English", "ru": "Русский", "es": "Español"}
AVAILABLE = tuple(NAMES)
_SUBTAG = re.compile(r"[a-z]{2,3}")


def base_subtag(language_code: str | None) -> str | None:
    """'pt-br' -> 'pt'; None for anything that is not a language tag."""
    if not language_code:
        return None
    base = language_code.strip().lower().replace("_", "-").split("-", 1)[0]
    return base if _SUBTAG.fullmatch(base) else None


def pick(chosen: str | None, telegram: str | None, default: str) -> str:
    """The language to speak: the user's choice, else Telegram's, else the default (each only if available)."""
    for language in (chosen, telegram, default):
        if language in NAMES:
            return language
    return "en"


def texts_in(language: str) -> Texts:
    """The texts in ``language`` (English for one without a catalog)."""
    if language == "en" or language not in NAMES:
        return ENGLISH
    return _load(language)


@functools.cache
def _load(language: str) -> Texts:
    """Each catalog is read once."""
    catalog = resources.files(__package__).joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.mo")
    return Texts(language, gettext.GNUTranslations(io.BytesIO(catalog.read_bytes())))


def texts_for(chosen: str | None, telegram: str | None, default: str) -> Texts:
    return texts_in(pick(chosen, telegram, default))


async def texts_of(conn: AsyncConnection, user_id: int, default: str) -> Texts:
    """The texts for a message to ``user_id`` sent without an update of theirs (after an IPN, a reminder)."""
    chosen, telegram = await users.language_of(conn, user_id)
    return texts_for(chosen, telegram, default)

"""The message catalogs: complete, current, and safe to format. CI fails on a catalog that lacks a message,
keeps a stale one, differs from the source in its placeholders or HTML tags, does not pass GNU msgfmt
--check, or whose compiled .mo is older than its .po (run `make catalogs`)."""

from __future__ import annotations

import gettext
import io
import re
import shutil
import subprocess
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from telepayd import languages
from telepayd.texts import ENGLISH, Texts

LOCALE = Path(languages.__file__).resolve().parent / "locale"
SOURCE = Path(languages.__file__).resolve().parent / "texts.py"
TRANSLATED = [code for code in languages.AVAILABLE if code != "en"]
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
TAG = re.compile(r"</?[a-z]+>")


def source_messages() -> set[str | tuple[str, str]]:
    """Every message marked in telepayd/texts.py, as `make catalogs` extracts it."""
    found = set()
    for _, message, _, _ in extract_from_file("python", str(SOURCE), keywords={"_": None, "ngettext": (1, 2)}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def catalog(code: str):
    with open(LOCALE / code / "LC_MESSAGES" / "telepayd.po", "rb") as file:
        return read_po(file, locale=code)


def ids(message) -> str | tuple[str, str]:
    return message.id if isinstance(message.id, str) else tuple(message.id)


def test_every_language_has_a_catalog_and_only_those():
    assert languages.AVAILABLE[0] == "en"
    assert sorted(p.name for p in LOCALE.iterdir() if p.is_dir()) == sorted(TRANSLATED)


def test_the_template_is_current():
    with open(LOCALE / "telepayd.pot", "rb") as file:
        template = {ids(m) for m in read_po(file) if m.id}
    assert template == source_messages(), "run `make catalogs`"


@pytest.mark.parametrize("code", TRANSLATED)
def test_a_catalog_has_every_message_and_no_stale_one(code):
    messages = {ids(m): m for m in catalog(code) if m.id}
    source = source_messages()
    assert not source - set(messages), f"{code}: missing, run `make catalogs` and translate: {source - set(messages)}"
    assert not set(messages) - source, f"{code}: stale, run `make catalogs`: {set(messages) - source}"
    untranslated = [key for key, m in messages.items()
                    if not (m.string if isinstance(m.string, str) else all(m.string)) or m.fuzzy]
    assert not untranslated, f"{code}: untranslated or fuzzy: {untranslated}"


@pytest.mark.parametrize("code", TRANSLATED)
def test_translations_keep_the_placeholders_and_tags_of_the_source(code):
    problems = []
    for message in catalog(code):
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[1]
        forms = [message.string] if isinstance(message.string, str) else list(message.string)
        for form in forms:
            if set(PLACEHOLDER.findall(form)) != set(PLACEHOLDER.findall(source)):
                problems.append(f"placeholders of {source!r}: {form!r}")
            if sorted(TAG.findall(form)) != sorted(TAG.findall(source)):
                problems.append(f"HTML tags of {source!r}: {form!r}")
            if form.count("{") != form.count("}"):
                problems.append(f"unbalanced braces: {form!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("code", TRANSLATED)
def test_gnu_msgfmt_accepts_the_catalog(code, tmp_path):
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "GNU gettext's msgfmt is needed (apt-get install gettext)"
    result = subprocess.run([msgfmt, "--check", "-o", str(tmp_path / "out.mo"), str(LOCALE / code / "LC_MESSAGES" / "telepayd.po")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr, result.stderr


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_shipped_mo_is_compiled_from_the_po(code):
    compiled = io.BytesIO()
    write_mo(compiled, catalog(code))
    shipped = gettext.GNUTranslations(io.BytesIO((LOCALE / code / "LC_MESSAGES" / "telepayd.mo").read_bytes()))
    fresh = gettext.GNUTranslations(io.BytesIO(compiled.getvalue()))
    assert shipped._catalog == fresh._catalog, "run `make catalogs`"  # noqa: SLF001 (the parsed messages)


SAMPLES = {
    "title": "Premium <Signals>", "price": Decimal("9.99"), "days": 30, "user_id": 6271402111, "link": "https://t.me/+x",
    "hours": 24, "ends_at": datetime(2026, 12, 1, tzinfo=timezone.utc), "payment_id": 5077125123, "status": "confirming",
    "amount": 500, "usd": Decimal("5.00"), "minutes": 3, "chat_id": -1001, "lowest": Decimal("4.99"),
    "description": "d", "paid": Decimal("0.001"), "pay_currency": "btc", "kind": "subscription", "username": "alice",
    "renewal": True, "canceled": True, "renews": True, "created_at": datetime(2026, 11, 1, tzinfo=timezone.utc),
    "minimum": Decimal("4.99"), "maximum": Decimal("9999.99"), "percent": 20, "taken_back": True,
    "days_taken_back": 3, "payment_type": "subscription", "data": {"amount": 5, "duration_days": 30, "tier": 1},
    "tier": "1", "rail": "stars", "active": True, "currency": "usd", "list_price": Decimal("12.49"),
}


@pytest.mark.parametrize("code", languages.AVAILABLE)
def test_every_text_formats_in_every_language(code):
    """Each message method called with sample values: a translation that breaks .format() fails here."""
    import inspect

    texts = languages.texts_in(code)
    assert isinstance(texts, Texts) and texts.language == code
    for name, method in inspect.getmembers(texts, inspect.ismethod):
        if name.startswith("_") or name in ("stats", "ngettext"):
            continue
        parameters = inspect.signature(method).parameters
        values = {p: SAMPLES[p] for p in parameters if p in SAMPLES}
        if name == "keypad":
            values["amount"] = "12.5"  # what the buyer typed so far
        result = method(**values)
        assert isinstance(result, str) and result and "{" not in result, (code, name, result)
    for number in (1, 2, 5, 11, 21, 22):
        assert str(number) in texts.day_count(number)
    if code != "en":
        assert texts.START != ENGLISH.START and texts.HELP != ENGLISH.HELP


def test_a_language_is_its_users_choice_else_telegrams_else_the_default():
    assert languages.pick("es", "ru", "en") == "es"
    assert languages.pick(None, "ru", "en") == "ru"
    assert languages.pick(None, "de", "es") == "es"  # no German catalog: the default
    assert languages.pick("xx", None, "ru") == "ru"
    assert [languages.base_subtag(c) for c in ("pt-br", "RU", "es_MX", "", None, "1x", "en-")] == [
        "pt", "ru", "es", None, None, None, "en"]
    assert languages.texts_in("de") is ENGLISH and languages.texts_in("ru") is languages.texts_in("ru")


def test_russian_plurals_take_their_three_forms():
    russian = languages.texts_in("ru")
    one, few, many = russian.day_count(1), russian.day_count(2), russian.day_count(5)
    assert len({one.split()[1], few.split()[1], many.split()[1]}) == 3
    assert russian.day_count(21).split()[1] == one.split()[1] and russian.day_count(22).split()[1] == few.split()[1]
    assert russian.day_count(11).split()[1] == many.split()[1]

"""Logging: one line per event on stderr (journald adds time and unit), the request id on every line."""

from __future__ import annotations

import json
import logging
import os
from contextvars import ContextVar

from .config import LoggingConfig

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(config: LoggingConfig) -> None:
    """Install the root handler for ``config`` (called at start; ``set_level`` on reload)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        # Under systemd, journald stamps every line; elsewhere the time helps.
        stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
        handler.setFormatter(logging.Formatter(stamp + "%(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(config.level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(_LEVELS[level])
    # aiohttp's access log would repeat every request at INFO; the guard counts them instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx (under python-telegram-bot) logs every request URL at INFO, and Bot API URLs hold the bot
    # token: never below WARNING, whatever the configured level.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

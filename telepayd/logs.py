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


# syslog priorities (sd-daemon(3)): a line that starts with "<N>" is stored by journald at that priority,
# so `journalctl -p err` finds the errors.
_PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """Plain lines under systemd: the priority prefix, no time (journald stamps every line). A traceback's
    lines follow on lines of their own, each with the same prefix."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITIES.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


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


def stderr_is_the_journal() -> bool:
    """True when stderr is the stream systemd connected to the journal. ``JOURNAL_STREAM`` names it as
    "<device>:<inode>", and children inherit the variable (a terminal started by ``systemd --user`` passes it
    to its shells), so it counts only when stderr is that very stream (systemd.exec(5))."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stderr = os.fstat(2)
        return (stderr.st_dev, stderr.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def configure(config: LoggingConfig) -> None:
    """Install the root handler for ``config`` (called at start; ``set_level`` on reload)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        plain = "%(levelname)s %(name)s [%(request_id)s] %(message)s"
        if stderr_is_the_journal():  # under systemd: journald stamps the time and reads the priority
            handler.setFormatter(JournalFormatter(plain))
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s " + plain))
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

"""sd_notify through ``sdnotify``: a no-op without ``NOTIFY_SOCKET``, and never fatal to the daemon."""

from __future__ import annotations

import logging
import os
import time

import sdnotify

from .numbers import ascii_int

logger = logging.getLogger(__name__)


def _ascii(text: str) -> str:
    # sdnotify encodes Latin-1; keep STATUS= plain ASCII so nothing can fail to encode.
    return text.encode("ascii", "replace").decode("ascii").replace("\n", " ")


class Notifier:
    """Sends READY/RELOADING/STOPPING/STATUS/WATCHDOG messages to systemd."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier() if os.environ.get("NOTIFY_SOCKET") else None
        if self._notifier is not None and self._notifier.socket is not None:
            # sdnotify's socket blocks: when the reader falls behind (a busy systemd, a test that stopped
            # reading) the kernel queues only net.unix.max_dgram_qlen datagrams (10), and the next send
            # would stop the whole event loop, SIGTERM included. A message that cannot go now is dropped.
            self._notifier.socket.setblocking(False)

    def send(self, *lines: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.notify("\n".join(lines))
        except Exception:  # sdnotify swallows errors already; this is belt and braces
            logger.debug("sd_notify failed", exc_info=True)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={_ascii(status)}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def status(self, status: str) -> None:
        self.send(f"STATUS={_ascii(status)}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def watchdog_interval_seconds() -> float | None:
    """Half of ``WATCHDOG_USEC`` when systemd asks this process for keep-alives, else None."""
    usec = ascii_int(os.environ.get("WATCHDOG_USEC", ""))
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000

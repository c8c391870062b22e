"""Background tasks that cannot stop the daemon: one that fails is logged, marked down, and restarted with
backoff; ``/ready`` and ``STATUS=`` name the ones that are down. Only a database schema newer than this
telepayd (which no restart can fix) stops the daemon."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .backoff import Backoff
from .errors import EXIT_SCHEMA_TOO_NEW, SchemaTooNew
from .runtime import Runtime

logger = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.down: dict[str, str] = {}  # task name -> why (for /status and the logs; /ready shows names only)
        self.restarts = 0

    def start(self, name: str, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``work()`` until it returns, restarting it after any failure; cancel the task to stop it."""
        return asyncio.create_task(self._keep_running(name, work), name=name)

    async def _keep_running(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(first=1.0, most=30.0)
        while True:
            try:
                await work()
                return
            except SchemaTooNew as exc:
                logger.critical("%s", exc)
                self._runtime.request_stop(EXIT_SCHEMA_TOO_NEW)
                return
            except Exception as exc:  # anything else: this task alone, restarted after a pause
                delay = backoff.next()
                self.down[name] = f"{exc.__class__.__name__}: {exc}"[:300]
                self.restarts += 1
                self._runtime.metrics.log_error(logger, f"background task {name}", exc,
                                                then=f"restarting it in {delay:.0f} s")
                await asyncio.sleep(delay)
                self.down.pop(name, None)

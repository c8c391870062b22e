"""What the web app reads on every request, rebuilt from the config on reload and swapped in one step."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

from .config import Config, RateLimitConfig
from .errors import EXIT_FAILURE, EXIT_SCHEMA_TOO_NEW, SchemaTooNew
from .metrics import Instruments
from .security.client_address import Networks
from .security.rate_limit import RateLimiter
from .security.webhook_signature import WebhookVerifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Guards:
    """The security state derived from one config: allowlists, verifiers, limiters."""

    trusted_proxies: Networks
    status_allowed_ips: Networks
    webhook_allowed_ips: Networks
    webhook_verifier: WebhookVerifier
    webhook_limiter: RateLimiter
    telegram_allowed_ips: Networks
    telegram_limiter: RateLimiter
    telegram_tokens: tuple[bytes, ...]
    nowpayments_allowed_ips: Networks
    nowpayments_limiter: RateLimiter
    ipn_secrets: tuple[bytes, ...]

    @classmethod
    def build(cls, config: Config, previous: Guards | None = None) -> Guards:
        """Build from ``config``, keeping ``previous``'s limiter state when its limits did not change."""
        return cls(
            trusted_proxies=config.server.trusted_proxies,
            status_allowed_ips=config.server.status_allowed_ips,
            webhook_allowed_ips=config.webhooks.allowed_ips,
            webhook_verifier=WebhookVerifier.from_secrets(
                config.webhooks.secrets, tolerance_seconds=config.webhooks.tolerance_seconds
            ),
            webhook_limiter=_limiter(config.webhooks.rate_limit, previous.webhook_limiter if previous else None),
            telegram_allowed_ips=config.telegram.allowed_ips,
            telegram_limiter=_limiter(config.telegram.rate_limit, previous.telegram_limiter if previous else None),
            telegram_tokens=tuple(t.encode() for t in config.telegram.webhook_secrets),
            nowpayments_allowed_ips=config.nowpayments.allowed_ips,
            nowpayments_limiter=_limiter(config.nowpayments.rate_limit, previous.nowpayments_limiter if previous else None),
            ipn_secrets=tuple(s.encode() for s in config.nowpayments.ipn_secrets),
        )


def _limiter(limits: RateLimitConfig, previous: RateLimiter | None) -> RateLimiter:
    if previous is not None and previous.same_limits(limits.per_minute, limits.burst, limits.max_clients):
        return previous
    return RateLimiter(limits.per_minute, limits.burst, max_clients=limits.max_clients)


class LogBudget:
    """Rejection log lines per reason: a burst, then a steady rate, so a flood of bad requests cannot flood
    the journal; what was left out is counted and said on the next line that is written."""

    def __init__(self, *, per_minute: int = 60, burst: int = 20) -> None:
        self._limiter = RateLimiter(per_minute, burst, max_clients=256)
        self._left_out: Counter[str] = Counter()

    def take(self, reason: str) -> int | None:
        """None: leave this line out; else how many lines of this reason were left out before it."""
        if self._limiter.acquire(reason):
            self._left_out[reason] += 1
            return None
        return self._left_out.pop(reason, 0)


class Metrics:
    """In-memory counters for ``GET /status`` and ``GET /metrics`` (per daemon, reset on restart)."""

    def __init__(self, exported: bool = True) -> None:
        self.instruments = Instruments(exported)  # what /metrics adds (telepayd/metrics.py)
        self.started = time.monotonic()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.rejections: Counter[str] = Counter()
        self.rejection_log = LogBudget()
        # Unexpected errors: a few tracebacks, then one line a minute with a count (a repeated bug, or an
        # attacker who found one, must not flood the journal).
        self.errors: Counter[str] = Counter()
        self.error_log = LogBudget(per_minute=1, burst=5)
        self.reloads = 0
        self.failed_reloads = 0

    def log_error(self, log: logging.Logger, where: str, exc: BaseException, *, then: str = "") -> None:
        """Count an unexpected error in ``where`` and log it, with its traceback, within the error budget."""
        self.errors[where] += 1
        left_out = self.error_log.take(where)
        if left_out is not None:
            more = f" ({left_out} more like it not logged; see /status)" if left_out else ""
            log.error("unexpected error in %s%s%s", where, f"; {then}" if then else "", more, exc_info=exc)

    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started


class Runtime:
    """The current config and guards; ``swap()`` replaces both at once (no request sees a mix)."""

    def __init__(self, config: Config) -> None:
        self._state = (config, Guards.build(config))
        self.metrics = Metrics(config.server.metrics)
        self.restart_pending: list[str] = []
        self.last_reload_error = ""
        self.stop_requested = asyncio.Event()
        self.exit_code = 0

    @property
    def config(self) -> Config:
        return self._state[0]

    @property
    def guards(self) -> Guards:
        return self._state[1]

    def swap(self, config: Config) -> None:
        self._state = (config, Guards.build(config, self._state[1]))

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask the daemon to stop gracefully and exit with ``exit_code`` (the first non-zero code wins)."""
        if not self.exit_code:
            self.exit_code = exit_code
        self.stop_requested.set()

    def on_background_task_done(self, task: asyncio.Task[None]) -> None:
        """A background task that dies stops the daemon, rather than leaving it half-working."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, SchemaTooNew):
            logger.critical("%s", exc)
            self.request_stop(EXIT_SCHEMA_TOO_NEW)
        else:
            logger.critical("background task %s failed; stopping", task.get_name(), exc_info=exc)
            self.request_stop(EXIT_FAILURE)

"""The connection pool: opened without waiting, so a database that is down does not stop the daemon."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import psycopg
from psycopg_pool import AsyncConnectionPool

from ..config import DatabaseConfig
from ..errors import StoreUnavailable

logger = logging.getLogger(__name__)

# The errors that mean "the database cannot be used right now", as opposed to a bug or bad data.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.errors.AdminShutdown,
    psycopg.errors.CannotConnectNow,
    psycopg.errors.ReadOnlySqlTransaction,
)


# In the main pool (``recent_unchecked``), a connection handed out this recently (and given back whole: the
# pool drops a broken one) is handed out again without the check's round trip (under load the check was ~7%
# of the daemon's CPU and a round trip per group commit). One that broke in between (a backend killed, a
# failover) fails its first statement instead: the webhook or IPN is answered 503 and sent again, a worker
# tries again at its next round, and the pool replaces the connection. The bot's pool keeps the check: a
# Stars pre-checkout refused as busy would decline a buyer's payment.
RECENT_SECONDS = 1.0
_handed_out_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = weakref.WeakKeyDictionary()


async def _check_unless_recent(conn: psycopg.AsyncConnection) -> None:
    now = time.monotonic()
    last = _handed_out_at.get(conn)
    _handed_out_at[conn] = now
    if last is not None and now - last < RECENT_SECONDS and not conn.closed:
        return
    await AsyncConnectionPool.check_connection(conn)


class Pool(AsyncConnectionPool):
    """psycopg_pool's pool, without losing a cancellation.

    It waits for a connection with ``asyncio.wait_for``, which on Python 3.11 returns the connection when
    the waiting task is cancelled as the connection is handed over: the cancellation was lost, and a worker
    stopped just after the daemon started (every worker waits for its first connection then) went on to
    its next sleep; the stop waited 5 s for it (1 stop in 8). Here a cancellation requested while waiting
    and not delivered gives the connection back and is raised. (Python 3.12's ``wait_for`` does not lose
    it: the check then never fires.)"""

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        try:
            conn = await super().getconn(timeout)
        except Exception as exc:  # lost, then the connection failed its check until the pool gave up
            if task is not None and task.cancelling() > requested:
                raise asyncio.CancelledError from exc
            raise
        if task is not None and task.cancelling() > requested:
            # Shielded: a second cancellation must not leave the connection out of the pool, counted as used.
            await asyncio.shield(self.putconn(conn))
            raise asyncio.CancelledError
        return conn


def create_pool(
    config: DatabaseConfig, *, application_name: str = "telepayd", name: str = "telepayd",
    min_size: int | None = None, max_size: int | None = None, max_waiting: int = 0, recent_unchecked: bool = False,
) -> Pool:
    """Build a pool (sized by ``config`` unless told otherwise), closed: the caller opens it with
    ``await pool.open(wait=False)``. ``max_waiting`` > 0 refuses at once (``TooManyRequests``) a request
    that would wait behind that many others."""
    kwargs: dict[str, object] = {"application_name": application_name, "connect_timeout": max(1, int(config.timeout_seconds))}
    if config.password:
        kwargs["password"] = config.password
    return Pool(
        config.dsn,
        kwargs=kwargs,
        min_size=config.min_size if min_size is None else min_size,
        max_size=config.max_size if max_size is None else max_size,
        max_waiting=max_waiting,
        timeout=config.timeout_seconds,
        open=False,
        check=_check_unless_recent if recent_unchecked else AsyncConnectionPool.check_connection,
        name=name,
        reconnect_timeout=3600.0,
    )


async def connect(config: DatabaseConfig) -> psycopg.AsyncConnection:
    """One connection outside the pool (migrations, the CLI), autocommit; raises ``StoreUnavailable``."""
    kwargs: dict[str, object] = {"connect_timeout": max(1, int(config.timeout_seconds)), "autocommit": True}
    if config.password:
        kwargs["password"] = config.password
    try:
        return await psycopg.AsyncConnection.connect(config.dsn, **kwargs)
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(first_line(exc)) from None


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, for logs and ``STATUS=`` (never shown to HTTP clients)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__

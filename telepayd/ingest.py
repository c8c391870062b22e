"""Group commit: concurrent webhook requests share one transaction, and each is answered after it commits.

A commit costs an fsync, which caps one-commit-per-request ingest at about 2,000 requests/s on a small VM.
Here writer tasks take whatever is queued (up to ``max_batch`` messages), insert it in one transaction and
then resolve every waiting request. A request that arrives while a transaction is in flight simply joins the
next one, so a quiet daemon commits each request at once and a busy one batches without any timer.
"""

from __future__ import annotations

import asyncio
import time
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .errors import StoreUnavailable, TelepaydError
from .store import webhook_messages
from .store.pool import UNAVAILABLE_ERRORS
from .store.webhook_messages import Incoming

if TYPE_CHECKING:
    from .supervisor import Supervisor

logger = logging.getLogger(__name__)


class UnstorableMessage(TelepaydError):
    """PostgreSQL refused the message's data itself (not the database being down)."""


@dataclass(slots=True)
class _Pending:
    message: Incoming
    future: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommitter:
    """Stores webhook messages durably, batching concurrent ones into shared transactions."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        writers: int = 2,
        max_batch: int = 500,
        max_pending: int = 20_000,
        timeout: float = 5.0,
        on_error: Callable[[str, BaseException], None] | None = None,
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
    ) -> None:
        self._pool = pool
        self._on_error = on_error
        self._on_batch = on_batch  # (messages, seconds) of each commit, for the metrics
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(max_pending)
        self._writers = writers
        self._max_batch = max_batch
        self.timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.messages = 0

    def start(self, supervisor: Supervisor) -> None:
        self._tasks = [supervisor.start(f"group-commit-{n}", self._write_forever) for n in range(self._writers)]

    async def stop(self) -> None:
        """Finish what is queued (within the commit timeout), then stop the writers; whatever is still
        queued then is answered as unavailable, so its sender retries."""
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: 3.11's can swallow a cancellation
                await self._queue.join()
        except TimeoutError:
            logger.warning("stopping with %d message(s) not stored; their senders get 503 and retry", self.depth)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._queue.empty():
            _settle(self._queue.get_nowait(), exc=StoreUnavailable("the daemon is stopping"))

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, message: Incoming) -> bool:
        """Store ``message``; return True when new, False for a webhook-id seen before.

        Raises ``StoreUnavailable`` (answer 503: the caller retries with the same webhook-id, and a
        message that did commit is then acknowledged as a duplicate) or ``UnstorableMessage``.
        """
        pending = _Pending(message)
        # A request that gave up (timeout, client gone) must not leave an exception nobody retrieves.
        pending.future.add_done_callback(_consume_exception)
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise StoreUnavailable("too many messages are waiting for the database") from None
        # One timer that settles the future as "not in time" (the writer then finds it settled), rather than
        # asyncio.timeout around a shield: two objects less per request on the hottest path. A request
        # cancelled meanwhile cancels only its future; the message is still written with its batch.
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, pending)
        try:
            return await pending.future
        finally:
            timer.cancel()

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:  # a bug, not the data: answer 503 (the sender retries) and go on
                if self._on_error is not None:
                    self._on_error("group commit", exc)
                for pending in batch:
                    _settle(pending, exc=StoreUnavailable("the message could not be stored"))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Pending]) -> None:
        first: dict[str, _Pending] = {}
        repeats: list[_Pending] = []
        for pending in batch:
            if pending.message.webhook_id in first:
                repeats.append(pending)
            else:
                first[pending.message.webhook_id] = pending
        started = time.perf_counter()
        try:
            accepted = await self._commit([p.message for p in first.values()])
        except StoreUnavailable as exc:
            for pending in batch:
                _settle(pending, exc=exc)
            return
        except Exception:  # the data of one message (DataError, text psycopg cannot encode...): find which
            await self._write_one_by_one(list(first.values()))
        else:
            for webhook_id, pending in first.items():
                _settle(pending, result=webhook_id in accepted)
        self.batches += 1
        self.messages += len(batch)
        self._on_batch(len(batch), time.perf_counter() - started)
        for pending in repeats:
            _settle(pending, result=False)

    async def _write_one_by_one(self, pendings: list[_Pending]) -> None:
        """A batch PostgreSQL refused: store each message alone, so one bad message fails alone."""
        for pending in pendings:
            try:
                accepted = await self._commit([pending.message])
            except StoreUnavailable as exc:
                _settle(pending, exc=exc)
            except psycopg.DataError as exc:
                logger.warning("message %s refused by PostgreSQL: %s", pending.message.webhook_id, exc.diag.message_primary)
                _settle(pending, exc=UnstorableMessage(str(exc.diag.message_primary)))
            except Exception as exc:  # not known to be the data's fault: 503, the sender keeps it and retries
                if self._on_error is not None:
                    self._on_error("storing a webhook message", exc)
                _settle(pending, exc=StoreUnavailable("the message could not be stored"))
            else:
                _settle(pending, result=pending.message.webhook_id in accepted)

    async def _commit(self, messages: list[Incoming]) -> set[str]:
        try:
            async with self._pool.connection() as conn:
                return await webhook_messages.store_batch(conn, messages)
        except PoolTimeout:
            raise StoreUnavailable("no database connection became available") from None
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("database unavailable while storing %d message(s): %s", len(messages), exc)
            raise StoreUnavailable("the database is unavailable") from None


def _settle(pending: _Pending, *, result: bool = False, exc: BaseException | None = None) -> None:
    if pending.future.done():
        return
    if exc is not None:
        pending.future.set_exception(exc)
    else:
        pending.future.set_result(result)


def _expire(pending: _Pending) -> None:
    _settle(pending, exc=StoreUnavailable("the database did not commit in time"))


def _consume_exception(future: asyncio.Future[bool]) -> None:
    if not future.cancelled():
        future.exception()

"""Requests that share one statement: those arriving while the lanes are busy go together.

A hot path whose requests each send one statement that commits alone (a manual trigger, an
upload's admission, an upload's row) gives that statement to a StatementBatcher. A request
that finds a lane idle goes alone, at once; the ones arriving while every lane (up to
`connections`) has a statement in PostgreSQL wait and go together in the next, at most
`max_batch` a statement. Under load the round trips, commits and pool checkouts per request
then fall with the rate instead of the pool overflowing.

Each lane keeps its pooled connection while requests keep coming and gives it back after
LANE_IDLE_SECONDS without one: a checkout and check-in through SQLAlchemy's pool cost ~120 us
of CPU, as much as a small statement (docs/performance.md). A connection PostgreSQL closed
while idle is seen closed (no round trip) and replaced by a fresh checkout.

A batch that PostgreSQL refuses is retried one request at a time on the same lane, so an
error reaches only the request that caused it; a lost connection fails the whole batch
(503, as `driver_statements` maps it) and the lane's connection is not used again.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core.db import driver_statements, raw_driver

logger = logging.getLogger(__name__)

LANE_IDLE_SECONDS = 1.0  # a lane keeps its connection this long for the next request
_NOT_DURABLE = "SET synchronous_commit TO off"
_DURABLE_AGAIN = "RESET synchronous_commit"

AskT = TypeVar("AskT")
OutcomeT = TypeVar("OutcomeT")


class StatementBatcher(ABC, Generic[AskT, OutcomeT]):
    """Runs `_run` over the waiting requests on up to `connections` kept connections."""

    name = "statement"  # what a batch holds, for the log
    # False: the lane's commits do not wait for their WAL flush (synchronous_commit off on its
    # connection while it holds it), for statements whose writes may be lost in a PostgreSQL
    # crash, such as rate counts; a request then waits for no disk flush.
    durable = True

    def __init__(
        self,
        engine: AsyncEngine,
        connections: int,
        max_batch: int,
        observe_size: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._connections = connections
        self._max_batch = max_batch
        self._observe_size = observe_size
        self._waiting: list[tuple[AskT, asyncio.Future[OutcomeT]]] = []
        self._lanes: set[asyncio.Task[None]] = set()
        self._idle_lanes = 0
        self._arrived = asyncio.Event()
        self._stopping = False
        self.statements_sent = 0

    @abstractmethod
    async def _run(self, asks: list[AskT], driver: Any) -> list[OutcomeT]:
        """One statement on `driver` (an asyncpg connection, no transaction open: it commits
        alone) for `asks`, in order; an outcome each, in the same order."""

    def _order(self, batch: list[tuple[AskT, asyncio.Future[OutcomeT]]]) -> None:
        """Sort `batch` in place into the order its statement takes locks in (none here)."""

    async def submit(self, ask: AskT) -> OutcomeT:
        """Run `ask` in the next statement (committed when this returns); raises what its
        statement raised."""
        future: asyncio.Future[OutcomeT] = asyncio.get_running_loop().create_future()
        self._waiting.append((ask, future))
        if self._idle_lanes:
            self._arrived.set()
        elif len(self._lanes) < self._connections:
            self._open_lane()
        return await future

    async def stop(self) -> None:
        """Let the batches under way and the requests waiting for them finish."""
        self._stopping = True
        self._arrived.set()
        while self._lanes:
            await asyncio.gather(*self._lanes, return_exceptions=True)

    def _open_lane(self) -> None:
        lane = asyncio.create_task(self._lane())
        self._lanes.add(lane)
        lane.add_done_callback(self._lanes.discard)

    def _take_batch(self) -> list[tuple[AskT, asyncio.Future[OutcomeT]]]:
        """The next batch, oldest first; requests cancelled while waiting are dropped."""
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        return [waiting for waiting in batch if not waiting[1].done()]

    async def _lane(self) -> None:
        try:
            try:
                connection, driver = await self._checkout()
            except Exception as exc:  # noqa: BLE001 - no connection: this batch gets it (503)
                for _, future in self._take_batch():
                    settle(future, exc)
                return
            try:
                while await self._next_request_within(LANE_IDLE_SECONDS):
                    if driver.is_closed():
                        break  # PostgreSQL closed it while idle: a fresh checkout replaces it
                    batch = self._take_batch()
                    if batch and not await self._store(batch, connection, driver):
                        break  # the connection may be broken: not used again
            finally:
                await self._release(connection, driver)
        finally:
            # Out of the count now, not in the done callback: a request arriving between this
            # task's end and its callback would find every lane taken and none coming.
            self._lanes.discard(asyncio.current_task())  # type: ignore[arg-type]
            if self._waiting and len(self._lanes) < self._connections:
                self._open_lane()  # requests left behind by this lane

    async def _checkout(self) -> tuple[AsyncConnection, Any]:
        """A pooled connection for the lane and its asyncpg connection, held: no lookup per
        statement."""
        connection = self._engine.connect()
        await connection.start()
        try:
            driver = await raw_driver(connection)
            if not self.durable:
                async with driver_statements(connection, False, driver):
                    await driver.execute(_NOT_DURABLE)
        except BaseException:
            await connection.close()
            raise
        return connection, driver

    async def _release(self, connection: AsyncConnection, driver: Any) -> None:
        """Give the lane's connection back to the pool as it was taken."""
        try:
            if not self.durable and not driver.is_closed():
                await driver.execute(_DURABLE_AGAIN)
        except Exception:  # noqa: BLE001 - not pooled again with the setting left on it
            await connection.invalidate()
        finally:
            await connection.close()

    async def _next_request_within(self, seconds: float) -> bool:
        """Whether a request waits, now or within `seconds` (at once False when stopping)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._waiting and not self._stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._arrived.clear()
            self._idle_lanes += 1
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
            finally:
                self._idle_lanes -= 1
        return bool(self._waiting)

    async def _store(
        self,
        batch: list[tuple[AskT, asyncio.Future[OutcomeT]]],
        connection: AsyncConnection,
        driver: Any,
    ) -> bool:
        """Run and settle `batch`; False when its connection failed (not to be used again)."""
        self._order(batch)
        self.statements_sent += 1
        if self._observe_size is not None:
            self._observe_size(len(batch))
        try:
            async with driver_statements(connection, False, driver):
                outcomes = await self._run([ask for ask, _ in batch], driver)
        except Exception as exc:  # noqa: BLE001 - the waiting requests get it (503, ...)
            if isinstance(exc, asyncpg.PostgresError) and len(batch) > 1:
                logger.warning(
                    "a batch of %d %s failed (%s); one by one", len(batch), self.name, exc
                )
                for waiting in batch:
                    if not await self._store([waiting], connection, driver):
                        return False
                return True
            for _, future in batch:
                settle(future, exc)
            return isinstance(exc, asyncpg.PostgresError)  # an error of its own: still usable
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            settle(future, outcome)
        return True


def settle(future: asyncio.Future[Any], result: Any) -> None:
    """Answer a waiting request with `result`, raised when it is an exception; nothing when
    the request was cancelled meanwhile (the client left)."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)

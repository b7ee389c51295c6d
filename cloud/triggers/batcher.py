"""Manual trigger requests stored in batches: one statement, one commit, for all that wait.

Each request is one call of `visant_manual_trigger()` (migration
0008_manual_trigger_function has its rules). Requests that arrive while the batcher's
connections are busy wait and go together in the next statement, one call per request over
`unnest`: under load the round trips, commits and pool checkouts per trigger fall with the
rate instead of the pool overflowing (a new connection per request, each preparing its
statements again). At a low rate a request finds a connection free and goes alone, at once.

Each of the (up to `connections`) lanes storing batches keeps its pooled connection while
requests keep coming, and gives it back after LANE_IDLE_SECONDS without one: a pool checkout
per statement cost ~120 us of CPU, most of a trigger's database work beside the statement.

Calls run in device id order, so two batches (of this or another instance) take the per-device
cap locks in the same order and cannot deadlock; the presence writes of stream openings lock
in that order too. A batch that fails in PostgreSQL is rolled back whole and its requests are
retried one by one, so an error reaches only the request that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core.db import driver_statements, raw_driver
from cloud.metrics.registry import MANUAL_TRIGGER_BATCH

logger = logging.getLogger(__name__)

LANE_IDLE_SECONDS = 1.0  # a lane keeps its connection this long for the next request

# The per-request columns, in the order of TriggerAsk's fields and of the arrays sent.
_COLUMNS = (
    ("device_id", "text"),
    ("org_id", "uuid"),
    ("trigger_id", "text"),
    ("label", "text"),
    ("now", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("user_id", "uuid"),
    ("command_message", "text"),
    ("event", "text"),
    ("audit_id", "uuid"),
    ("actor_email", "text"),
    ("audit_details", "text"),
)
_ARRAYS = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_COLUMNS, start=1))
_NAMES = ", ".join(name for name, _ in _COLUMNS)
_BATCH_SQL = (
    f"SELECT r.found, r.instance_id, r.open_count, r.first_expiry, r.stored "
    f"FROM unnest({_ARRAYS}) WITH ORDINALITY AS a({_NAMES}, n) "
    "CROSS JOIN LATERAL visant_manual_trigger("
    "$13, a.device_id, a.org_id, $14, $15, a.trigger_id, a.label, a.now, a.expires_at, "
    "a.user_id, $16, $17, $18, a.command_message, $19, a.event, a.audit_id, a.actor_email, "
    "$20, a.audit_details::jsonb) AS r ORDER BY a.n"
)


@dataclass(frozen=True)
class TriggerAsk:
    """One request's own values (the fields are _COLUMNS, in order)."""

    device_id: str
    org_id: uuid.UUID
    trigger_id: str
    label: str | None
    now: datetime
    expires_at: datetime
    user_id: uuid.UUID
    command_message: str
    event: str
    audit_id: uuid.UUID
    actor_email: str
    audit_details: str


@dataclass(frozen=True)
class BatchConstants:
    """What every request of this instance shares (the function's other arguments)."""

    cap_lock: int
    presence_window: timedelta
    this_instance: str | None
    cap: int
    instance_channel_prefix: str
    shared_channel: str
    events_channel: str
    audit_action: str


@dataclass(frozen=True)
class TriggerOutcome:
    """visant_manual_trigger()'s row for one request."""

    found: bool
    instance_id: str | None
    open_count: int
    first_expiry: datetime | None
    stored: bool


_Waiting = tuple[TriggerAsk, "asyncio.Future[TriggerOutcome]"]


class ManualTriggerBatcher:
    """Stores manual triggers on up to `connections` pooled connections, `max_batch` a time."""

    def __init__(
        self, engine: AsyncEngine, constants: BatchConstants, connections: int, max_batch: int
    ) -> None:
        self._engine = engine
        self._constants = constants
        self._connections = connections
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._lanes: set[asyncio.Task[None]] = set()
        self._idle_lanes = 0
        self._arrived = asyncio.Event()
        self._stopping = False
        self.statements_sent = 0

    @property
    def instance_id(self) -> str | None:
        """The instance storing: it hands the command over itself when it holds the stream,
        and hears of the delivery (a command message's `reply_to`)."""
        return self._constants.this_instance

    async def stop(self) -> None:
        """Let the batches under way and the requests waiting for them finish."""
        self._stopping = True
        self._arrived.set()
        while self._lanes:
            await asyncio.gather(*self._lanes, return_exceptions=True)

    async def submit(self, ask: TriggerAsk) -> TriggerOutcome:
        """Store one request (committed when this returns); raises what its statement raised."""
        future: asyncio.Future[TriggerOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((ask, future))
        if self._idle_lanes:
            self._arrived.set()
        elif len(self._lanes) < self._connections:
            self._open_lane()
        return await future

    def _open_lane(self) -> None:
        lane = asyncio.create_task(self._lane())
        self._lanes.add(lane)
        lane.add_done_callback(self._lanes.discard)

    async def _lane(self) -> None:
        try:
            connection = self._engine.connect()
            await connection.start()
        except Exception as exc:  # noqa: BLE001 - no connection: the next batch gets it (503)
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            for _, future in batch:
                _settle(future, exc)
        else:
            try:
                driver = await raw_driver(connection)  # held: no lookup per statement
                while await self._next_request_within(LANE_IDLE_SECONDS):
                    if driver.is_closed():
                        break  # PostgreSQL closed it while idle: a fresh checkout replaces it
                    batch = self._waiting[: self._max_batch]
                    del self._waiting[: self._max_batch]
                    if not await self._store(batch, connection, driver):
                        break  # the connection may be broken: not used again
            finally:
                await connection.close()
        finally:
            if self._waiting and len(self._lanes) <= self._connections:
                self._open_lane()  # requests left behind by this lane (it is still counted)

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

    async def _store(self, batch: list[_Waiting], connection: AsyncConnection, driver: Any) -> bool:
        """Store and settle `batch`; False when its connection failed (not to be used again)."""
        batch.sort(key=lambda waiting: waiting[0].device_id)  # the lock order
        try:
            outcomes = await self._run([ask for ask, _ in batch], connection, driver)
        except Exception as exc:  # noqa: BLE001 - the waiting requests get it (503, ...)
            if isinstance(exc, asyncpg.PostgresError) and len(batch) > 1:
                logger.warning(
                    "a batch of %d manual triggers failed (%s); one by one", len(batch), exc
                )
                for waiting in batch:
                    if not await self._store([waiting], connection, driver):
                        return False
                return True
            for _, future in batch:
                _settle(future, exc)
            return isinstance(exc, asyncpg.PostgresError)  # an error of its own: still usable
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)
        return True

    async def _run(
        self, asks: list[TriggerAsk], connection: AsyncConnection, driver: Any
    ) -> list[TriggerOutcome]:
        """One statement, committed alone; calls and outcomes in the order of `asks`."""
        columns = [[getattr(ask, name) for ask in asks] for name, _ in _COLUMNS]
        c = self._constants
        self.statements_sent += 1
        MANUAL_TRIGGER_BATCH.observe(len(asks))
        async with driver_statements(connection, False, driver):
            rows = await driver.fetch(
                _BATCH_SQL,
                *columns,
                c.cap_lock,
                c.presence_window,
                c.this_instance,
                c.cap,
                c.instance_channel_prefix,
                c.shared_channel,
                c.events_channel,
                c.audit_action,
            )
        return [TriggerOutcome(*row.values()) for row in rows]


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # its request was cancelled (the client left)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)

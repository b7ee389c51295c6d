"""Batched bookkeeping of the hub's streams: sent marks, ended streams, delivery confirmations."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloud.commands.queries import is_device_command_id
from cloud.core.db import KeptConnection, driver_statements, log_worker_failure
from cloud.core.worker import Worker
from cloud.hub import connection_log, delivery, presence
from cloud.hub.connection_log import ConnectionEvent

logger = logging.getLogger(__name__)

FLUSH_RETRY_SECONDS = 0.5  # pause after a failed flush before trying again
FLUSH_WINDOW_SECONDS = 0.02  # deliveries recorded together
DB_STEP_TIMEOUT = 10.0  # seconds; bounds each flush
FINAL_FLUSH_TIMEOUT = 3.0  # seconds; bounds the flush at stop()
KEPT_IDLE_SECONDS = 1.0  # the connection for sent marks goes back to the pool this long idle


class DeliveryRecorder(Worker):
    """Writes what streams did in few transactions, then answers trigger API calls waiting on it.

    At 100 triggers/s a transaction per event would be most of the hub's database work; here
    one transaction per 20 ms window records every write (`sent` only when still `pending`, so
    a late mark never overwrites a terminal state) and every ended stream.
    """

    name = "hub-recorder"
    stop_grace = DB_STEP_TIMEOUT  # a flush in flight is bounded by its own timeout

    def __init__(self, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine) -> None:
        super().__init__()
        self._sessions = sessions
        # Windows of sent marks only, one statement each, in autocommit on a kept connection.
        self._marks = KeptConnection(engine, KEPT_IDLE_SECONDS, isolation_level="AUTOCOMMIT")
        # (command id, when written, whether someone waits for it, the waiting instance)
        self._written: list[tuple[str, datetime, bool, str | None]] = []
        self._released: list[tuple[str, str]] = []
        self._events: list[ConnectionEvent] = []
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._dirty = asyncio.Event()

    async def stop(self) -> None:
        """Idempotent: end the loop, then one last bounded flush."""
        if self.stopping:
            return
        await super().stop()
        try:
            async with asyncio.timeout(FINAL_FLUSH_TIMEOUT):
                await self.flush()
        except Exception:  # noqa: BLE001 - lost sent marks only mean a resend on reconnect
            logger.warning("last delivery records not written at stop")
        await self._marks.discard()

    def written(self, trigger_id: str, manual: bool, reply_to: str | None = None) -> None:
        """A capture command's bytes went to a client now; `reply_to`: the instance whose API
        call waits for it (None: unknown, or this one)."""
        self._written.append((trigger_id, datetime.now(UTC), manual, reply_to))
        self._dirty.set()

    def released(self, device_id: str, stream_id: str) -> None:
        """A stream ended; its presence row goes unless a newer stream took it over."""
        self._released.append((device_id, stream_id))
        self._dirty.set()

    def connection_event(self, event: ConnectionEvent) -> None:
        """A stream opened or ended (its connection history row, written with the next flush)."""
        self._events.append(event)
        self._dirty.set()

    def expect(self, trigger_id: str) -> asyncio.Future[None]:
        """A future resolved once the trigger is recorded as delivered (here or elsewhere)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[trigger_id] = future
        return future

    def forget(self, trigger_id: str) -> None:
        self._waiters.pop(trigger_id, None)

    def resolve(self, trigger_id: str) -> bool:
        future = self._waiters.pop(trigger_id, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(None)
        return True

    async def flush(self) -> None:
        written, self._written = self._written, []
        released, self._released = self._released, []
        events, self._events = self._events, []
        if not written and not released and not events:
            return
        # Triggers made on another instance: its API call waits for this NOTIFY.
        remote = [
            (tid, reply_to)
            for tid, _, manual, reply_to in written
            if manual and tid not in self._waiters
        ]
        # Only triggers' sent marks and their confirmations (most windows): one statement,
        # atomic by itself, so it commits alone (no BEGIN and COMMIT round trips), on a
        # connection kept between windows.
        alone = not (released or events) and not any(
            is_device_command_id(tid) for tid, _, _, _ in written
        )
        try:
            async with asyncio.timeout(DB_STEP_TIMEOUT):
                if alone:
                    await self._mark_sent_alone([(tid, at) for tid, at, _, _ in written], remote)
                else:
                    async with self._sessions() as session:
                        await delivery.mark_sent(session, [(tid, at) for tid, at, _, _ in written])
                        await delivery.notify_delivered(session, remote)
                        await presence.release_presence(session, released)
                        await connection_log.record_events(session, events)
                        await session.commit()
        except BaseException:
            self._written[:0] = written
            self._released[:0] = released
            self._events[:0] = events
            raise
        for trigger_id, _, _, _ in written:
            self.resolve(trigger_id)

    async def _mark_sent_alone(
        self, written: list[tuple[str, datetime]], remote: list[tuple[str, str | None]]
    ) -> None:
        connection = await self._marks.get()
        try:
            async with driver_statements(connection, False, self._marks.driver) as driver:
                await delivery.mark_triggers_sent(driver, written, remote)
        except BaseException:
            await self._marks.discard(broken=True)  # the next window takes a fresh one
            raise

    async def run(self) -> None:
        while not self.stopping:
            await self.wait_stop_or(self._dirty, KEPT_IDLE_SECONDS)
            if not self._dirty.is_set():
                await self._marks.release_if_idle()
                continue
            await self.wait(FLUSH_WINDOW_SECONDS)
            self._dirty.clear()
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - keep recording after a database error
                log_worker_failure(logger, "recording deliveries failed; retrying")
                await self.wait(FLUSH_RETRY_SECONDS)
                self._dirty.set()

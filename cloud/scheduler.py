"""TriggerScheduler: the background worker that turns due schedule slots into triggers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.config import Settings
from cloud.db import log_worker_failure
from cloud.services.scheduling import BatchResult, run_batch

logger = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds a running tick may take to finish before it is cancelled
ERROR_BACKOFF_MAX = 30.0  # seconds between attempts while the database keeps failing
SLOT_MARGIN = 0.01  # seconds after a period boundary: a tick never wakes just before its slot


def seconds_to_next_tick(wall_now: float, period: float) -> float:
    """Seconds from `wall_now` (Unix time) to the next whole multiple of `period`, plus margin.

    Interval slots are whole multiples of their interval since the epoch, and a scheduled
    trigger expires no later than the next slot. Ticking at a random phase (the old "period
    minus elapsed" sleep) created a 1-second slot's trigger up to ~1 s late, so it lived only
    the rest of its second and often expired before its stream wrote it (issue #4,
    `bench_scheduler.py --sent`). Ticking just after each boundary gives it nearly its slot.
    """
    return (SLOT_MARGIN - wall_now) % period or period


@dataclass
class TickResult:
    """What one tick did, over all its batches."""

    batches: int = 0
    claimed: int = 0
    triggered: int = 0
    skipped: int = 0

    def add(self, batch: BatchResult) -> None:
        self.batches += 1
        self.claimed += batch.claimed
        self.triggered += batch.triggered
        self.skipped += batch.skipped


class TriggerScheduler:
    """Every tick, claims due devices (SKIP LOCKED: safe with many instances) in batches."""

    name = "scheduler"

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self._sessions = session_factory
        self._tick_seconds = settings.scheduler_tick_seconds
        self._batch_size = settings.scheduler_batch_size
        self._keepalive_seconds = settings.keepalive_seconds
        self._trigger_ttl = timedelta(seconds=settings.scheduled_trigger_ttl_seconds)
        self._stop_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0  # completed ticks, for tests and logs

    async def start(self) -> None:
        """Start the tick loop in a named task."""
        if self._task is None:
            self._stop_event.clear()
            self._task = asyncio.create_task(self._run(), name="trigger-scheduler")

    async def stop(self) -> None:
        """Stop the loop (idempotent); a tick in progress gets STOP_GRACE to finish."""
        self._stop_event.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
        except TimeoutError:
            logger.warning("scheduler tick did not finish in %.1fs; cancelling", STOP_GRACE)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self, now: datetime | None = None) -> TickResult:
        """Settle every due slot: batches until a short one (or a stop request)."""
        result = TickResult()
        while True:
            async with self._sessions() as session:
                batch = await run_batch(
                    session,
                    limit=self._batch_size,
                    keepalive_seconds=self._keepalive_seconds,
                    trigger_ttl=self._trigger_ttl,
                    now=now,
                )
                await session.commit()  # delivers the NOTIFYs with the rows
            result.add(batch)
            if batch.claimed < self._batch_size or self._stop_event.is_set():
                return result

    async def _run(self) -> None:
        failures = 0
        while not self._stop_event.is_set():
            began = time.monotonic()
            try:
                result = await self.tick()
                failures = 0
                self.ticks += 1
                if result.claimed:
                    logger.debug(
                        "scheduler tick: %d due, %d triggered, %d skipped",
                        result.claimed,
                        result.triggered,
                        result.skipped,
                        extra={"claimed": result.claimed, "triggered": result.triggered},
                    )
            except Exception:  # noqa: BLE001 - the loop outlives database outages
                failures += 1
                log_worker_failure(
                    logger, "scheduler tick failed (%d in a row); retrying", failures
                )
            delay = self._tick_seconds - (time.monotonic() - began)
            if delay > 0:  # an overrunning tick is followed at once, as before
                delay = seconds_to_next_tick(time.time(), self._tick_seconds)
            if failures:
                delay = max(delay, min(ERROR_BACKOFF_MAX, self._tick_seconds * 2**failures))
            await self._wait(delay)

    async def _wait(self, seconds: float) -> None:
        """Sleep until the next tick or until stop() is called, whichever comes first."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

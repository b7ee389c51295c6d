"""TriggerScheduler: the background worker that turns due schedule slots into triggers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.core.config import Settings
from cloud.core.db import log_worker_failure
from cloud.core.worker import Worker
from cloud.metrics import registry as metrics
from cloud.scheduling.batch import BatchResult, run_batch

logger = logging.getLogger(__name__)

ERROR_BACKOFF_MAX = 30.0  # seconds between attempts while the database keeps failing
SLOT_MARGIN = 0.01  # seconds after a period boundary: a tick never wakes just before its slot


def seconds_to_next_tick(wall_now: float, period: float) -> float:
    """Seconds from `wall_now` (Unix time) to the next whole multiple of `period`, plus margin.

    Interval slots are whole multiples of their interval since the epoch, and a scheduled
    trigger expires no later than the next slot. Ticking at a random phase (a "period minus
    elapsed" sleep) created a 1-second slot's trigger up to ~1 s late, so it lived only the
    rest of its second and often expired before its stream wrote it (measured with
    `python -m scripts.bench.scheduler --sent`). Ticking just after each boundary gives it
    nearly its slot.
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


class TriggerScheduler(Worker):
    """Every tick, claims due devices (SKIP LOCKED: safe with many instances) in batches."""

    name = "trigger-scheduler"
    stop_grace = 5.0  # a running tick may finish its batch before it is cancelled

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        tick_seconds: float,
        batch_size: int,
        keepalive_seconds: float,
        trigger_ttl_seconds: float,
    ) -> None:
        super().__init__()
        self._sessions = session_factory
        self._tick_seconds = tick_seconds
        self._batch_size = batch_size
        self._keepalive_seconds = keepalive_seconds
        self._trigger_ttl = timedelta(seconds=trigger_ttl_seconds)
        self.ticks = 0  # completed ticks, for tests and logs

    @classmethod
    def from_settings(
        cls, session_factory: async_sessionmaker[AsyncSession], settings: Settings
    ) -> TriggerScheduler:
        return cls(
            session_factory,
            tick_seconds=settings.scheduler_tick_seconds,
            batch_size=settings.scheduler_batch_size,
            keepalive_seconds=settings.keepalive_seconds,
            trigger_ttl_seconds=settings.scheduled_trigger_ttl_seconds,
        )

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
            if batch.claimed < self._batch_size or self.stopping:
                return result

    async def run(self) -> None:
        failures = 0
        while not self.stopping:
            began = time.monotonic()
            try:
                result = await self.tick()
                failures = 0
                self.ticks += 1
                metrics.count_scheduler_tick(
                    result.triggered, result.skipped, time.monotonic() - began
                )
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
            if delay > 0:  # an overrunning tick is followed at once
                delay = seconds_to_next_tick(time.time(), self._tick_seconds)
            if failures:
                delay = max(delay, min(ERROR_BACKOFF_MAX, self._tick_seconds * 2**failures))
            await self.wait(delay)

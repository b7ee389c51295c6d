"""Reaper: expires overdue triggers and forgets dead instances (safe on every instance)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.config import Settings
from cloud.db import log_worker_failure
from cloud.models import OPEN_TRIGGER_STATUSES, ServerInstance, Trigger, TriggerStatus
from cloud.services.presence import presence_window

logger = logging.getLogger(__name__)

STEP_TIMEOUT = 30.0  # seconds; bounds one pass


async def expire_overdue_triggers(session: AsyncSession) -> int:
    """Close every open trigger past its expiry; idempotent, so instances may race freely."""
    result = await session.execute(
        sa.update(Trigger)
        .where(Trigger.status.in_(OPEN_TRIGGER_STATUSES), Trigger.expires_at < sa.func.now())
        .values(status=TriggerStatus.EXPIRED, finished_at=sa.func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount  # type: ignore[attr-defined]


async def forget_dead_instances(session: AsyncSession, keepalive_seconds: float) -> int:
    """Delete instances that missed their heartbeats; their device connections go with them."""
    result = await session.execute(
        sa.delete(ServerInstance).where(
            ServerInstance.heartbeat_at < sa.func.now() - presence_window(keepalive_seconds)
        )
    )
    return result.rowcount  # type: ignore[attr-defined]


class Reaper:
    """Runs `expire_overdue_triggers` and `forget_dead_instances` every reaper interval."""

    name = "reaper"

    def __init__(self, app: FastAPI) -> None:
        self._settings: Settings = app.state.settings
        self._sessions: async_sessionmaker[AsyncSession] = app.state.session_factory
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reaper")

    async def stop(self) -> None:
        """Idempotent; returns when the loop has exited (a pass in flight is cancelled)."""
        self._stop.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> tuple[int, int]:
        async with asyncio.timeout(STEP_TIMEOUT), self._sessions() as session:
            expired = await expire_overdue_triggers(session)
            dead = await forget_dead_instances(session, self._settings.keepalive_seconds)
            await session.commit()
        if expired or dead:
            logger.info("reaper expired %d triggers, forgot %d dead instances", expired, dead)
        return expired, dead

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
                self.passes += 1
            except Exception:  # noqa: BLE001 - a database error must not end the reaper
                log_worker_failure(logger, "reaper pass failed; retrying next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.reaper_interval_seconds)

"""Reaper: expires overdue triggers and forgets dead instances (safe on every instance)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.commands.queries import expire_overdue_commands
from cloud.core.worker import PeriodicWorker
from cloud.hub.presence import forget_dead_instances
from cloud.triggers.service import expire_overdue_triggers

logger = logging.getLogger(__name__)

STEP_TIMEOUT = 30.0  # seconds; bounds one pass


class Reaper(PeriodicWorker):
    """Every `interval` seconds: close open triggers and device commands past their expiry,
    drop dead instances."""

    name = "reaper"
    stop_grace = 1.0  # a pass is two idempotent statements: cancelling one loses nothing
    failure_message = "reaper pass failed; retrying next interval"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        keepalive_seconds: float,
        interval: float,
    ) -> None:
        super().__init__()
        self._sessions = session_factory
        self._keepalive_seconds = keepalive_seconds
        self.interval = interval

    async def run_once(self) -> tuple[int, int]:
        async with asyncio.timeout(STEP_TIMEOUT), self._sessions() as session:
            expired = await expire_overdue_triggers(session)
            expired += await expire_overdue_commands(session)
            dead = await forget_dead_instances(session, self._keepalive_seconds)
            await session.commit()
        if expired or dead:
            logger.info("reaper expired %d triggers, forgot %d dead instances", expired, dead)
        return expired, dead

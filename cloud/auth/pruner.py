"""Pruner: deletes dead user tokens and ended rate-limit windows (safe on every instance)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.auth.tokens import prune_dead_tokens
from cloud.core.worker import PeriodicWorker
from cloud.limits.counters import prune_counters

logger = logging.getLogger(__name__)
STEP_TIMEOUT = 30.0  # seconds; bounds one pass


class Pruner(PeriodicWorker):
    """Every `interval` seconds: two idempotent DELETEs, so instances may overlap freely."""

    name = "pruner"
    stop_grace = 1.0
    failure_message = "prune pass failed; retrying next interval"

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], interval: float) -> None:
        super().__init__()
        self._sessions = session_factory
        self.interval = interval

    async def run_once(self) -> tuple[int, int]:
        async with asyncio.timeout(STEP_TIMEOUT), self._sessions() as session:
            tokens = await prune_dead_tokens(session)
            counters = await prune_counters(session)
            await session.commit()
        if tokens or counters:
            logger.info("pruned %d dead tokens, %d ended rate windows", tokens, counters)
        return tokens, counters

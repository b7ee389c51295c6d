"""Retention: captures received more than `retention_days` ago go, rows and snapshots together.

Rows are deleted first (in batches, `FOR UPDATE SKIP LOCKED` so instances take disjoint
batches), then their files. A crash in between leaves an orphaned file, never a record whose
image is missing. Each pass then sweeps orphaned files (no row names them, older than a grace
period longer than any upload takes), deletes terminal triggers finished more than
`trigger_retention_days` ago and device connection history older than
`connection_history_days`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.captures.queries import delete_captures_received_before, keys_without_capture
from cloud.captures.storage import SnapshotStore
from cloud.core.worker import PeriodicWorker
from cloud.hub.connection_log import delete_connection_events_before
from cloud.triggers.service import delete_terminal_triggers_before

logger = logging.getLogger(__name__)
BATCH_SIZE = 500  # captures per transaction
BATCH_PAUSE = 0.05  # seconds between batches: requests keep the database

# (session, cutoff, limit) -> rows deleted; the caller commits.
BatchDelete = Callable[[AsyncSession, datetime, int], Awaitable[int]]


class RetentionWorker(PeriodicWorker):
    """Deletes expired captures every `interval` seconds; `retention_days=0` disables it."""

    name = "retention"
    failure_message = "retention pass failed"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        store: SnapshotStore,
        retention_days: int,
        interval: float,
        batch_size: int = BATCH_SIZE,
        trigger_retention_days: int = 0,
        orphan_grace_seconds: float = 3600.0,
        connection_history_days: int = 0,
    ) -> None:
        super().__init__()
        self.session_factory = session_factory
        self.store = store
        self.retention_days = retention_days
        self.interval = interval
        self.batch_size = batch_size
        self.trigger_retention_days = trigger_retention_days
        self.orphan_grace_seconds = orphan_grace_seconds
        self.connection_history_days = connection_history_days

    async def run_once(self) -> int:
        total = await self.purge() if self.retention_days > 0 else 0
        await self.sweep_orphans()
        await self.prune_triggers()
        await self.prune_connection_history()
        return total

    async def prune_triggers(self, now: datetime | None = None) -> int:
        """Delete terminal triggers finished before the trigger cutoff; returns how many."""
        return await self._delete_older_than(
            self.trigger_retention_days, delete_terminal_triggers_before, "terminal triggers", now
        )

    async def prune_connection_history(self, now: datetime | None = None) -> int:
        """Delete connection history rows older than its cutoff; returns how many."""
        return await self._delete_older_than(
            self.connection_history_days,
            delete_connection_events_before,
            "connection history rows",
            now,
        )

    async def _delete_older_than(
        self, days: int, delete: BatchDelete, what: str, now: datetime | None
    ) -> int:
        if days <= 0:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        total = 0
        while not self.stopping:
            async with self.session_factory() as session, session.begin():
                deleted = await delete(session, cutoff, self.batch_size)
            total += deleted
            if deleted < self.batch_size:
                break
            await asyncio.sleep(BATCH_PAUSE)
        if total:
            logger.info("retention deleted %d %s older than %s", total, what, cutoff)
        return total

    async def sweep_orphans(self) -> int:
        """Delete snapshot files no capture names, older than the grace period."""
        keys = await asyncio.to_thread(
            lambda: list(self.store.keys_older_than(self.orphan_grace_seconds))
        )
        removed = 0
        for start in range(0, len(keys), self.batch_size):
            async with self.session_factory() as session:
                orphans = await keys_without_capture(session, keys[start : start + self.batch_size])
            for key in orphans:
                await self._delete_file(key)
            removed += len(orphans)
        if removed:
            logger.warning("retention removed %d orphaned snapshot files", removed)
        return removed

    async def purge(self, now: datetime | None = None) -> int:
        """Delete every capture received before the cutoff; returns how many went."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.retention_days)
        total = 0
        while not self.stopping:
            async with self.session_factory() as session, session.begin():
                keys = await delete_captures_received_before(session, cutoff, self.batch_size)
            for key in keys:
                await self._delete_file(key)
            total += len(keys)
            if len(keys) < self.batch_size:
                break
            await asyncio.sleep(BATCH_PAUSE)
        if total:
            logger.info("retention deleted %d captures received before %s", total, cutoff)
        return total

    async def _delete_file(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.store.delete, key)
        except Exception:  # noqa: BLE001 - the row is gone; an orphan file is only logged
            logger.exception("could not delete snapshot %s", key)

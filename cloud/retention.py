"""Retention: captures received more than `retention_days` ago go, rows and snapshots together.

Rows are deleted first (in batches, `FOR UPDATE SKIP LOCKED` so instances take disjoint
batches), then their files. A crash in between leaves an orphaned file, never a record whose
image is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.db import log_worker_failure
from cloud.models import Capture
from cloud.storage import SnapshotStore

logger = logging.getLogger(__name__)
BATCH_SIZE = 500  # captures per transaction
BATCH_PAUSE = 0.05  # seconds between batches: requests keep the database


class RetentionWorker:
    """Deletes expired captures every `interval` seconds; `retention_days=0` disables it."""

    name = "retention"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        store: SnapshotStore,
        retention_days: int,
        interval: float,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.session_factory = session_factory
        self.store = store
        self.retention_days = retention_days
        self.interval = interval
        self.batch_size = batch_size
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.retention_days <= 0:
            logger.info("retention disabled (retention_days=0)")
            return
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.purge()
            except Exception:  # noqa: BLE001 - a failed pass is retried next interval
                log_worker_failure(logger, "retention pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def purge(self, now: datetime | None = None) -> int:
        """Delete every capture received before the cutoff; returns how many went."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.retention_days)
        total = 0
        while not self._stopping.is_set():
            keys = await self._delete_batch(cutoff)
            for key in keys:
                await self._delete_file(key)
            total += len(keys)
            if len(keys) < self.batch_size:
                break
            await asyncio.sleep(BATCH_PAUSE)
        if total:
            logger.info("retention deleted %d captures received before %s", total, cutoff)
        return total

    async def _delete_batch(self, cutoff: datetime) -> list[str]:
        """Delete one batch of expired rows (committed); returns their snapshot keys."""
        expired = (
            sa.select(Capture.record_id)
            .where(Capture.received_at < cutoff)
            .order_by(Capture.received_at)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self.session_factory() as session, session.begin():
            result = await session.execute(
                sa.delete(Capture)
                .where(Capture.record_id.in_(expired))
                .returning(Capture.snapshot_key)
            )
            return list(result.scalars())

    async def _delete_file(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.store.delete, key)
        except Exception:  # noqa: BLE001 - the row is gone; an orphan file is only logged
            logger.exception("could not delete snapshot %s", key)

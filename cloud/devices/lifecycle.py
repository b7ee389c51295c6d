"""Deleting a device: stream closed, key dead, open triggers ended, captures kept or deleted.

Kept captures need their device row (their foreign key), so a delete that keeps them leaves a
tombstone: `deleted_at` set, key hash replaced by one nobody holds (401 everywhere), no
schedule, hidden from the device routes. A delete with its captures removes the row and
everything hanging from it, so the id can be registered again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.captures.storage import SnapshotStore
from cloud.core.security import hash_secret, new_secret
from cloud.hub import close_reasons
from cloud.hub.connection_log import notify_barred
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Capture,
    Device,
    DeviceConnection,
    DeviceStatus,
    Trigger,
    TriggerStatus,
)

logger = logging.getLogger(__name__)

DELETED_ERROR = "device deleted"
DELETED_KEY_PREFIX = "deleted"


async def delete_device(
    session: AsyncSession, secret_key: str, device: Device, delete_captures: bool
) -> list[str]:
    """Delete in the caller's transaction; returns the snapshot keys to remove after commit."""
    now = datetime.now(UTC)
    ended = await session.execute(
        sa.update(Trigger)
        .where(Trigger.device_id == device.device_id, Trigger.status.in_(OPEN_TRIGGER_STATUSES))
        .values(status=TriggerStatus.FAILED, error=DELETED_ERROR, finished_at=now)
    )
    await session.execute(
        sa.delete(DeviceConnection).where(DeviceConnection.device_id == device.device_id)
    )
    await notify_barred(session, device.device_id, close_reasons.DELETED)
    keys: list[str] = []
    if delete_captures:
        keys = list(
            await session.scalars(
                sa.select(Capture.snapshot_key).where(Capture.device_id == device.device_id)
            )
        )
        await session.delete(device)
    else:
        device.deleted_at = now
        device.status = DeviceStatus.INACTIVE
        device.next_trigger_at = None
        device.key_hash = hash_secret(new_secret("dead_"), secret_key)  # a key nobody holds
        device.key_prefix = DELETED_KEY_PREFIX
    await session.flush()
    logger.info(
        "device %s deleted (%d open triggers ended, %d snapshots to delete)",
        device.device_id,
        ended.rowcount,  # type: ignore[attr-defined]
        len(keys),
        extra={"device_id": device.device_id},
    )
    return keys


async def delete_snapshots(store: SnapshotStore, keys: list[str]) -> int:
    """Remove snapshot files of deleted captures; a failure is logged, never raised."""
    removed = 0
    for key in keys:
        try:
            await asyncio.to_thread(store.delete, key)
            removed += 1
        except Exception:  # noqa: BLE001 - an orphaned file is for retention, not the client
            logger.exception("could not delete snapshot %s", key)
    return removed

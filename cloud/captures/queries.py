"""Capture queries: the org's captures by filter and keyset page, one record, retention's delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.cursors import decode_cursor, encode_cursor
from cloud.core.errors import ApiError
from cloud.core.ids import RECORD_ID
from cloud.models import Capture, Device, User

MAX_PAGE = 200


@dataclass(frozen=True)
class CaptureFilter:
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    alert: bool | None = None


async def list_captures(
    session: AsyncSession,
    user: User,
    where: CaptureFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[Capture], str | None]:
    """A page of the org's captures, newest first, and the cursor of the next page."""
    alert = Capture.evaluation_result["alert"].as_boolean()
    query = (
        sa.select(Capture)
        .join(Device, Device.device_id == Capture.device_id)
        .where(Device.org_id == user.org_id)
        .order_by(Capture.captured_at.desc(), Capture.record_id.desc())
        .limit(min(limit, MAX_PAGE) + 1)
    )
    if where.device_id is not None:
        query = query.where(Capture.device_id == where.device_id)
    if where.since is not None:
        query = query.where(Capture.captured_at >= where.since)
    if where.until is not None:
        query = query.where(Capture.captured_at < where.until)
    if where.alert is True:
        query = query.where(alert.is_(True))
    elif where.alert is False:
        query = query.where(sa.func.coalesce(alert, sa.false()).is_(False))
    if cursor is not None:
        captured_at, record_id = decode_cursor(cursor, RECORD_ID)
        query = query.where(
            sa.tuple_(Capture.captured_at, Capture.record_id) < sa.tuple_(captured_at, record_id)
        )
    rows = list(await session.scalars(query))
    page = rows[: min(limit, MAX_PAGE)]
    next_cursor = (
        encode_cursor(page[-1].captured_at, page[-1].record_id) if len(rows) > len(page) else None
    )
    return page, next_cursor


async def org_capture(session: AsyncSession, user: User, record_id: str) -> Capture:
    """One capture of the user's org; 404 for a malformed id or another org's capture."""
    if not RECORD_ID.fullmatch(record_id):
        raise ApiError(404, "capture not found")
    capture = await session.scalar(
        sa.select(Capture)
        .join(Device, Device.device_id == Capture.device_id)
        .where(Capture.record_id == record_id, Device.org_id == user.org_id)
    )
    if capture is None:
        raise ApiError(404, "capture not found")
    return capture


async def delete_captures_received_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[str]:
    """Delete up to `limit` captures received before `cutoff` (rows other instances hold are
    skipped); returns their snapshot keys. The caller commits."""
    expired = (
        sa.select(Capture.record_id)
        .where(Capture.received_at < cutoff)
        .order_by(Capture.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        sa.delete(Capture).where(Capture.record_id.in_(expired)).returning(Capture.snapshot_key)
    )
    return list(result.scalars())


async def keys_without_capture(session: AsyncSession, keys: list[str]) -> list[str]:
    """The keys among `keys` that no capture row names (orphaned snapshot files)."""
    if not keys:
        return []
    known = await session.scalars(
        sa.select(Capture.snapshot_key).where(Capture.snapshot_key.in_(keys))
    )
    named = set(known)
    return [key for key in keys if key not in named]

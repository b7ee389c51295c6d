"""What the console's pages read: the fleet page in one query per page, keyset-paged."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from cloud.core.cursors import decode_cursor, encode_cursor
from cloud.core.ids import DEVICE_ID
from cloud.hub.presence import is_connected
from cloud.models import OPEN_TRIGGER_STATUSES, Capture, Device, DeviceStatus, Trigger

STATUS_FILTERS = ("online", "offline", "suspended")


@dataclass(frozen=True)
class FleetRow:
    device: Device
    online: bool
    last_capture_id: str | None
    last_capture_at: datetime | None
    open_triggers: int


def _fleet_query(org_id: uuid.UUID, keepalive_seconds: float) -> sa.Select[Any]:
    """Devices with presence, latest capture and open-trigger count: lateral lookups by index,
    only for the rows of the page (no query per device)."""
    latest = (
        sa.select(Capture.record_id, Capture.captured_at)
        .where(Capture.device_id == Device.device_id)
        .order_by(Capture.captured_at.desc(), Capture.record_id.desc())
        .limit(1)
        .lateral("latest")
    )
    open_triggers = (
        sa.select(sa.func.count())
        .where(
            Trigger.device_id == Device.device_id,
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at > sa.func.now(),
        )
        .scalar_subquery()
    )
    online = is_connected(keepalive_seconds)
    return (
        sa.select(
            Device,
            online.label("online"),
            latest.c.record_id,
            latest.c.captured_at,
            open_triggers.label("open_triggers"),
        )
        .outerjoin(latest, sa.true())
        .where(Device.org_id == org_id, Device.deleted_at.is_(None))
        .options(defer(Device.reported_config))
    )


def _rows(result: sa.Result[Any]) -> list[FleetRow]:
    return [FleetRow(row[0], bool(row[1]), row[2], row[3], int(row[4] or 0)) for row in result]


def _search_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def fleet_page(
    session: AsyncSession,
    org_id: uuid.UUID,
    keepalive_seconds: float,
    *,
    status: str | None,
    search: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[FleetRow], str | None]:
    """One page of the org's devices in registration order, and the next page's cursor."""
    query = _fleet_query(org_id, keepalive_seconds)
    online = is_connected(keepalive_seconds)
    if status == "online":
        query = query.where(online)
    elif status == "offline":
        query = query.where(~online)
    elif status == "suspended":
        query = query.where(Device.status != DeviceStatus.ACTIVE)
    if search:
        pattern = _search_pattern(search)
        query = query.where(
            Device.friendly_name.ilike(pattern, escape="\\")
            | Device.device_id.ilike(pattern, escape="\\")
        )
    if cursor is not None:
        created_at, device_id = decode_cursor(cursor, DEVICE_ID)
        query = query.where(
            sa.tuple_(Device.created_at, Device.device_id) > (created_at, device_id)
        )
    query = query.order_by(Device.created_at, Device.device_id).limit(limit + 1)
    rows = _rows(await session.execute(query))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1].device
        next_cursor = encode_cursor(last.created_at, last.device_id)
    return rows[:limit], next_cursor


async def fleet_rows(
    session: AsyncSession, org_id: uuid.UUID, keepalive_seconds: float, device_ids: Sequence[str]
) -> list[FleetRow]:
    """The rows of these devices (a page refreshing what changed), in registration order."""
    query = (
        _fleet_query(org_id, keepalive_seconds)
        .where(Device.device_id.in_(list(device_ids)))
        .order_by(Device.created_at, Device.device_id)
    )
    return _rows(await session.execute(query))

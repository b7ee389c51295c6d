"""Trigger creation: the row and its NOTIFY in one transaction (DESIGN §4, §5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.models import Trigger, TriggerStatus, TriggerType
from cloud.security import new_trigger_id
from cloud.services.commands import capture_envelope, notify_command


async def create_trigger(
    session: AsyncSession,
    device_id: str,
    trigger_type: TriggerType,
    ttl: timedelta,
    *,
    label: str | None = None,
    scheduled_at: datetime | None = None,
    requested_by: uuid.UUID | None = None,
) -> Trigger:
    """Store a pending trigger and announce it; the caller commits (which sends the NOTIFY)."""
    now = datetime.now(UTC)
    trigger = Trigger(
        trigger_id=new_trigger_id(),
        device_id=device_id,
        trigger_type=trigger_type,
        trigger_label=label,
        status=TriggerStatus.PENDING,
        scheduled_at=scheduled_at or now,
        created_at=now,
        expires_at=now + ttl,
        requested_by_user_id=requested_by,
    )
    session.add(trigger)
    await session.flush()
    await notify_command(session, device_id, capture_envelope(trigger))
    return trigger

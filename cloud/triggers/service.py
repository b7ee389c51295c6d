"""Trigger operations: creation with its NOTIFY, manual requests, listing, cancel, failure, expiry.

Lifecycle: pending -> sent -> executed | failed | expired; docs/architecture.md has the rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.cursors import decode_cursor, encode_cursor
from cloud.core.errors import ApiError
from cloud.core.ids import TRIGGER_ID, new_trigger_id
from cloud.events.notify import EVENTS_CHANNEL, EventKind, emit, trigger_event_sql
from cloud.hub.envelopes import capture_envelope, notify_command
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Device,
    Trigger,
    TriggerStatus,
    TriggerType,
    User,
)

CANCELLED_ERROR = "cancelled by user"


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


@dataclass(frozen=True)
class TriggerFilter:
    device_id: str | None = None
    status: TriggerStatus | None = None
    trigger_type: TriggerType | None = None
    since: datetime | None = None
    until: datetime | None = None


def _org_triggers(user: User) -> sa.Select[tuple[Trigger]]:
    return (
        sa.select(Trigger)
        .join(Device, Device.device_id == Trigger.device_id)
        .where(Device.org_id == user.org_id)
    )


async def list_triggers(
    session: AsyncSession, user: User, where: TriggerFilter, limit: int, cursor: str | None
) -> tuple[list[Trigger], str | None]:
    """The org's triggers, newest first, one page; the cursor of the next page or None."""
    query = _org_triggers(user)
    if where.device_id is not None:
        query = query.where(Trigger.device_id == where.device_id)
    if where.status is not None:
        query = query.where(Trigger.status == where.status)
    if where.trigger_type is not None:
        query = query.where(Trigger.trigger_type == where.trigger_type)
    if where.since is not None:
        query = query.where(Trigger.created_at >= where.since)
    if where.until is not None:
        query = query.where(Trigger.created_at < where.until)
    if cursor is not None:
        moment, trigger_id = decode_cursor(cursor, TRIGGER_ID)
        query = query.where(
            sa.tuple_(Trigger.created_at, Trigger.trigger_id) < (moment, trigger_id)
        )
    query = query.order_by(Trigger.created_at.desc(), Trigger.trigger_id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    next_cursor = (
        encode_cursor(rows[limit - 1].created_at, rows[limit - 1].trigger_id)
        if len(rows) > limit
        else None
    )
    return rows[:limit], next_cursor


async def org_trigger(session: AsyncSession, user: User, trigger_id: str) -> Trigger:
    if not TRIGGER_ID.fullmatch(trigger_id):  # checked before it reaches SQL
        raise ApiError(404, "trigger not found")
    trigger = await session.scalar(_org_triggers(user).where(Trigger.trigger_id == trigger_id))
    if trigger is None:
        raise ApiError(404, "trigger not found")
    return trigger


async def finish_open_trigger(session: AsyncSession, trigger: Trigger, error: str) -> Trigger:
    """Mark an open trigger failed with `error`; 409 when it is already terminal."""
    finished = await session.scalar(
        sa.update(Trigger)
        .where(Trigger.trigger_id == trigger.trigger_id, Trigger.status.in_(OPEN_TRIGGER_STATUSES))
        .values(status=TriggerStatus.FAILED, error=error, finished_at=sa.func.now())
        .returning(Trigger.trigger_id)
    )
    if finished is None:
        await session.refresh(trigger)
        raise ApiError(409, f"trigger is already {trigger.status.value}")
    await session.refresh(trigger)
    org_id = await session.scalar(
        sa.select(Device.org_id).where(Device.device_id == trigger.device_id)
    )
    if org_id is not None:
        await emit(
            session,
            org_id,
            EventKind.TRIGGER,
            trigger.device_id,
            trigger_id=trigger.trigger_id,
            status=trigger.status.value,
        )
    return trigger


async def device_trigger(session: AsyncSession, device_id: str, trigger_id: str) -> Trigger:
    trigger = await session.get(Trigger, trigger_id)
    if trigger is None or trigger.device_id != device_id:
        raise ApiError(404, "trigger not found")
    return trigger


# Expired rows are announced to the console in the same statement.
_EXPIRE = sa.text(
    "WITH expired AS (UPDATE scheduled_triggers SET status = 'expired', finished_at = now() "
    "WHERE status IN ('pending', 'sent') AND expires_at < now() "
    "RETURNING trigger_id, device_id) "
    "SELECT count(*), count("
    + trigger_event_sql("d.org_id", "expired.device_id", "expired.trigger_id", "'expired'")
    + ") FROM expired JOIN devices AS d ON d.device_id = expired.device_id"
)


async def expire_overdue_triggers(session: AsyncSession) -> int:
    """Close every open trigger past its expiry; idempotent, so instances may race freely."""
    expired, _ = (await session.execute(_EXPIRE, {"events": EVENTS_CHANNEL})).one()
    return int(expired)


async def delete_terminal_triggers_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> int:
    """Delete up to `limit` terminal triggers finished before `cutoff`; the caller commits.

    Their captures stay (the capture's `trigger_id` becomes NULL); other instances' batches
    are skipped, not waited for.
    """
    old = (
        sa.select(Trigger.trigger_id)
        .where(
            Trigger.status.not_in(OPEN_TRIGGER_STATUSES),
            sa.func.coalesce(Trigger.finished_at, Trigger.created_at) < cutoff,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(sa.delete(Trigger).where(Trigger.trigger_id.in_(old)))
    return result.rowcount or 0

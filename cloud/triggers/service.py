"""Trigger operations: creation with its NOTIFY, manual requests, listing, cancel, failure, expiry.

Lifecycle: pending -> sent -> executed | failed | expired; docs/architecture.md has the rules.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.accounts.audit import AuditAction
from cloud.auth.actor import Actor
from cloud.core.config import Settings
from cloud.core.cursors import decode_cursor, encode_cursor
from cloud.core.db import driver_statements
from cloud.core.errors import ApiError
from cloud.core.ids import TRIGGER_ID, new_trigger_id
from cloud.events.notify import EVENTS_CHANNEL, EventKind, emit, event_payload, trigger_event_sql
from cloud.hub.envelopes import (
    COMMANDS_CHANNEL,
    INSTANCE_CHANNEL_PREFIX,
    capture_envelope,
    command_message,
    notify_command,
)
from cloud.hub.presence import presence_window
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Device,
    Trigger,
    TriggerStatus,
    TriggerType,
    User,
)

CANCELLED_ERROR = "cancelled by user"
MANUAL_CAP_LOCK = 0x7653  # advisory lock namespace ("vS") of the per-device manual-trigger cap


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


@dataclass(frozen=True)
class ManualTrigger:
    """A stored manual trigger: its envelope, and the live instance holding the device's
    stream when it was stored (None: offline)."""

    trigger_id: str
    envelope: dict[str, Any]
    instance_id: str | None


# One statement (migration 0008_manual_trigger_function has the function and its rules): the
# per-device cap lock, the device checked to be the caller's org's, the live instance holding
# its stream read FOR SHARE (a stream opening elsewhere waits for our commit, so its backlog
# has the trigger and routing the NOTIFY to the holder read here cannot miss a moved stream),
# then the cap, the INSERT, the command's NOTIFY, the console's event and the audit entry.
# On the driver connection: asyncpg keeps it prepared, and SQLAlchemy's compile and result
# layers cost more than the SQL.
_MANUAL_TRIGGER = (
    "SELECT found, instance_id, open_count, first_expiry, stored FROM visant_manual_trigger("
    + ", ".join(f"${n}" for n in range(1, 21))
    + ")"
)


async def request_manual_trigger(
    session: AsyncSession,
    settings: Settings,
    user: User | Actor,
    device_id: str,
    label: str | None,
    ttl_seconds: int | None,
    *,
    this_instance: str | None = None,
    trigger_id: str | None = None,
) -> ManualTrigger:
    """Store a manual trigger, its NOTIFY and its audit entry in one statement, no ORM.

    The statement commits by itself when the session has no transaction open (one round
    trip); inside one, the caller's commit ends it. Either way the caller calls commit before
    it hands the command over. 404 when the device is not the user's org's; 429 over the
    open-manual cap. A per-device advisory lock (held to commit) keeps concurrent requests
    from passing the cap together; not a row lock: the hub's heartbeat updates
    `devices.last_seen_at` of every connected device, and trigger requests must not queue
    behind it. The NOTIFY goes to the holder's own channel; when the holder is
    `this_instance` none is sent at all, since the caller hands the command to the stream
    itself (CommandHub.hand_over). `trigger_id`: the id to store (a caller that waits for the
    delivery registers it first); a new one by default.
    """
    now = datetime.now(UTC)
    ttl = timedelta(seconds=ttl_seconds or settings.manual_trigger_ttl_seconds)
    trigger = Trigger(
        trigger_id=trigger_id or new_trigger_id(),
        device_id=device_id,
        trigger_type=TriggerType.MANUAL,
        trigger_label=label,
        scheduled_at=now,
        created_at=now,
        expires_at=now + ttl,
    )
    envelope = capture_envelope(trigger)
    connection = await session.connection()
    async with driver_statements(connection, begin=False) as driver:
        found, instance_id, open_count, first_expiry, stored = await driver.fetchrow(
            _MANUAL_TRIGGER,
            MANUAL_CAP_LOCK,
            device_id,
            user.org_id,
            presence_window(settings.keepalive_seconds),
            this_instance,
            trigger.trigger_id,
            label,
            now,
            trigger.expires_at,
            user.user_id,
            settings.max_open_manual_triggers,
            INSTANCE_CHANNEL_PREFIX,
            COMMANDS_CHANNEL,
            command_message(device_id, envelope, reply_to=this_instance),
            EVENTS_CHANNEL,
            event_payload(
                user.org_id,
                EventKind.TRIGGER,
                device_id,
                trigger_id=trigger.trigger_id,
                status=TriggerStatus.PENDING.value,
            ),
            uuid.uuid4(),
            user.email,
            str(AuditAction.MANUAL_TRIGGER),
            json.dumps({"trigger_id": trigger.trigger_id}),
        )
    if not found:
        raise ApiError(404, "device not found")
    if not stored:
        wait = max(1, math.ceil((first_expiry - datetime.now(UTC)).total_seconds()))
        raise ApiError(
            429,
            f"device has {open_count} open manual triggers (limit "
            f"{settings.max_open_manual_triggers})",
            {"Retry-After": str(wait)},
        )
    return ManualTrigger(trigger.trigger_id, envelope, instance_id)


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

"""One scheduler batch: claim due devices, create their triggers, advance their schedules.

Set-based on purpose (thousands of triggers/s per instance): one claiming SELECT, one
UPDATE closing overdue scheduled triggers, one INSERT ... SELECT FROM unnest for the triggers,
one SELECT pg_notify(...) FROM unnest for their announcements, one UPDATE for the devices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.ids import new_trigger_id
from cloud.hub.envelopes import COMMANDS_CHANNEL, capture_envelope, command_message
from cloud.hub.presence import is_connected
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    TIMESTAMP,
    Device,
    DeviceStatus,
    Trigger,
    TriggerStatus,
    TriggerType,
)
from cloud.scheduling.slots import due_slots, schedule_of

logger = logging.getLogger(__name__)

INTERVAL_LABEL = "scheduled_interval"
CRON_LABEL = "scheduled_cron"

_EXPIRE_OVERDUE = sa.text(
    """
    UPDATE scheduled_triggers SET status = 'expired', finished_at = :now
    WHERE device_id = ANY(CAST(:device_ids AS varchar[]))
      AND trigger_type = 'scheduled' AND status IN ('pending', 'sent') AND expires_at <= :now
    """
)
_INSERT_TRIGGERS = sa.text(
    """
    INSERT INTO scheduled_triggers
        (trigger_id, device_id, trigger_type, trigger_label, status,
         scheduled_at, created_at, expires_at)
    SELECT t.trigger_id, t.device_id, 'scheduled', t.label, 'pending', t.slot, :now, t.expires_at
    FROM unnest(CAST(:trigger_ids AS varchar[]), CAST(:device_ids AS varchar[]),
                CAST(:labels AS varchar[]), CAST(:slots AS timestamptz[]),
                CAST(:expires AS timestamptz[]))
         AS t(trigger_id, device_id, label, slot, expires_at)
    ON CONFLICT (device_id, scheduled_at) WHERE trigger_type = 'scheduled' DO NOTHING
    RETURNING trigger_id
    """
)
_NOTIFY = sa.text(
    "SELECT count(pg_notify(:channel, m)) FROM unnest(CAST(:messages AS text[])) AS m"
)
_ADVANCE_DEVICES = sa.text(
    """
    UPDATE devices AS d
    SET next_trigger_at = v.next_at,
        skipped_slots = d.skipped_slots + v.skipped,
        last_slot_at = COALESCE(v.last_slot, d.last_slot_at)
    FROM unnest(CAST(:device_ids AS varchar[]), CAST(:next_at AS timestamptz[]),
                CAST(:skipped AS bigint[]), CAST(:last_slot AS timestamptz[]))
         AS v(device_id, next_at, skipped, last_slot)
    WHERE d.device_id = v.device_id
    """
)


@dataclass
class BatchResult:
    """What one batch did."""

    claimed: int = 0
    triggered: int = 0
    skipped: int = 0


@dataclass
class _Plan:
    device_id: str
    next_at: datetime | None
    skipped: int
    last_slot: datetime | None
    trigger: Trigger | None


def _claim_statement(now: datetime | None, keepalive_seconds: float, limit: int) -> sa.Select:
    now_expr: sa.ColumnElement[Any] = (
        sa.func.now() if now is None else sa.literal(now, type_=TIMESTAMP)
    )
    busy = (
        sa.select(Trigger.trigger_id)
        .where(
            Trigger.device_id == Device.device_id,
            Trigger.trigger_type == TriggerType.SCHEDULED,
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at > now_expr,
        )
        .exists()
    )
    return (
        sa.select(
            Device.device_id,
            Device.config,
            Device.status,
            Device.next_trigger_at,
            is_connected(keepalive_seconds).label("connected"),
            busy.label("busy"),
            now_expr.label("now"),
        )
        # The partial index on next_trigger_at makes this cost the due devices only.
        .where(Device.next_trigger_at <= now_expr)
        .order_by(Device.next_trigger_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Device)
    )


def _plan(row: sa.Row[Any], ttl: timedelta) -> _Plan:
    """Decide one claimed device: trigger its latest due slot or skip; find its next slot."""
    now: datetime = row.now
    try:
        schedule = schedule_of(row.config)
    except ValidationError:
        logger.warning("device %s has an invalid schedule; unscheduled", row.device_id)
        return _Plan(row.device_id, None, 0, None, None)
    due = due_slots(schedule, row.next_trigger_at, now)
    eligible = (
        due.latest is not None
        and row.status == DeviceStatus.ACTIVE
        and row.connected
        and not row.busy
    )
    trigger = None
    if eligible and due.latest is not None and schedule is not None:
        expires_at = now + ttl
        if due.following is not None:
            expires_at = min(expires_at, due.following)  # never alive into the next slot
        trigger = Trigger(
            trigger_id=new_trigger_id(),
            device_id=row.device_id,
            trigger_type=TriggerType.SCHEDULED,
            trigger_label=INTERVAL_LABEL if schedule.interval_seconds else CRON_LABEL,
            status=TriggerStatus.PENDING,
            scheduled_at=due.latest,
            created_at=now,
            expires_at=expires_at,
        )
    skipped = due.count - (1 if trigger is not None else 0)
    return _Plan(row.device_id, due.following, skipped, due.latest, trigger)


def _announcement(trigger: Trigger) -> str:
    """The NOTIFY payload of a new trigger, as `notify_command` writes it."""
    return command_message(trigger.device_id, capture_envelope(trigger))


async def run_batch(
    session: AsyncSession,
    *,
    limit: int,
    keepalive_seconds: float,
    trigger_ttl: timedelta,
    now: datetime | None = None,
) -> BatchResult:
    """Claim up to `limit` due devices and settle their due slots; the caller commits."""
    rows = (await session.execute(_claim_statement(now, keepalive_seconds, limit))).all()
    if not rows:
        return BatchResult()
    moment: datetime = rows[0].now
    plans = [_plan(row, trigger_ttl) for row in rows]
    device_ids = [plan.device_id for plan in plans]
    await session.execute(_EXPIRE_OVERDUE, {"device_ids": device_ids, "now": moment})
    triggers = [plan.trigger for plan in plans if plan.trigger is not None]
    created: set[str] = set()
    if triggers:
        inserted = await session.execute(
            _INSERT_TRIGGERS,
            {
                "now": moment,
                "trigger_ids": [t.trigger_id for t in triggers],
                "device_ids": [t.device_id for t in triggers],
                "labels": [t.trigger_label for t in triggers],
                "slots": [t.scheduled_at for t in triggers],
                "expires": [t.expires_at for t in triggers],
            },
        )
        created = set(inserted.scalars())
        messages = [_announcement(t) for t in triggers if t.trigger_id in created]
        if messages:
            await session.execute(_NOTIFY, {"channel": COMMANDS_CHANNEL, "messages": messages})
        if len(created) != len(triggers):  # the unique slot index refused a duplicate
            logger.warning("%d scheduled slots already had a trigger", len(triggers) - len(created))
    await session.execute(
        _ADVANCE_DEVICES,
        {
            "device_ids": device_ids,
            "next_at": [plan.next_at for plan in plans],
            "skipped": [plan.skipped for plan in plans],
            "last_slot": [plan.last_slot for plan in plans],
        },
    )
    return BatchResult(
        claimed=len(plans), triggered=len(created), skipped=sum(p.skipped for p in plans)
    )

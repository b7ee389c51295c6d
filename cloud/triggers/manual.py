"""A manual trigger request: stored, announced and audited in one statement, its refusals.

The statement (migration 0008_manual_trigger_function has the function and its rules) takes
the per-device cap lock, checks that the device is the caller's org's, reads the live instance
holding its stream FOR SHARE (a stream opening elsewhere waits for our commit, so its backlog
has the trigger, and routing the NOTIFY to the holder read here cannot miss a moved stream),
then counts the cap, INSERTs, NOTIFYs the command and the console's event, and writes the
audit entry. Requests go through ManualTriggerBatcher (batcher.py): no ORM, no session.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.accounts.audit import AuditAction
from cloud.auth.actor import Actor
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import new_trigger_id
from cloud.events.notify import EVENTS_CHANNEL, EventKind, event_payload
from cloud.hub.envelopes import (
    COMMANDS_CHANNEL,
    INSTANCE_CHANNEL_PREFIX,
    capture_envelope_of,
    command_message,
)
from cloud.hub.presence import presence_window
from cloud.models import TriggerStatus, TriggerType, User
from cloud.triggers.batcher import BatchConstants, ManualTriggerBatcher, TriggerAsk

MANUAL_CAP_LOCK = 0x7653  # advisory lock namespace ("vS") of the per-device manual-trigger cap


@dataclass(frozen=True)
class ManualTrigger:
    """A stored manual trigger: its envelope, and the live instance holding the device's
    stream when it was stored (None: offline)."""

    trigger_id: str
    envelope: dict[str, Any]
    instance_id: str | None


def manual_trigger_batcher(
    engine: AsyncEngine, settings: Settings, this_instance: str
) -> ManualTriggerBatcher:
    """The batcher of one instance. The NOTIFY goes to the holder's own channel; when the
    holder is `this_instance` none is sent at all, since the caller hands the command to the
    stream itself (CommandHub.hand_over)."""
    constants = BatchConstants(
        cap_lock=MANUAL_CAP_LOCK,
        presence_window=presence_window(settings.keepalive_seconds),
        this_instance=this_instance,
        cap=settings.max_open_manual_triggers,
        instance_channel_prefix=INSTANCE_CHANNEL_PREFIX,
        shared_channel=COMMANDS_CHANNEL,
        events_channel=EVENTS_CHANNEL,
        audit_action=str(AuditAction.MANUAL_TRIGGER),
    )
    return ManualTriggerBatcher(
        engine,
        constants,
        settings.manual_trigger_batch_connections,
        settings.manual_trigger_batch_max,
    )


async def request_manual_trigger(
    batcher: ManualTriggerBatcher,
    settings: Settings,
    user: User | Actor,
    device_id: str,
    label: str | None,
    ttl_seconds: int | None,
    *,
    trigger_id: str | None = None,
    via: str | None = None,
) -> ManualTrigger:
    """Store a manual trigger (committed when this returns) with its NOTIFY and audit entry.

    404 when the device is not the user's org's; 429 over the open-manual cap (a per-device
    advisory lock keeps concurrent requests from passing it together; not a row lock: the
    hub's heartbeat updates `devices.last_seen_at` of every connected device, and trigger
    requests must not queue behind it). The delivery is confirmed to the batcher's instance;
    `trigger_id`: the id to store (a caller that waits for the delivery registers it first), a
    new one by default; `via`: where the request came from, for the audit entry.
    """
    now = datetime.now(UTC)
    trigger_id = trigger_id or new_trigger_id()
    expires_at = now + timedelta(seconds=ttl_seconds or settings.manual_trigger_ttl_seconds)
    envelope = capture_envelope_of(trigger_id, TriggerType.MANUAL.value, label, now, expires_at)
    details: dict[str, str] = {"trigger_id": trigger_id}
    if via is not None:
        details["via"] = via
    event = event_payload(
        user.org_id,
        EventKind.TRIGGER,
        device_id,
        trigger_id=trigger_id,
        status=TriggerStatus.PENDING.value,
    )
    outcome = await batcher.submit(
        TriggerAsk(
            device_id=device_id,
            org_id=user.org_id,
            trigger_id=trigger_id,
            label=label,
            now=now,
            expires_at=expires_at,
            user_id=user.user_id,
            command_message=command_message(device_id, envelope, reply_to=batcher.instance_id),
            event=event,
            audit_id=uuid.uuid4(),
            actor_email=user.email,
            audit_details=json.dumps(details),
        )
    )
    if not outcome.found:
        raise ApiError(404, "device not found")
    if not outcome.stored:
        assert outcome.first_expiry is not None
        wait = max(1, math.ceil((outcome.first_expiry - datetime.now(UTC)).total_seconds()))
        raise ApiError(
            429,
            f"device has {outcome.open_count} open manual triggers (limit "
            f"{settings.max_open_manual_triggers})",
            {"Retry-After": str(wait)},
        )
    return ManualTrigger(trigger_id, envelope, outcome.instance_id)

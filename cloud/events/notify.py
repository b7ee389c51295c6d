"""The console's change events: their format, and the SQL that announces them.

Every event is a NOTIFY on EVENTS_CHANNEL whose payload is a small JSON object with `org_id`,
`kind`, `device_id` and a few fields of the change. It is sent in the transaction (mostly the
very statement) that makes the change, so a listener hears of a change only once it is
committed, and never of one that was rolled back. It is sent through visant_notify_heard()
(migration 0009_events_when_heard): only while some instance has a console stream open, as a
NOTIFY makes its commit wait for every other NOTIFYing commit. Listeners use an event as a
hint to refresh what they show; the database stays the truth.
"""

from __future__ import annotations

import json
import logging
import uuid
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger(__name__)

EVENTS_CHANNEL = "visant_events"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes and more


class EventKind(StrEnum):
    PRESENCE = "presence"  # online: bool
    TRIGGER = "trigger"  # trigger_id, status, trigger_type?
    CAPTURE = "capture"  # capture_id, trigger_id, alert
    ALERT = "alert"  # alert_id, alert_kind, state
    DEVICE = "device"  # changed: what (config, status, name, key, deleted)


def event_payload(org_id: uuid.UUID | str, kind: EventKind, device_id: str, **fields: Any) -> str:
    """The JSON text of one event."""
    body = {"org_id": str(org_id), "kind": kind.value, "device_id": device_id, **fields}
    return json.dumps(body, separators=(",", ":"), default=str)


def parse_event(payload: str) -> dict[str, Any] | None:
    """An event as sent, or None (logged) for a payload that is not one of ours."""
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("org_id"), str):
        logger.warning("ignoring malformed event payload %.80r", payload)
        return None
    return event


def bounded_payload(org_id: uuid.UUID | str, kind: EventKind, device_id: str, **fields: Any) -> str:
    """The event's JSON text; without its fields when they would pass NOTIFY's limit."""
    payload = event_payload(org_id, kind, device_id, **fields)
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        payload = event_payload(org_id, kind, device_id)
    return payload


async def emit(
    session: AsyncSession, org_id: uuid.UUID, kind: EventKind, device_id: str, **fields: Any
) -> None:
    """Announce a change of the caller's transaction (delivered at its commit)."""
    payload = bounded_payload(org_id, kind, device_id, **fields)
    await session.execute(sa.select(sa.func.visant_notify_heard(EVENTS_CHANNEL, payload)))


# SQL expressions for statements that announce their own rows (`org`, `device` and the field
# values are SQL expressions of that statement; the channel is the bind parameter `:events`,
# or `channel` for a statement sent to the driver).
def presence_event_sql(org: str, device: str, online: bool) -> str:
    return (
        f"visant_notify_heard(:events, json_build_object('org_id', {org}, 'kind', 'presence', "
        f"'device_id', {device}, 'online', {'true' if online else 'false'})::text)"
    )


def trigger_event_sql(
    org: str, device: str, trigger_id: str, status: str, channel: str = ":events"
) -> str:
    return (
        f"visant_notify_heard({channel}, json_build_object('org_id', {org}, 'kind', 'trigger', "
        f"'device_id', {device}, 'trigger_id', {trigger_id}, 'status', {status})::text)"
    )

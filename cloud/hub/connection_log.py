"""Connection history: a row per stream opened or ended, with a short reason code.

Written by the hub through its DeliveryRecorder (one transaction per flush window, never one
per event), read by `GET /v1/devices/{id}/connection`, pruned by retention after
`connection_history_days`. Also owns the "device barred" NOTIFY that
closes a device's stream at once on whichever instance holds it (a deleted device).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.hub import close_reasons
from cloud.models import ConnectionEventKind, DeviceConnectionEvent

BARRED_CHANNEL = "visant_device_barred"

# Close reason (the text a client reads) -> the stable code stored in the history.
_REASON_CODES = {
    close_reasons.REPLACED: "replaced",
    close_reasons.SHUTDOWN: "shutdown",
    close_reasons.KEY_ROTATED: "key_rotated",
    close_reasons.DISCONNECTED: "client_closed",
    close_reasons.TOO_SLOW: "too_slow",
    close_reasons.DELETED: "deleted",
}
SEND_TIMEOUT_CODE = "timeout"  # the stream ended without a close reason: a write timed out


def reason_code(close_reason: str | None) -> str:
    """The history's code for a close reason (`device is suspended` -> `suspended`)."""
    if close_reason is None:
        return SEND_TIMEOUT_CODE
    if close_reason in _REASON_CODES:
        return _REASON_CODES[close_reason]
    prefix = close_reasons.device_not_active("")
    if close_reason.startswith(prefix):
        return close_reason[len(prefix) :]
    return close_reason[:64]


@dataclass(frozen=True)
class ConnectionEvent:
    device_id: str
    event: ConnectionEventKind
    reason: str | None
    instance_id: str
    stream_id: str
    at: datetime


async def record_events(session: AsyncSession, events: Sequence[ConnectionEvent]) -> None:
    """One INSERT for a flush window's events; a device deleted meanwhile is skipped."""
    if not events:
        return
    await session.execute(
        sa.text(
            "INSERT INTO device_connection_events "
            "(device_id, event, reason, instance_id, stream_id, at) "
            "SELECT e.d, e.ev, e.r, e.i, e.s, e.at FROM unnest("
            "CAST(:devices AS text[]), CAST(:kinds AS text[]), CAST(:reasons AS text[]), "
            "CAST(:instances AS text[]), CAST(:streams AS text[]), "
            "CAST(:moments AS timestamptz[])) AS e(d, ev, r, i, s, at) "
            "JOIN devices ON devices.device_id = e.d"
        ),
        {
            "devices": [e.device_id for e in events],
            "kinds": [e.event.value for e in events],
            "reasons": [e.reason for e in events],
            "instances": [e.instance_id for e in events],
            "streams": [e.stream_id for e in events],
            "moments": [e.at for e in events],
        },
    )


async def connection_history(
    session: AsyncSession, device_id: str, limit: int
) -> Sequence[DeviceConnectionEvent]:
    """The device's latest connection events, newest first."""
    return list(
        await session.scalars(
            sa.select(DeviceConnectionEvent)
            .where(DeviceConnectionEvent.device_id == device_id)
            .order_by(DeviceConnectionEvent.at.desc(), DeviceConnectionEvent.event_id.desc())
            .limit(limit)
        )
    )


def barred_message(device_id: str, reason: str) -> str:
    return json.dumps({"device_id": device_id, "reason": reason})


def parse_barred_message(payload: str) -> tuple[str, str]:
    message = json.loads(payload)
    return message["device_id"], message["reason"]


async def notify_barred(session: AsyncSession, device_id: str, reason: str) -> None:
    """Close the device's stream wherever it is, once the caller's transaction commits."""
    await session.execute(
        sa.select(sa.func.pg_notify(BARRED_CHANNEL, barred_message(device_id, reason)))
    )


async def delete_connection_events_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> int:
    """Delete up to `limit` history rows older than `cutoff`; the caller commits."""
    old = (
        sa.select(DeviceConnectionEvent.event_id)
        .where(DeviceConnectionEvent.at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        sa.delete(DeviceConnectionEvent).where(DeviceConnectionEvent.event_id.in_(old))
    )
    return result.rowcount or 0

"""Delivery bookkeeping: backlog on connect, sent marks, presence rows (DESIGN §4, §5)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Device,
    DeviceConnection,
    DeviceStatus,
    ServerInstance,
    Trigger,
    TriggerStatus,
)
from cloud.services.commands import capture_envelope, config_envelope

PRESENCE_CHANNEL = "visant_presence"
DELIVERED_CHANNEL = "visant_delivered"
DELIVERED_IDS_PER_NOTIFY = 150  # 150 ids x ~37 bytes stays under the 8000-byte NOTIFY limit

_TEXT_ARRAY = ARRAY(sa.Text)
_TIME_ARRAY = ARRAY(sa.DateTime(timezone=True))


def _ids(values: Sequence[str]) -> sa.BindParameter[list[str]]:
    return sa.bindparam(None, list(values), type_=_TEXT_ARRAY)


def needs_config(device: Device) -> bool:
    """True when the device has not acknowledged its desired config version."""
    reported = device.reported_config_version
    return reported is None or reported < device.config_version


async def backlog_envelopes(session: AsyncSession, device: Device) -> list[dict[str, Any]]:
    """What a (re)connecting device is owed, in order: unacked config, then open triggers."""
    envelopes: list[dict[str, Any]] = []
    if needs_config(device):
        envelopes.append(config_envelope(device))
    triggers = await open_triggers_for(session, [device.device_id])
    envelopes.extend(capture_envelope(trigger) for trigger in triggers)
    return envelopes


async def open_triggers_for(session: AsyncSession, device_ids: Sequence[str]) -> list[Trigger]:
    """Open, unexpired triggers of these devices, oldest first."""
    result = await session.scalars(
        sa.select(Trigger)
        .where(
            Trigger.device_id == sa.any_(_ids(device_ids)),
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at > sa.func.now(),
        )
        .order_by(Trigger.created_at, Trigger.trigger_id)
    )
    return list(result)


async def devices_owed_config(session: AsyncSession, device_ids: Sequence[str]) -> list[Device]:
    result = await session.scalars(
        sa.select(Device).where(
            Device.device_id == sa.any_(_ids(device_ids)),
            sa.or_(
                Device.reported_config_version.is_(None),
                Device.reported_config_version < Device.config_version,
            ),
        )
    )
    return list(result)


async def mark_sent(session: AsyncSession, written: Sequence[tuple[str, datetime]]) -> None:
    """Record when each trigger was written to a stream; a terminal trigger stays terminal."""
    if not written:
        return
    ids = [trigger_id for trigger_id, _ in written]
    moments = [moment for _, moment in written]
    await session.execute(
        sa.text(
            "UPDATE scheduled_triggers AS t SET status = :sent, sent_at = w.at "
            "FROM unnest(:ids, :moments) AS w(id, at) "
            "WHERE t.trigger_id = w.id AND t.status = :pending"
        ).bindparams(
            sa.bindparam("ids", type_=_TEXT_ARRAY),
            sa.bindparam("moments", type_=_TIME_ARRAY),
        ),
        {
            "ids": ids,
            "moments": moments,
            "sent": TriggerStatus.SENT.value,
            "pending": TriggerStatus.PENDING.value,
        },
    )


async def notify_delivered(session: AsyncSession, trigger_ids: Sequence[str]) -> None:
    """Tell every instance these triggers reached a stream (their API callers may be waiting)."""
    for start in range(0, len(trigger_ids), DELIVERED_IDS_PER_NOTIFY):
        chunk = ",".join(trigger_ids[start : start + DELIVERED_IDS_PER_NOTIFY])
        await session.execute(sa.select(sa.func.pg_notify(DELIVERED_CHANNEL, chunk)))


async def claim_presence(
    session: AsyncSession, device_id: str, instance_id: str, stream_id: str
) -> float:
    """Make this stream the device's live one and tell older streams elsewhere to close.

    Returns the claim's database time (epoch seconds): a later claim wins, whatever order the
    notifications arrive in.
    """
    claimed_at = await session.scalar(sa.select(sa.func.clock_timestamp()))
    assert claimed_at is not None
    statement = insert(DeviceConnection).values(
        device_id=device_id, instance_id=instance_id, stream_id=stream_id, connected_at=claimed_at
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[DeviceConnection.device_id],
            set_={
                "instance_id": statement.excluded.instance_id,
                "stream_id": statement.excluded.stream_id,
                "connected_at": statement.excluded.connected_at,
            },
        )
    )
    await session.execute(
        sa.update(Device).where(Device.device_id == device_id).values(last_seen_at=claimed_at)
    )
    message = json.dumps(
        {
            "device_id": device_id,
            "stream_id": stream_id,
            "instance_id": instance_id,
            "claimed_at": claimed_at.timestamp(),
        }
    )
    await session.execute(sa.select(sa.func.pg_notify(PRESENCE_CHANNEL, message)))
    return claimed_at.timestamp()


async def release_presence(session: AsyncSession, streams: Sequence[tuple[str, str]]) -> None:
    """Forget ended streams (device_id, stream_id) unless a newer stream took over."""
    if not streams:
        return
    await session.execute(
        sa.text(
            "DELETE FROM device_connections AS c USING unnest(:devices, :streams) AS s(d, st) "
            "WHERE c.device_id = s.d AND c.stream_id = s.st"
        ).bindparams(
            sa.bindparam("devices", type_=_TEXT_ARRAY),
            sa.bindparam("streams", type_=_TEXT_ARRAY),
        ),
        {"devices": [d for d, _ in streams], "streams": [s for _, s in streams]},
    )
    await session.execute(
        sa.update(Device)
        .where(Device.device_id.in_({d for d, _ in streams}))
        .values(last_seen_at=sa.func.now())
    )


async def register_instance(
    session: AsyncSession, instance_id: str, hostname: str, pid: int
) -> None:
    statement = insert(ServerInstance).values(instance_id=instance_id, hostname=hostname, pid=pid)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ServerInstance.instance_id], set_={"heartbeat_at": sa.func.now()}
        )
    )


async def heartbeat(session: AsyncSession, instance_id: str) -> bool:
    """Refresh this instance's heartbeat; False when its row was reaped meanwhile."""
    result = await session.execute(
        sa.update(ServerInstance)
        .where(ServerInstance.instance_id == instance_id)
        .values(heartbeat_at=sa.func.now())
    )
    return result.rowcount > 0  # type: ignore[attr-defined]


async def touch_devices(
    session: AsyncSession, streams: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """Set last_seen_at of these connected (device_id, key_hash) to now; returns {device_id:
    reason} for those that may no longer stream (suspended, inactive or key rotated since)."""
    rows = await session.execute(
        sa.text(
            "WITH touched AS (UPDATE devices AS d SET last_seen_at = now() "
            "FROM unnest(:ids, :hashes) AS s(id, key_hash) WHERE d.device_id = s.id "
            "RETURNING d.device_id, d.status, d.key_hash <> s.key_hash AS rotated) "
            "SELECT device_id, status, rotated FROM touched WHERE status <> :active OR rotated"
        ).bindparams(
            sa.bindparam("ids", type_=_TEXT_ARRAY), sa.bindparam("hashes", type_=_TEXT_ARRAY)
        ),
        {
            "ids": [device_id for device_id, _ in streams],
            "hashes": [key_hash for _, key_hash in streams],
            "active": DeviceStatus.ACTIVE.value,
        },
    )
    return {
        device_id: "device key rotated" if rotated else f"device is {status}"
        for device_id, status, rotated in rows
    }


async def restore_presence(
    session: AsyncSession, instance_id: str, streams: Sequence[tuple[str, str]]
) -> None:
    """Re-claim the rows of this instance's live streams (after its instance row was reaped)."""
    for device_id, stream_id in streams:
        statement = insert(DeviceConnection).values(
            device_id=device_id, instance_id=instance_id, stream_id=stream_id
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[DeviceConnection.device_id],
                set_={"instance_id": instance_id, "stream_id": stream_id},
            )
        )


async def unregister_instance(session: AsyncSession, instance_id: str) -> None:
    await session.execute(
        sa.delete(ServerInstance).where(ServerInstance.instance_id == instance_id)
    )


async def record_config_ack(
    session: AsyncSession, device: Device, version: int, config: dict[str, Any]
) -> None:
    """Store the config the device reports it applied; an older report never wins."""
    await session.execute(
        sa.update(Device)
        .where(
            Device.device_id == device.device_id,
            sa.or_(
                Device.reported_config_version.is_(None),
                Device.reported_config_version <= version,
            ),
        )
        .values(
            reported_config=config,
            reported_config_version=version,
            reported_config_at=sa.func.now(),
        )
    )

"""Presence: which devices hold a live stream on which live instance, and the instances' rows.

An instance heartbeats every keepalive; one that missed MISSED_HEARTBEATS is dead and its
devices are offline. A stream's presence row names the instance and stream that hold it; a
newer stream elsewhere takes the row over and the older instance is told on PRESENCE_CHANNEL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.events.notify import EVENTS_CHANNEL, presence_event_sql
from cloud.hub import close_reasons
from cloud.models import Device, DeviceConnection, DeviceStatus, ServerInstance

_TEXT_ARRAY = ARRAY(sa.Text)

# An instance that missed this many heartbeats is dead; its devices are offline.
MISSED_HEARTBEATS = 2


def presence_window(keepalive_seconds: float) -> timedelta:
    return timedelta(seconds=keepalive_seconds * MISSED_HEARTBEATS)


def is_connected(keepalive_seconds: float) -> sa.ColumnElement[bool]:
    """SQL condition, correlated to `Device`: the device has a stream on a live instance."""
    fresh_since = sa.func.now() - presence_window(keepalive_seconds)
    return (
        sa.select(DeviceConnection.device_id)
        .join(ServerInstance, ServerInstance.instance_id == DeviceConnection.instance_id)
        .where(
            DeviceConnection.device_id == Device.device_id,
            ServerInstance.heartbeat_at > fresh_since,
        )
        .exists()
    )


async def connected_devices_of_org(
    session: AsyncSession, org_id: uuid.UUID, keepalive_seconds: float
) -> Sequence[sa.Row]:
    """(device_id, friendly_name, instance_id, connected_at) of the org's streaming devices."""
    result = await session.execute(
        sa.select(
            Device.device_id,
            Device.friendly_name,
            DeviceConnection.instance_id,
            DeviceConnection.connected_at,
        )
        .join(DeviceConnection, DeviceConnection.device_id == Device.device_id)
        .where(Device.org_id == org_id, is_connected(keepalive_seconds))
        .order_by(Device.device_id)
    )
    return result.all()


async def forget_dead_instances(session: AsyncSession, keepalive_seconds: float) -> int:
    """Delete instances that missed their heartbeats; their device connections go with them."""
    result = await session.execute(
        sa.delete(ServerInstance).where(
            ServerInstance.heartbeat_at < sa.func.now() - presence_window(keepalive_seconds)
        )
    )
    return result.rowcount  # type: ignore[attr-defined]


PRESENCE_CHANNEL = "visant_presence"


# One statement for a batch of opens: each claim's database time, the presence rows,
# last_seen_at, the NOTIFY per device telling an older stream elsewhere to close and the
# console's "online" events. Rows are claimed in device order, so concurrent batches on two
# instances cannot deadlock.
_CLAIM = sa.text(
    f"""
    WITH moment AS (SELECT clock_timestamp() AS at),
    asked AS (SELECT * FROM unnest(:devices, :streams) AS a(device_id, stream_id)),
    claim AS (
        INSERT INTO device_connections (device_id, instance_id, stream_id, connected_at)
        SELECT asked.device_id, CAST(:instance_id AS text), asked.stream_id, moment.at
        FROM asked, moment ORDER BY asked.device_id
        ON CONFLICT (device_id) DO UPDATE SET instance_id = excluded.instance_id,
            stream_id = excluded.stream_id, connected_at = excluded.connected_at
        RETURNING device_id, stream_id, connected_at),
    seen AS (
        UPDATE devices SET last_seen_at = (SELECT at FROM moment)
        FROM asked WHERE devices.device_id = asked.device_id
        RETURNING devices.device_id, devices.org_id)
    SELECT claim.device_id, claim.connected_at,
           pg_notify(:channel, json_build_object(
               'device_id', claim.device_id, 'stream_id', claim.stream_id,
               'instance_id', CAST(:instance_id AS text),
               'claimed_at', extract(epoch FROM claim.connected_at))::text),
           {presence_event_sql("seen.org_id", "claim.device_id", online=True)}
    FROM claim LEFT JOIN seen ON seen.device_id = claim.device_id
    """
).bindparams(sa.bindparam("devices", type_=_TEXT_ARRAY), sa.bindparam("streams", type_=_TEXT_ARRAY))


async def claim_presence(
    session: AsyncSession, instance_id: str, streams: Sequence[tuple[str, str]]
) -> dict[str, float]:
    """Make these (device_id, stream_id) the devices' live streams; tell older ones to close.

    Returns each claim's database time (epoch seconds): a later claim wins, whatever order the
    notifications arrive in. The upsert waits for a trigger request that read the old row FOR
    SHARE, so a backlog read after this claim sees every command routed to the old holder.
    Device ids must be distinct.
    """
    rows = await session.execute(
        _CLAIM,
        {
            "devices": [device_id for device_id, _ in streams],
            "streams": [stream_id for _, stream_id in streams],
            "instance_id": instance_id,
            "channel": PRESENCE_CHANNEL,
            "events": EVENTS_CHANNEL,
        },
    )
    return {device_id: claimed_at.timestamp() for device_id, claimed_at, _, _ in rows}


# The rows deleted are the devices now offline: each is announced to the console.
_RELEASE = sa.text(
    "WITH gone AS (DELETE FROM device_connections AS c "
    "USING unnest(:devices, :streams) AS s(d, st) "
    "WHERE c.device_id = s.d AND c.stream_id = s.st RETURNING c.device_id) "
    f"SELECT count({presence_event_sql('d.org_id', 'd.device_id', online=False)}) "
    "FROM gone JOIN devices AS d ON d.device_id = gone.device_id"
)


async def release_presence(session: AsyncSession, streams: Sequence[tuple[str, str]]) -> None:
    """Forget ended streams (device_id, stream_id) unless a newer stream took over."""
    if not streams:
        return
    await session.execute(
        _RELEASE.bindparams(
            sa.bindparam("devices", type_=_TEXT_ARRAY),
            sa.bindparam("streams", type_=_TEXT_ARRAY),
        ),
        {
            "devices": [d for d, _ in streams],
            "streams": [s for _, s in streams],
            "events": EVENTS_CHANNEL,
        },
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
        device_id: close_reasons.KEY_ROTATED if rotated else close_reasons.device_not_active(status)
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

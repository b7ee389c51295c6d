"""Presence: which devices hold a live stream on a live instance (DESIGN §5)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from cloud.models import Device, DeviceConnection, ServerInstance

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

"""Admitting an upload: the device's key checked and the upload counted, in one statement."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.service import checked_secret
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID
from cloud.core.security import DEVICE_KEY_PREFIX, hash_secret
from cloud.limits.counters import Limit, too_many
from cloud.models import Device, DeviceStatus


def upload_limit(settings: Settings) -> Limit:
    return Limit("uploads", settings.uploads_per_device_per_minute, 60)


# Authenticate the key and count the upload in one statement on the driver connection (asyncpg
# keeps it prepared): the counter moves only for the key's own, active device, as before.
_AUTHENTICATE_AND_COUNT = """
    WITH d AS (
        SELECT device_id, org_id, status, config, friendly_name FROM devices
        WHERE key_hash = $1),
    counted AS (
        INSERT INTO rate_counters (key, window_start, count, expires_at)
        SELECT $3, $4, 1, $5 FROM d WHERE d.device_id = $2 AND d.status = 'active'
        ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + 1
        RETURNING count)
    SELECT d.device_id, d.org_id, d.status, d.config, d.friendly_name,
           (SELECT count FROM counted) AS count
    FROM d
"""


async def authenticate_and_count(
    session: AsyncSession, settings: Settings, device_id: str, device_key: str | None
) -> Device:
    """The device whose key was presented, counted against its upload limit.

    The same answers as authenticate_device (404 malformed id, 401 wrong or another
    device's key, 403 not active) followed by 429 over the limit.
    """
    if not DEVICE_ID.match(device_id):
        raise ApiError(404, "device not found")
    key = checked_secret(device_key, DEVICE_KEY_PREFIX)
    limit = upload_limit(settings)
    now = datetime.now(UTC)
    start, end = limit.window_of(now)
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    row = await driver.fetchrow(
        _AUTHENTICATE_AND_COUNT,
        hash_secret(key, settings.secret_key),
        device_id,
        limit.row_key(device_id),
        start,
        end,
    )
    if row is None or row["device_id"] != device_id:
        raise ApiError(401, "invalid device key", {"WWW-Authenticate": "Bearer"})
    if row["status"] != DeviceStatus.ACTIVE:
        raise ApiError(403, f"device is {row['status']}")
    wait = limit.wait_after(row["count"], now)
    if wait is not None:
        raise too_many("too many uploads from this device", wait)
    config = row["config"]
    # A detached Device (never added to the session) carries what evaluation and alerts read.
    return Device(
        device_id=row["device_id"],
        org_id=row["org_id"],
        status=DeviceStatus(row["status"]),
        config=json.loads(config) if isinstance(config, str) else config,
        friendly_name=row["friendly_name"],
    )

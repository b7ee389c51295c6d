"""A device's key checked and one of its events counted (upload, stream open) in one statement."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud.auth.service import checked_secret
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID
from cloud.core.security import DEVICE_KEY_PREFIX, hash_secret
from cloud.limits.counters import Limit, too_many
from cloud.models import Device, DeviceStatus

# Authenticate the key and count the event in one statement on the driver connection (asyncpg
# keeps it prepared): the counter moves only for the key's own, active device, as when
# authenticate_device and hit ran one after the other. A caller may read more in the same
# statement (AdmissionLookups): columns and LEFT JOINs on `d`, parameters from $6 on.
_AUTHENTICATE_AND_COUNT = """
    WITH d AS (
        SELECT device_id, org_id, status, config, config_version, reported_config_version,
               friendly_name FROM devices
        WHERE key_hash = $1),
    counted AS (
        INSERT INTO rate_counters (key, window_start, count, expires_at)
        SELECT $3, $4, 1, $5 FROM d WHERE d.device_id = $2 AND d.status = 'active'
        ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + 1
        RETURNING count)
    SELECT d.*, (SELECT count FROM counted) AS count{columns}
    FROM d{joins}
"""


@dataclass(frozen=True)
class AdmissionLookups:
    """What a caller reads besides the device in the admission's one round trip."""

    columns: str  # ", x.a AS a, ..." over `d` and the joined tables
    joins: str  # " LEFT JOIN ... ON ..." using parameters $6, $7, ...

    @functools.cached_property
    def sql(self) -> str:
        return _AUTHENTICATE_AND_COUNT.format(columns=self.columns, joins=self.joins)


_NO_LOOKUPS = AdmissionLookups("", "")


async def authenticate_and_count(
    driver: Any,
    settings: Settings,
    device_id: str,
    device_key: str | None,
    limit: Limit,
    refusal: str,
    lookups: AdmissionLookups = _NO_LOOKUPS,
    lookup_args: Sequence[Any] = (),
) -> tuple[Device, Mapping[str, Any]]:
    """The device whose key was presented, its event counted against `limit`, and the row
    with the `lookups` columns: one statement on `driver` (an asyncpg connection), which
    commits alone unless a transaction is open on it.

    The same answers as authenticate_device (404 malformed id, 401 wrong or another
    device's key, 403 not active) followed by 429 `refusal` over the limit. The Device is
    detached (never added to a session) and carries the columns callers read: id, org,
    status, config and its versions (sent, acknowledged), friendly name and key hash.
    """
    if not DEVICE_ID.match(device_id):
        raise ApiError(404, "device not found")
    key = checked_secret(device_key, DEVICE_KEY_PREFIX)
    now = datetime.now(UTC)
    start, end = limit.window_of(now)
    key_hash = hash_secret(key, settings.secret_key)
    row = await driver.fetchrow(
        lookups.sql, key_hash, device_id, limit.row_key(device_id), start, end, *lookup_args
    )
    return admitted_device(row, device_id, key_hash, limit, now, refusal), row


# The same for a batch of stream opens: one row per presented key that matched a device, with
# the asked device id beside it; each asked device is counted at most once (callers pass
# distinct ids). Counter rows are written in device order, so concurrent batches cannot deadlock.
_AUTHENTICATE_AND_COUNT_MANY = """
    WITH asked AS (SELECT * FROM unnest($1::text[], $2::text[]) AS a(device_id, key_hash)),
    d AS (
        SELECT asked.device_id AS asked, devices.device_id, devices.org_id, devices.status,
               devices.config, devices.config_version, devices.reported_config_version,
               devices.friendly_name
        FROM asked JOIN devices ON devices.key_hash = asked.key_hash),
    counted AS (
        INSERT INTO rate_counters (key, window_start, count, expires_at)
        SELECT $3 || d.device_id, $4, 1, $5 FROM d
        WHERE d.device_id = d.asked AND d.status = 'active'
        ORDER BY d.device_id
        ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + 1
        RETURNING key, count)
    SELECT d.*, counted.count FROM d LEFT JOIN counted ON counted.key = $3 || d.device_id
"""


async def authenticate_and_count_many(
    driver: Any,
    settings: Settings,
    presented: Sequence[tuple[str, str]],
    limit: Limit,
    refusal: str,
) -> dict[str, Device | ApiError]:
    """authenticate_and_count for many (device_id, key_hash) at once, in one statement on
    `driver` (an asyncpg connection): each distinct device id's Device or the ApiError it gets."""
    now = datetime.now(UTC)
    start, end = limit.window_of(now)
    rows = await driver.fetch(
        _AUTHENTICATE_AND_COUNT_MANY,
        [device_id for device_id, _ in presented],
        [key_hash for _, key_hash in presented],
        limit.row_key(""),
        start,
        end,
    )
    by_asked = {row["asked"]: row for row in rows if row["asked"] == row["device_id"]}
    answers: dict[str, Device | ApiError] = {}
    for device_id, key_hash in presented:
        try:
            answers[device_id] = admitted_device(
                by_asked.get(device_id), device_id, key_hash, limit, now, refusal
            )
        except ApiError as refused:
            answers[device_id] = refused
    return answers


def admitted_device(
    row: Mapping[str, Any] | None,
    device_id: str,
    key_hash: str,
    limit: Limit,
    now: datetime,
    refusal: str,
) -> Device:
    """The Device of an admission row, or the ApiError its key, status or count gives."""
    if row is None or row["device_id"] != device_id:
        raise ApiError(401, "invalid device key", {"WWW-Authenticate": "Bearer"})
    if row["status"] != DeviceStatus.ACTIVE:
        raise ApiError(403, f"device is {row['status']}")
    wait = limit.wait_after(row["count"], now)
    if wait is not None:
        raise too_many(refusal, wait)
    config = row["config"]
    return Device(
        device_id=row["device_id"],
        org_id=row["org_id"],
        status=DeviceStatus(row["status"]),
        config=json.loads(config) if isinstance(config, str) else config,
        config_version=row["config_version"],
        reported_config_version=row["reported_config_version"],
        friendly_name=row["friendly_name"],
        key_hash=key_hash,
    )

"""Devices' keys checked and their events counted (uploads, stream opens) in one statement."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud.core.errors import ApiError
from cloud.limits.counters import Limit, too_many
from cloud.models import Device, DeviceStatus

# Authenticate the presented keys and count each event in one statement on the driver
# connection (asyncpg keeps it prepared): one row per presented (device id, key hash), in
# order, with the device its key matched (NULL columns: none). A counter moves only for the
# key's own, active device, once per event of it in the batch, so each event reads the count
# it would have read alone, in batch order. Counter rows are written in device order, so
# concurrent batches cannot deadlock. A caller may read more in the same statement
# (AdmissionLookups): per-event arrays from $6 on, columns and LEFT JOINs on `asked` and `d`.
_AUTHENTICATE_AND_COUNT = """
    WITH asked AS (
        SELECT * FROM unnest($1::text[], $2::text[]{arrays})
        WITH ORDINALITY AS a(device_id, key_hash{names}, n)),
    d AS (
        SELECT asked.n, devices.device_id, devices.org_id, devices.status, devices.config,
               devices.config_version, devices.reported_config_version, devices.friendly_name,
               countable, count(*) OVER same_device AS in_batch,
               row_number() OVER (same_device ORDER BY asked.n) AS nth
        FROM asked JOIN devices ON devices.key_hash = asked.key_hash,
             LATERAL (SELECT devices.device_id = asked.device_id
                             AND devices.status = 'active' AS countable) AS c
        WINDOW same_device AS (PARTITION BY devices.device_id, countable)),
    counted AS (
        INSERT INTO rate_counters (key, window_start, count, expires_at)
        SELECT $3 || device_id, $4, count(*), $5 FROM d WHERE countable
        GROUP BY device_id ORDER BY device_id
        ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + EXCLUDED.count
        RETURNING key, count)
    SELECT d.device_id, d.org_id, d.status, d.config, d.config_version,
           d.reported_config_version, d.friendly_name,
           counted.count - d.in_batch + d.nth AS count{columns}
    FROM asked
    LEFT JOIN d ON d.n = asked.n
    LEFT JOIN counted ON d.countable AND counted.key = $3 || d.device_id{joins}
    ORDER BY asked.n
"""


@dataclass(frozen=True)
class AdmissionLookups:
    """What a caller reads besides the device in the admission's one round trip."""

    arrays: tuple[tuple[str, str], ...]  # per-event (name, type) of `asked`, from $6 on
    columns: str  # ", x.a AS a, ..." over `asked`, `d` and the joined tables
    joins: str  # " LEFT JOIN ... ON ..."

    @functools.cached_property
    def sql(self) -> str:
        return _AUTHENTICATE_AND_COUNT.format(
            arrays="".join(f", ${n}::{kind}[]" for n, (_, kind) in enumerate(self.arrays, 6)),
            names="".join(f", {name}" for name, _ in self.arrays),
            columns=self.columns,
            joins=self.joins,
        )


_NO_LOOKUPS = AdmissionLookups((), "", "")


@dataclass(frozen=True)
class Admission:
    """One presented key's answer: the Device, or the ApiError it gets; and its row."""

    answer: Device | ApiError
    row: Mapping[str, Any]


async def authenticate_and_count_many(
    driver: Any,
    presented: Sequence[tuple[str, str]],
    limit: Limit,
    refusal: str,
    lookups: AdmissionLookups = _NO_LOOKUPS,
    lookup_arrays: Sequence[Sequence[Any]] = (),
) -> list[Admission]:
    """Each presented (device_id, key_hash)'s Admission, in order, its event counted against
    `limit`: one statement on `driver` (an asyncpg connection), which commits alone unless a
    transaction is open on it. `lookup_arrays` are the `lookups` arrays' values, one each.

    The answers are authenticate_device's (401 wrong or another device's key, 403 not
    active) followed by 429 `refusal` over the limit; callers check the id's shape (404)
    before hashing. The Device is detached (never added to a session) and carries the
    columns callers read: id, org, status, config and its versions (sent, acknowledged),
    friendly name and key hash.
    """
    now = datetime.now(UTC)
    start, end = limit.window_of(now)
    rows = await driver.fetch(
        lookups.sql,
        [device_id for device_id, _ in presented],
        [key_hash for _, key_hash in presented],
        limit.row_key(""),
        start,
        end,
        *lookup_arrays,
    )
    admissions = []
    for (device_id, key_hash), row in zip(presented, rows, strict=True):
        try:
            answer: Device | ApiError = admitted_device(
                row, device_id, key_hash, limit, now, refusal
            )
        except ApiError as refused:
            answer = refused
        admissions.append(Admission(answer, row))
    return admissions


def admitted_device(
    row: Mapping[str, Any],
    device_id: str,
    key_hash: str,
    limit: Limit,
    now: datetime,
    refusal: str,
) -> Device:
    """The Device of an admission row, or the ApiError its key, status or count gives."""
    if row["device_id"] != device_id:
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

"""Offline, online and capture-failed alerts, found by a periodic pass on every instance.

Offline: an active device with no live stream on any live instance whose `last_seen_at` (kept
fresh every keepalive while it streams) is older than its `alerts.offline_after_seconds`. A
blip shorter than that alerts nobody. Every instance runs the pass; the unique index on a
device's unresolved offline alert makes the first insert win and the others do nothing.
Online: a device streaming again with an unresolved offline alert. The resolve takes the alert
row with SKIP LOCKED, so exactly one instance resolves it and raises `device_online`.
Capture failed: the device's last `failed_captures` finished triggers all failed or expired;
resolved by the next executed trigger.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.alerts import messages
from cloud.alerts.service import NewAlert, raise_alert
from cloud.core.worker import PeriodicWorker
from cloud.hub.presence import is_connected
from cloud.models import Alert, AlertKind, AlertState, Device, DeviceStatus

logger = logging.getLogger(__name__)

STEP_TIMEOUT = 30.0  # seconds; bounds one pass
BATCH = 500  # devices handled per kind per pass; the rest wait for the next pass
FAILED_WINDOW = "1 hour"  # a failure streak is looked at while its newest failure is this recent

_OFFLINE_AFTER = sa.func.coalesce(
    Device.config["alerts"]["offline_after_seconds"].astext.cast(sa.Float), 300.0
)
_OFFLINE_ALERTED = (
    sa.select(Alert.alert_id)
    .where(
        Alert.device_id == Device.device_id,
        Alert.kind == AlertKind.DEVICE_OFFLINE,
        # Resolved by hand while still away: not raised again until the device is seen again.
        (Alert.state != AlertState.RESOLVED) | (Alert.created_at > Device.last_seen_at),
    )
    .exists()
)


def _newly_offline(keepalive_seconds: float) -> sa.Select:
    return (
        sa.select(
            Device.device_id,
            Device.org_id,
            Device.friendly_name,
            Device.last_seen_at,
            _OFFLINE_AFTER.label("threshold"),
        )
        .where(
            Device.status == DeviceStatus.ACTIVE,
            Device.last_seen_at.is_not(None),
            Device.last_seen_at
            < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, _OFFLINE_AFTER),
            ~is_connected(keepalive_seconds),
            ~_OFFLINE_ALERTED,
        )
        # One order on every instance: concurrent passes wait on each other's inserts, never
        # deadlock.
        .order_by(Device.device_id)
        .limit(BATCH)
    )


_CAPTURE_FAILED = sa.text(
    f"""
    SELECT d.device_id, d.org_id, d.friendly_name, s.last_at, s.last_error, s.streak
    FROM devices AS d
    CROSS JOIN LATERAL (
        SELECT COALESCE((d.config->'alerts'->>'failed_captures')::int, 3) AS streak
    ) AS c
    CROSS JOIN LATERAL (
        SELECT c.streak,
               count(*) FILTER (WHERE t.status IN ('failed', 'expired')) AS bad,
               max(t.finished_at) AS last_at,
               (array_agg(t.error ORDER BY t.scheduled_at DESC))[1] AS last_error
        FROM (
            SELECT status, finished_at, error, scheduled_at FROM scheduled_triggers
            WHERE device_id = d.device_id AND status IN ('executed', 'failed', 'expired')
            ORDER BY scheduled_at DESC LIMIT c.streak
        ) AS t
    ) AS s
    WHERE d.status = 'active'
      AND d.device_id IN (
          SELECT device_id FROM scheduled_triggers
          WHERE status IN ('failed', 'expired') AND finished_at > now() - interval '{FAILED_WINDOW}'
      )
      AND s.bad = c.streak
      AND NOT EXISTS (
          SELECT 1 FROM alerts AS a
          WHERE a.device_id = d.device_id AND a.kind = 'capture_failed'
            AND (a.state <> 'resolved' OR a.created_at >= s.last_at)
      )
    ORDER BY d.device_id
    LIMIT {BATCH}
    """
)

_RESOLVE_CAPTURE_FAILED = sa.text(
    """
    UPDATE alerts AS a SET state = 'resolved', resolved_at = now()
    WHERE a.kind = 'capture_failed' AND a.state <> 'resolved'
      AND EXISTS (
          SELECT 1 FROM scheduled_triggers AS t
          WHERE t.device_id = a.device_id AND t.status = 'executed'
            AND t.executed_at > a.created_at
      )
    """
)


async def raise_offline_alerts(session: AsyncSession, keepalive_seconds: float) -> int:
    raised = 0
    for row in (await session.execute(_newly_offline(keepalive_seconds))).all():
        name = row.friendly_name or row.device_id
        title, text = messages.offline_text(name, row.last_seen_at, row.threshold)
        alert = NewAlert(
            org_id=row.org_id,
            device_id=row.device_id,
            device_name=name,
            kind=AlertKind.DEVICE_OFFLINE,
            title=title,
            message=text,
            details={
                "last_seen_at": row.last_seen_at.isoformat(),
                "offline_after_seconds": row.threshold,
            },
        )
        if await raise_alert(session, alert) is not None:
            raised += 1
    return raised


async def raise_online_alerts(session: AsyncSession, keepalive_seconds: float) -> int:
    """Resolve the offline alerts of devices streaming again; one `device_online` each."""
    locked = (
        sa.select(Alert.alert_id)
        .join(Device, Device.device_id == Alert.device_id)
        .where(
            Alert.kind == AlertKind.DEVICE_OFFLINE,
            Alert.state != AlertState.RESOLVED,
            is_connected(keepalive_seconds),
        )
        .limit(BATCH)
        .with_for_update(of=Alert, skip_locked=True)
    )
    resolved = await session.execute(
        sa.update(Alert)
        .where(Alert.alert_id.in_(locked.scalar_subquery()))
        .values(state=AlertState.RESOLVED, resolved_at=sa.func.now())
        .returning(Alert.alert_id, Alert.org_id, Alert.device_id, Alert.details)
    )
    rows = resolved.all()
    names = dict(
        (
            await session.execute(
                sa.select(Device.device_id, Device.friendly_name).where(
                    Device.device_id.in_([row.device_id for row in rows])
                )
            )
        ).all()
    )
    now = datetime.now(UTC)
    for row in rows:
        name = names.get(row.device_id) or row.device_id
        since_text = (row.details or {}).get("last_seen_at")
        since = datetime.fromisoformat(since_text) if since_text else None
        title, text = messages.online_text(name, now, since)
        await raise_alert(
            session,
            NewAlert(
                org_id=row.org_id,
                device_id=row.device_id,
                device_name=name,
                kind=AlertKind.DEVICE_ONLINE,
                title=title,
                message=text,
                # The return ends the incident: nothing left for anyone to acknowledge.
                state=AlertState.RESOLVED,
                details={"offline_alert_id": row.alert_id, "offline_since": since_text},
            ),
            now,
        )
    return len(rows)


async def raise_capture_failed_alerts(session: AsyncSession) -> int:
    await session.execute(_RESOLVE_CAPTURE_FAILED)
    raised = 0
    now = datetime.now(UTC)
    for row in (await session.execute(_CAPTURE_FAILED)).all():
        name = row.friendly_name or row.device_id
        title, text = messages.capture_failed_text(name, row.streak, now, row.last_error)
        alert = NewAlert(
            org_id=row.org_id,
            device_id=row.device_id,
            device_name=name,
            kind=AlertKind.CAPTURE_FAILED,
            title=title,
            message=text,
            details={"consecutive": row.streak, "last_error": row.last_error},
        )
        if await raise_alert(session, alert, now) is not None:
            raised += 1
    return raised


class AlertWatcher(PeriodicWorker):
    """Every `interval` seconds: offline, online and capture-failed alerts (any instance)."""

    name = "alert-watcher"
    stop_grace = 2.0  # a pass is one transaction: cancelling it rolls back, losing nothing
    failure_message = "alert watcher pass failed; retrying next interval"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        keepalive_seconds: float,
        interval: float,
    ) -> None:
        super().__init__()
        self._sessions = session_factory
        self._keepalive_seconds = keepalive_seconds
        self.interval = interval

    async def run_once(self) -> tuple[int, int, int]:
        async with asyncio.timeout(STEP_TIMEOUT), self._sessions() as session:
            online = await raise_online_alerts(session, self._keepalive_seconds)
            offline = await raise_offline_alerts(session, self._keepalive_seconds)
            failed = await raise_capture_failed_alerts(session)
            await session.commit()
        if online or offline or failed:
            logger.info(
                "alert watcher: %d offline, %d back online, %d capture-failed",
                offline,
                online,
                failed,
            )
        return offline, online, failed

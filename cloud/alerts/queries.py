"""Reading and changing alerts for the API: list with filters and cursor, acknowledge, resolve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.alerts.service import announce_alert
from cloud.core.cursors import decode_cursor, encode_cursor
from cloud.core.errors import ApiError
from cloud.core.ids import ALERT_ID
from cloud.models import Alert, AlertKind, AlertState, Capture, User


@dataclass(frozen=True)
class AlertFilter:
    device_id: str | None = None
    kind: AlertKind | None = None
    state: AlertState | None = None


async def list_alerts(
    session: AsyncSession, user: User, where: AlertFilter, limit: int, cursor: str | None
) -> tuple[Sequence[Alert], str | None]:
    """The org's alerts newest first, and the cursor of the next page (None at the end)."""
    query = sa.select(Alert).where(Alert.org_id == user.org_id)
    if where.device_id is not None:
        query = query.where(Alert.device_id == where.device_id)
    if where.kind is not None:
        query = query.where(Alert.kind == where.kind)
    if where.state is not None:
        query = query.where(Alert.state == where.state)
    if cursor is not None:
        moment, alert_id = decode_cursor(cursor, ALERT_ID)
        query = query.where(sa.tuple_(Alert.created_at, Alert.alert_id) < (moment, alert_id))
    query = query.order_by(Alert.created_at.desc(), Alert.alert_id.desc()).limit(limit + 1)
    alerts = (await session.scalars(query)).all()
    if len(alerts) <= limit:
        return alerts, None
    last = alerts[limit - 1]
    return alerts[:limit], encode_cursor(last.created_at, last.alert_id)


async def org_alert(session: AsyncSession, user: User, alert_id: str, lock: bool = False) -> Alert:
    """One alert of the user's org; 404 otherwise (another org's alert does not exist)."""
    if not ALERT_ID.match(alert_id):
        raise ApiError(404, "alert not found")
    query = sa.select(Alert).where(Alert.alert_id == alert_id, Alert.org_id == user.org_id)
    if lock:
        query = query.with_for_update()
    alert = await session.scalar(query)
    if alert is None:
        raise ApiError(404, "alert not found")
    return alert


async def acknowledge(session: AsyncSession, user: User, alert_id: str) -> Alert:
    """Open -> acknowledged (again: unchanged); a resolved alert is 409."""
    alert = await org_alert(session, user, alert_id, lock=True)
    if alert.state is AlertState.RESOLVED:
        raise ApiError(409, "alert is resolved; nothing to acknowledge")
    if alert.state is AlertState.OPEN:
        alert.state = AlertState.ACKNOWLEDGED
        alert.acknowledged_at = datetime.now(UTC)
        alert.acknowledged_by_user_id = user.user_id
        await announce_alert(session, alert, alert.alert_id)
    await session.commit()
    return alert


async def resolve(session: AsyncSession, user: User, alert_id: str) -> Alert:
    """Open or acknowledged -> resolved (again: unchanged)."""
    alert = await org_alert(session, user, alert_id, lock=True)
    if alert.state is not AlertState.RESOLVED:
        alert.state = AlertState.RESOLVED
        alert.resolved_at = datetime.now(UTC)
        alert.resolved_by_user_id = user.user_id
        await announce_alert(session, alert, alert.alert_id)
    await session.commit()
    return alert


async def snapshot_of(session: AsyncSession, capture_id: str) -> tuple[str, str] | None:
    """(store key, content type) of a capture's snapshot, for a signed image link."""
    row = (
        await session.execute(
            sa.select(Capture.snapshot_key, Capture.content_type).where(
                Capture.record_id == capture_id
            )
        )
    ).one_or_none()
    return (row.snapshot_key, row.content_type) if row is not None else None

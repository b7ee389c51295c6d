"""What the alerts page reads: the API's alert list plus each alert's device name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.alerts.queries import AlertFilter, list_alerts
from cloud.core.ids import ALERT_ID
from cloud.models import Alert, AlertKind, AlertState, Device, User

KINDS = tuple(kind.value for kind in AlertKind)
STATES = tuple(state.value for state in AlertState)


@dataclass(frozen=True)
class AlertRow:
    alert: Alert
    device_name: str | None  # None: the device was deleted


def page_filter(kind: str | None, state: str | None) -> AlertFilter:
    """The page's filter; an unknown value shows everything rather than an error."""
    return AlertFilter(
        kind=AlertKind(kind) if kind in KINDS else None,
        state=AlertState(state) if state in STATES else None,
    )


async def _named(session: AsyncSession, alerts: Sequence[Alert]) -> list[AlertRow]:
    ids = {alert.device_id for alert in alerts}
    names: dict[str, str] = {}
    if ids:
        result = await session.execute(
            sa.select(
                Device.device_id, sa.func.coalesce(Device.friendly_name, Device.device_id)
            ).where(Device.device_id.in_(ids), Device.deleted_at.is_(None))
        )
        names = {device_id: name for device_id, name in result}
    return [AlertRow(alert, names.get(alert.device_id)) for alert in alerts]


async def alert_page(
    session: AsyncSession, user: User, where: AlertFilter, limit: int, cursor: str | None
) -> tuple[list[AlertRow], str | None]:
    """One page newest first, through the API's own listing (org scope, keyset cursor)."""
    alerts, next_cursor = await list_alerts(session, user, where, limit, cursor)
    return await _named(session, alerts), next_cursor


async def alert_rows(
    session: AsyncSession, user: User, alert_ids: Sequence[str], where: AlertFilter
) -> list[AlertRow]:
    """These alerts of the org that pass the filter (the page refreshing what changed)."""
    ids = [i for i in alert_ids if ALERT_ID.match(i)]
    if not ids:
        return []
    query = sa.select(Alert).where(Alert.org_id == user.org_id, Alert.alert_id.in_(ids))
    if where.kind is not None:
        query = query.where(Alert.kind == where.kind)
    if where.state is not None:
        query = query.where(Alert.state == where.state)
    query = query.order_by(Alert.created_at.desc(), Alert.alert_id.desc())
    return await _named(session, (await session.scalars(query)).all())

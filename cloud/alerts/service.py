"""Raising alerts: the alert row and its routed outbox rows in the caller's transaction."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.alerts import messages, outbox
from cloud.core.ids import new_alert_id
from cloud.events.notify import EventKind, emit
from cloud.models import Alert, AlertChannel, AlertKind, AlertState

logger = logging.getLogger(__name__)

# Kinds of which a device has at most one unresolved alert (see the alerts' unique index).
SINGLE_OPEN_KINDS = (AlertKind.DEVICE_OFFLINE, AlertKind.CAPTURE_FAILED)
_SINGLE_OPEN_WHERE = sa.text("state <> 'resolved' AND kind IN ('device_offline', 'capture_failed')")


@dataclass
class NewAlert:
    """What an alert says; `snapshot` is (store key, content type) for detections."""

    org_id: uuid.UUID
    device_id: str
    device_name: str
    kind: AlertKind
    title: str
    message: str
    state: AlertState = AlertState.OPEN
    capture_id: str | None = None
    rule: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    snapshot: tuple[str, str] | None = None


def alert_data(alert_id: str, alert: NewAlert, created_at: datetime) -> dict[str, Any]:
    """The alert fields every notification carries (the webhook `data` object)."""
    return {
        "alert_id": alert_id,
        "kind": alert.kind.value,
        "state": alert.state.value,
        "device_id": alert.device_id,
        "device_name": alert.device_name,
        "capture_id": alert.capture_id,
        "rule": alert.rule,
        "title": alert.title,
        "message": alert.message,
        "details": alert.details,
        "created_at": created_at.isoformat(),
    }


def _routed_channels(org_id: uuid.UUID, kind: AlertKind, device_id: str, rule: str | None):
    """The org's enabled channels whose routing takes this alert (NULL list = everything)."""
    rules_match = AlertChannel.rules.is_(None)
    if rule is not None:
        rules_match = rules_match | AlertChannel.rules.has_key(rule)  # noqa: W601 - JSONB ?
    return sa.select(
        AlertChannel.channel_id, AlertChannel.title_template, AlertChannel.body_template
    ).where(
        AlertChannel.org_id == org_id,
        AlertChannel.enabled.is_(True),
        AlertChannel.alert_kinds.is_(None) | AlertChannel.alert_kinds.has_key(kind.value),
        AlertChannel.device_ids.is_(None) | AlertChannel.device_ids.has_key(device_id),
        rules_match,
    )


def template_values(data: dict[str, Any], at: datetime) -> dict[str, Any]:
    details = data.get("details") or {}
    return {
        **{k: v for k, v in data.items() if isinstance(v, str | int | float)},
        "label": details.get("label", ""),
        "confidence": f"{details['confidence']:.2f}" if "confidence" in details else "",
        "time": messages.clock(at),
    }


async def raise_alert(
    session: AsyncSession, alert: NewAlert, now: datetime | None = None
) -> str | None:
    """Insert the alert and one outbox row per routed channel; None when an unresolved alert
    of a single-open kind already exists for the device (another instance raised it)."""
    now = now or datetime.now(UTC)
    alert_id = new_alert_id()
    statement = insert(Alert).values(
        alert_id=alert_id,
        org_id=alert.org_id,
        device_id=alert.device_id,
        kind=alert.kind,
        state=alert.state,
        capture_id=alert.capture_id,
        rule=alert.rule,
        title=alert.title[: messages.MAX_TITLE_LENGTH],
        message=alert.message,
        details=alert.details,
        created_at=now,
        resolved_at=now if alert.state is AlertState.RESOLVED else None,
    )
    if alert.kind in SINGLE_OPEN_KINDS:
        statement = statement.on_conflict_do_nothing(
            index_elements=["device_id", "kind"], index_where=_SINGLE_OPEN_WHERE
        )
    inserted = await session.scalar(statement.returning(Alert.alert_id))
    if inserted is None:
        return None
    data = alert_data(alert_id, alert, now)
    values = template_values(data, now)
    channels = await session.execute(
        _routed_channels(alert.org_id, alert.kind, alert.device_id, alert.rule)
    )
    rows = [
        {
            "channel_id": channel.channel_id,
            "alert_id": alert_id,
            "event_type": f"alert.{alert.kind.value}",
            "payload": {
                "title": messages.render(
                    channel.title_template, alert.title, values, messages.MAX_TITLE_LENGTH
                ),
                "body": messages.render(channel.body_template, alert.message, values),
                "timestamp": now.isoformat(),
                "data": data,
                "snapshot": list(alert.snapshot) if alert.snapshot else None,
            },
        }
        for channel in channels
    ]
    await outbox.enqueue(session, rows)
    await announce_alert(session, alert, alert_id)
    logger.info(
        "alert %s %s for device %s (%d notifications)",
        alert_id,
        alert.kind.value,
        alert.device_id,
        len(rows),
    )
    return alert_id


async def announce_alert(session: AsyncSession, alert: Alert | NewAlert, alert_id: str) -> None:
    """Tell the console of a raised or changed alert, at the commit of the caller's transaction."""
    await emit(
        session,
        alert.org_id,
        EventKind.ALERT,
        alert.device_id,
        alert_id=alert_id,
        alert_kind=alert.kind.value,
        state=alert.state.value,
    )

"""Detection alerts, raised inside the upload's transaction: one per capture and matched rule,
at most one per (rule, device) per cooldown, so a person standing in a zone is one alert."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.alerts import messages
from cloud.alerts.service import NewAlert, raise_alert
from cloud.devices.config_document import AlertsConfig, EvaluationConfig
from cloud.models import Alert, AlertKind, Device


def alerts_config(config: dict[str, Any] | None) -> AlertsConfig:
    """The device's `alerts` section, defaults where absent or (in old rows) invalid."""
    try:
        return AlertsConfig.model_validate((config or {}).get("alerts") or {})
    except ValidationError:
        return AlertsConfig()


def _zoned_rules(config: dict[str, Any] | None) -> dict[str, bool]:
    try:
        section = EvaluationConfig.model_validate((config or {}).get("evaluation") or {})
    except ValidationError:
        return {}
    return {rule.name: rule.zone is not None for rule in section.rules}


async def _cooling_rules(
    session: AsyncSession, device_id: str, names: list[str], since: datetime
) -> set[str]:
    """Those of `names` with a detection alert of this device raised after `since`."""
    return set(
        await session.scalars(
            sa.select(Alert.rule).where(
                Alert.device_id == device_id,
                Alert.kind == AlertKind.DETECTION,
                Alert.rule.in_(names),
                Alert.created_at > since,
            )
        )
    )


def cooldown_of(
    device: Device, evaluation_result: dict[str, Any], now: datetime
) -> tuple[list[str], datetime]:
    """The rules an evaluation may alert on (none unless it alerts) and when their cooldown
    window for this device began."""
    alerts = evaluation_result.get("alert")
    matched = (evaluation_result.get("matched_rules") or []) if alerts else []
    since = now - timedelta(seconds=alerts_config(device.config).cooldown_seconds)
    return [rule["name"] for rule in matched], since


async def raise_detection_alerts(
    session: AsyncSession,
    device: Device,
    capture_id: str,
    evaluation_result: dict[str, Any],
    detections: list[dict[str, Any]],
    snapshot: tuple[str, str],
    now: datetime,
) -> list[str]:
    """Alerts for the rules this capture matched that are not in their cooldown."""
    matched = evaluation_result.get("matched_rules") or []
    if not matched:
        return []
    names, since = cooldown_of(device, evaluation_result, now)
    # Unlocked first: while a person stands in a zone every upload matches and its rules are
    # in their cooldown, so most matching uploads raise nothing and need no lock. A committed
    # alert seen here stays in the cooldown window, so skipping on it is never wrong.
    cooling = await _cooling_rules(session, device.device_id, names, since)
    if cooling.issuperset(names):
        return []
    # Two uploads of one device at once must not both pass the cooldown check: alerting
    # uploads of the same device take turns (others, and non-matching uploads, do not wait),
    # and the check is made again under the lock.
    await session.execute(
        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("alerts:" + device.device_id)))
    )
    cooling = await _cooling_rules(session, device.device_id, names, since)
    zoned = _zoned_rules(device.config)
    device_name = device.friendly_name or device.device_id
    raised = []
    for rule in matched:
        if rule["name"] in cooling:
            continue
        best = max((detections[i] for i in rule["detections"]), key=lambda d: d["confidence"])
        title, text = messages.detection_text(
            best["label"],
            best["confidence"],
            rule["name"],
            zoned.get(rule["name"], False),
            device_name,
            now,
        )
        alert_id = await raise_alert(
            session,
            NewAlert(
                org_id=device.org_id,
                device_id=device.device_id,
                device_name=device_name,
                kind=AlertKind.DETECTION,
                title=title,
                message=text,
                capture_id=capture_id,
                rule=rule["name"],
                details={
                    "label": best["label"],
                    "confidence": best["confidence"],
                    "box": best.get("box"),
                    "matches": len(rule["detections"]),
                },
                snapshot=snapshot,
            ),
            now,
        )
        if alert_id is not None:
            raised.append(alert_id)
    return raised

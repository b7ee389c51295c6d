"""Device health: the agent posts its report; `GET /v1/devices/{id}` shows the latest."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import CurrentDevice, SessionDep, SettingsDep
from cloud.api.schemas.device_commands import HealthAccepted, HealthReport
from cloud.commands.service import json_size
from cloud.core.errors import ApiError
from cloud.devices.health import record_health

router = APIRouter(tags=["device health"])


@router.post("/v1/devices/{device_id}/health", response_model=HealthAccepted)
async def report_health(
    body: HealthReport, device: CurrentDevice, session: SessionDep, settings: SettingsDep
) -> HealthAccepted:
    """Store the device's health report (the latest replaces the previous one)."""
    report = body.model_dump(mode="json")
    if json_size(report) > settings.max_health_report_bytes:
        raise ApiError(422, f"health report larger than {settings.max_health_report_bytes} bytes")
    reported_at = await record_health(session, device, report)
    await session.commit()
    return HealthAccepted(device_id=device.device_id, reported_at=reported_at)

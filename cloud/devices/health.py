"""The device's latest health report, stored on its row (replaced by each report)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.models import Device


async def record_health(session: AsyncSession, device: Device, report: dict[str, Any]) -> datetime:
    """Store the device's latest health report (replacing the previous one); its time."""
    now = datetime.now(UTC)
    stored = {**report, "reported_at": now.isoformat().replace("+00:00", "Z")}
    await session.execute(
        sa.update(Device)
        .where(Device.device_id == device.device_id)
        .values(health=stored, health_reported_at=now)
    )
    return now

"""Request and response bodies of the REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.core.schema_types import DeviceId, StrictBody
from cloud.devices.config_document import DeviceConfig
from cloud.models import DeviceStatus


class DeviceCreate(StrictBody):
    device_id: DeviceId
    friendly_name: str | None = Field(default=None, max_length=200)
    config: DeviceConfig = Field(default_factory=DeviceConfig)


class DeviceUpdate(StrictBody):
    friendly_name: str | None = Field(default=None, max_length=200)
    status: DeviceStatus | None = None
    config: DeviceConfig | None = None


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    org_id: uuid.UUID
    friendly_name: str | None
    status: DeviceStatus
    config: dict
    config_version: int
    reported_config: dict | None
    reported_config_version: int | None
    last_seen_at: datetime | None
    activated_at: datetime | None
    key_prefix: str
    created_at: datetime
    next_trigger_at: datetime | None
    skipped_slots: int
    health: dict[str, Any] | None = Field(
        default=None,
        description="The latest health report with its `reported_at`; null until one arrives.",
    )


class DeviceWithKey(DeviceOut):
    device_key: str = Field(description="Shown once; only its hash is stored.")


class DeviceList(BaseModel):
    devices: list[DeviceOut]

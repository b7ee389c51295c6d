"""Request and response bodies of the command stream, trigger and presence routes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.core.schema_types import INT32_MAX, StrictBody
from cloud.models import TriggerStatus, TriggerType

MAX_TRIGGER_TTL_SECONDS = 7 * 24 * 3600


class ManualTriggerRequest(StrictBody):
    label: str | None = Field(default=None, max_length=200)
    ttl_seconds: int | None = Field(default=None, ge=1, le=MAX_TRIGGER_TTL_SECONDS)


class ManualTriggerResponse(BaseModel):
    trigger_id: str
    status: TriggerStatus


class TriggerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    trigger_id: str
    device_id: str
    trigger_type: TriggerType
    trigger_label: str | None
    status: TriggerStatus
    scheduled_at: datetime
    created_at: datetime
    sent_at: datetime | None
    executed_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    capture_id: str | None
    error: str | None
    requested_by_user_id: uuid.UUID | None


class TriggerList(BaseModel):
    triggers: list[TriggerOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class FailureReport(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)


class FailureResponse(BaseModel):
    trigger_id: str
    status: TriggerStatus


MAX_REPORTED_CONFIG_BYTES = 16 * 1024


class ConfigAck(StrictBody):
    version: int = Field(ge=1, le=INT32_MAX)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, default=str))
        if size > MAX_REPORTED_CONFIG_BYTES:
            raise ValueError(f"config is {size} bytes; the limit is {MAX_REPORTED_CONFIG_BYTES}")
        return value


class ConfigAckResponse(BaseModel):
    device_id: str
    reported_config_version: int


class ConnectedDevice(BaseModel):
    device_id: str
    friendly_name: str | None
    instance_id: str
    connected_at: datetime


class ConnectedList(BaseModel):
    devices: list[ConnectedDevice]
    connected_devices: list[str] = Field(
        default_factory=list, description="The same devices' ids (the original API's shape)."
    )


class CommandList(BaseModel):
    commands: list[dict[str, Any]]

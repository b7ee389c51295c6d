"""Bodies of the device command routes (ping, diagnostics, restart) and of health reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.core.schema_types import StrictBody
from cloud.models import DeviceCommandType, TriggerStatus

MAX_COMMAND_TTL_SECONDS = 24 * 3600


class CommandRequest(StrictBody):
    type: DeviceCommandType
    ttl_seconds: int | None = Field(default=None, ge=1, le=MAX_COMMAND_TTL_SECONDS)


class CommandAccepted(BaseModel):
    command_id: str
    status: TriggerStatus = Field(description="`sent` if a live stream took it, else `pending`.")


class CommandOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    command_id: str
    device_id: str
    type: DeviceCommandType = Field(validation_alias="command_type")
    status: TriggerStatus
    result: dict[str, Any] | None = Field(
        description="The device's answer once executed; a ping's carries `round_trip_ms`."
    )
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    requested_by_user_id: uuid.UUID | None


class CommandResultReport(StrictBody):
    """The device's answer: a `result` object when it executed, an `error` when it could not."""

    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, min_length=1, max_length=2000)


class HealthReport(BaseModel):
    """What an agent reports about itself; fields beyond these are kept as sent (size-bounded)."""

    model_config = ConfigDict(extra="allow")

    uptime_seconds: float = Field(ge=0)
    agent_version: str | None = Field(default=None, max_length=64)
    spool_depth: int = Field(ge=0)
    spool_oldest_seconds: float | None = Field(default=None, ge=0)
    disk_free_bytes: int | None = Field(default=None, ge=0)
    detector: dict[str, Any] | None = None
    camera: dict[str, Any] | None = None


class HealthAccepted(BaseModel):
    device_id: str
    reported_at: datetime

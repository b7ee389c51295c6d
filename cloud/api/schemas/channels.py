"""Request and response bodies of the notification channel routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.core.schema_types import DeviceId, StrictBody
from cloud.models import AlertKind, AttemptOutcome, ChannelKind, NotificationState

RuleName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# Generous caps so a body is bounded; the service refuses anything past the real limits
# (URL 2000, templates 2000 characters) with a message naming the field.
RawUrl = Annotated[str, StringConstraints(max_length=10_000)]
RawTemplate = Annotated[str, StringConstraints(max_length=100_000)]


class ChannelRouting(StrictBody):
    alert_kinds: list[AlertKind] | None = Field(
        default=None, description="Alert kinds sent here; null: all."
    )
    device_ids: list[DeviceId] | None = Field(
        default=None, max_length=1000, description="Devices whose alerts are sent; null: all."
    )
    rules: list[RuleName] | None = Field(
        default=None, max_length=100, description="Detection rules sent here; null: all."
    )
    title_template: RawTemplate | None = Field(
        default=None, description="string.Template, e.g. `$title`; null: the default title."
    )
    body_template: RawTemplate | None = Field(
        default=None, description="string.Template, e.g. `$message ($confidence)`."
    )


class ChannelCreate(ChannelRouting):
    name: str = Field(min_length=1, max_length=100)
    kind: ChannelKind
    url: RawUrl
    enabled: bool = True


class ChannelUpdate(ChannelRouting):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    url: RawUrl | None = None
    enabled: bool | None = None


class ChannelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel_id: str
    name: str
    kind: ChannelKind
    url: str = Field(description="The URL with credentials and tokens hidden.")
    alert_kinds: list[AlertKind] | None
    device_ids: list[str] | None
    rules: list[str] | None
    title_template: str | None
    body_template: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelOut):
    secret: str | None = Field(
        description="Webhook signing secret (`whsec_...`): shown now, never again."
    )


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class TestQueued(BaseModel):
    notification_id: str
    status: NotificationState


class DeliveryOut(BaseModel):
    attempt_id: int
    notification_id: str
    alert_id: str | None
    event_type: str
    notification_state: NotificationState
    attempt: int
    started_at: datetime
    duration_ms: float
    outcome: AttemptOutcome
    http_status: int | None
    error: str | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]

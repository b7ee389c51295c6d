"""Bodies of the capture routes: upload metadata, detections, records and listings."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from cloud.models import EvaluationStatus, TriggerType
from cloud.schemas import DeviceId, StrictBody

TRIGGER_ID_PATTERN = r"^trg_[0-9a-f]{32}$"
MAX_DETECTIONS = 1000
TriggerId = Annotated[str, StringConstraints(pattern=TRIGGER_ID_PATTERN)]


class Detection(StrictBody):
    """One detection: label, confidence 0..1, box `[x1, y1, x2, y2]` in pixels."""

    label: str = Field(min_length=1, max_length=100)
    confidence: float = Field(ge=0, le=1)
    box: list[float] = Field(min_length=4, max_length=4)

    @field_validator("label")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("box")
    @classmethod
    def _ordered_finite_box(cls, box: list[float]) -> list[float]:
        if not all(math.isfinite(value) for value in box):
            raise ValueError("box values must be finite")
        x1, y1, x2, y2 = box
        if x1 > x2 or y1 > y2:
            raise ValueError("box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
        return box


class CaptureMetadata(StrictBody):
    """An upload's metadata: the multipart `metadata` part, or the JSON body less the image."""

    device_id: DeviceId
    trigger_id: TriggerId | None = None
    captured_at: datetime
    trigger_label: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_DETECTIONS)

    @field_validator("metadata")
    @classmethod
    def _storable_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        # PostgreSQL's jsonb refuses NUL characters: a 422 here instead of a failed INSERT.
        if "\\u0000" in json.dumps(value):
            raise ValueError("metadata must not contain NUL characters")
        return value

    @field_validator("trigger_label")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("captured_at")
    @classmethod
    def _utc(cls, moment: datetime) -> datetime:
        """Naive timestamps are taken as UTC; every stored time is aware."""
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class CaptureJsonBody(CaptureMetadata):
    """The seed's JSON upload: the metadata plus the image as base64."""

    image_base64: str = Field(min_length=1)


class CaptureAccepted(BaseModel):
    record_id: str
    status: str = "uploaded"
    evaluation_status: EvaluationStatus


class CaptureOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    record_id: str
    device_id: str
    captured_at: datetime
    received_at: datetime
    trigger_id: str | None
    trigger_type: TriggerType
    trigger_label: str | None
    evaluation_status: EvaluationStatus
    evaluation_result: dict[str, Any] | None
    metadata: dict[str, Any] = Field(validation_alias="capture_metadata")
    detections: list[dict[str, Any]]
    content_type: str
    size_bytes: int
    width: int
    height: int
    sha256: str
    image_url: str = ""

    def model_post_init(self, context: Any) -> None:
        self.image_url = f"/v1/captures/{self.record_id}/image"


class CaptureList(BaseModel):
    captures: list[CaptureOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )

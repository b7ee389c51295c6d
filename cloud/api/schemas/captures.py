"""Bodies of the capture routes: upload metadata, detections, records and listings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.captures.metadata import MAX_DETECTIONS, CaptureMetadata, Detection
from cloud.models import EvaluationStatus, TriggerType

__all__ = ["MAX_DETECTIONS", "CaptureMetadata", "Detection"]  # re-exported request parts


class CaptureJsonBody(CaptureMetadata):
    """The original JSON upload format: the metadata plus the image as base64."""

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
